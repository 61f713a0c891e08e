{{/* Chart name. */}}
{{- define "strait.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "strait.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Headless Service name (StatefulSet serviceName). */}}
{{- define "strait.headlessName" -}}
{{- printf "%s-headless" (include "strait.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "strait.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "strait.labels" -}}
helm.sh/chart: {{ include "strait.chart" . }}
{{ include "strait.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "strait.selectorLabels" -}}
app.kubernetes.io/name: {{ include "strait.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "strait.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "strait.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference; takes the strait values and the strait chart's appVersion. */}}
{{- define "strait.image" -}}
{{- $v := .values -}}
{{- if $v.image.digest }}
{{- printf "%s@%s" $v.image.repository $v.image.digest }}
{{- else }}
{{- printf "%s:%s" $v.image.repository (default .appVersion $v.image.tag) }}
{{- end }}
{{- end }}

{{/* Port of a host:port listen address ("" when the listener is off). */}}
{{- define "strait.port" -}}
{{- if . }}{{ regexReplaceAll "^.*:" (toString .) "" }}{{ end }}
{{- end }}

{{/* Fail early on settings strait cannot honour. */}}
{{- define "strait.validate" -}}
{{- $mode := .Values.mode -}}
{{- if not (has $mode (list "statefulset" "deployment" "sidecar")) }}
{{- fail (printf "mode must be statefulset, deployment or sidecar, not %q" $mode) }}
{{- end }}
{{- include "strait.validateBackendAuth" (dict "values" .Values "prefix" "") }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- if ne $mode "sidecar" }}
{{- range $key := list "kinesis" "kafka" "admin" }}
{{- $listen := toString (index $.Values.config $key "listen") }}
{{- if or (hasPrefix "127." $listen) (hasPrefix "localhost" $listen) (hasPrefix "[::1]" $listen) }}
{{- fail (printf "config.%s.listen is %q: in a cluster strait must listen on 0.0.0.0 (the sidecar templates use 127.0.0.1)" $key $listen) }}
{{- end }}
{{- end }}
{{- if not .Values.config.admin.listen }}
{{- fail "config.admin.listen must be set: the liveness and readiness probes use the admin port" }}
{{- end }}
{{- if and (eq $mode "statefulset") (ne (toString .Values.config.backend.type) "embedded") }}
{{- fail "mode: statefulset is for backend.type: embedded; use mode: deployment for the kafka backend" }}
{{- end }}
{{- if and (eq .Values.kafka.advertise "podDNS") (ne $mode "statefulset") }}
{{- fail "kafka.advertise: podDNS needs mode: statefulset (Deployment pods have no stable DNS names); use podIP" }}
{{- end }}
{{- if and (eq .Values.kafka.advertise "static") (not .Values.kafka.staticAddress) }}
{{- fail "kafka.advertise: static needs kafka.staticAddress" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The advertise mode after resolving "auto". */}}
{{- define "strait.advertiseMode" -}}
{{- if eq .Values.kafka.advertise "auto" }}
{{- if eq .Values.mode "statefulset" }}podDNS{{ else }}podIP{{ end }}
{{- else }}
{{- .Values.kafka.advertise }}
{{- end }}
{{- end }}

{{/*
The strait container of the StatefulSet / Deployment.
*/}}
{{- define "strait.container" -}}
{{- $kinesisPort := include "strait.port" .Values.config.kinesis.listen }}
{{- $kafkaPort := include "strait.port" .Values.config.kafka.listen }}
{{- $adminPort := include "strait.port" .Values.config.admin.listen }}
{{- $advPort := default $kafkaPort (toString (default "" .Values.kafka.advertisedPort)) }}
{{- $adv := include "strait.advertiseMode" . -}}
- name: strait
  image: {{ include "strait.image" (dict "values" .Values "appVersion" .Chart.AppVersion) }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    {{- toYaml .Values.command | nindent 4 }}
  args:
    - serve
    - --config
    - /etc/strait/strait.yaml
    {{- with .Values.extraArgs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    {{- if and $kafkaPort (ne $adv "none") }}
    - name: STRAIT_KAFKA__ADVERTISED_ADDRESS
      {{- if eq $adv "podDNS" }}
      value: "$(POD_NAME).{{ include "strait.headlessName" . }}.$(POD_NAMESPACE).svc.{{ .Values.cluster.domain }}:{{ $advPort }}"
      {{- else if eq $adv "podIP" }}
      value: "$(POD_IP):{{ $advPort }}"
      {{- else }}
      value: {{ .Values.kafka.staticAddress | quote }}
      {{- end }}
    {{- end }}
    {{- if .Values.tls.enabled }}
    - name: STRAIT_KINESIS__TLS__CERT
      value: {{ printf "%s/tls.crt" .Values.tls.mountPath | quote }}
    - name: STRAIT_KINESIS__TLS__KEY
      value: {{ printf "%s/tls.key" .Values.tls.mountPath | quote }}
    {{- end }}
    {{- include "strait.backendAuthEnv" .Values | nindent 4 }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: kinesis
      containerPort: {{ $kinesisPort }}
      protocol: TCP
    {{- if $kafkaPort }}
    - name: kafka
      containerPort: {{ $kafkaPort }}
      protocol: TCP
    {{- end }}
    - name: admin
      containerPort: {{ $adminPort }}
      protocol: TCP
  {{- if .Values.probes.startup.enabled }}
  startupProbe:
    httpGet:
      path: {{ .Values.probes.startup.path }}
      port: admin
    periodSeconds: {{ .Values.probes.startup.periodSeconds }}
    failureThreshold: {{ .Values.probes.startup.failureThreshold }}
  {{- end }}
  livenessProbe:
    httpGet:
      path: {{ .Values.probes.liveness.path }}
      port: admin
    initialDelaySeconds: {{ .Values.probes.liveness.initialDelaySeconds }}
    periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
    timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
    failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
  readinessProbe:
    httpGet:
      path: {{ .Values.probes.readiness.path }}
      port: admin
    initialDelaySeconds: {{ .Values.probes.readiness.initialDelaySeconds }}
    periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
    timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
    failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: config
      mountPath: /etc/strait/strait.yaml
      subPath: strait.yaml
      readOnly: true
    - name: data
      mountPath: {{ .Values.persistence.mountPath }}
    - name: tmp
      mountPath: /tmp
    {{- if .Values.tls.enabled }}
    - name: tls
      mountPath: {{ .Values.tls.mountPath }}
      readOnly: true
    {{- end }}
    {{- include "strait.backendTlsMount" (dict "values" .Values "volume" "kafka-tls") | nindent 4 }}
{{- end }}

{{/* Pod-level fields shared by the StatefulSet and the Deployment. */}}
{{- define "strait.podSpec" -}}
serviceAccountName: {{ include "strait.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ add (int .Values.config.shutdown_grace_secs) (int .Values.terminationGraceExtraSecs) }}
enableServiceLinks: false
containers:
  {{- include "strait.container" . | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod volumes other than data (the StatefulSet gets data from volumeClaimTemplates). */}}
{{- define "strait.volumes" -}}
- name: config
  configMap:
    name: {{ include "strait.fullname" . }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- include "strait.backendTlsVolume" (dict "values" .Values "volume" "kafka-tls") }}
{{- end }}
