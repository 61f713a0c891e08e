{{/*
Sidecar templates: run strait inside another chart's pods, on localhost.

An application chart depends on this chart (Chart.yaml `dependencies: - name: strait`), sets
`strait.mode: sidecar` (so this chart renders no resources of its own) and includes, with its
root context:

  {{- with include "strait.sidecarInitContainers" . }}
  initContainers:
    {{- . | nindent 4 }}
  {{- end }}
  containers:
    - name: app
      ...
    {{- include "strait.sidecarContainers" . | nindent 4 }}
  volumes:
    {{- include "strait.sidecarVolumes" . | nindent 4 }}

`sidecar.form` picks where strait goes. `native` (the default, Kubernetes 1.29 and later): an
init container with `restartPolicy: Always`, so the kubelet starts the app's containers only
once strait's startup probe passes, and at pod shutdown stops strait only after they have
exited. `classic`: an ordinary container beside the app's, for older clusters; the two start
and stop together. Each of the two includes renders nothing in the other form.

and, in a template file of its own, the ConfigMap the sidecar reads:

  {{ include "strait.sidecarConfigMap" . }}

The strait settings come from the app chart's `.Values.strait` (the dependency's values, with
this chart's defaults merged in by Helm) or, failing that, from `.Values`. The app's containers
reach strait at http://127.0.0.1:4567 (Kinesis) and 127.0.0.1:9092 (Kafka). Give the pod a
terminationGracePeriodSeconds above config.shutdown_grace_secs: `strait.sidecarTerminationGracePeriodSeconds`.
*/}}

{{/* strait's values as seen from the including chart. */}}
{{- define "strait.sidecar.values" -}}
{{- if and (hasKey .Values "strait") (kindIs "map" .Values.strait) }}
{{- toYaml .Values.strait }}
{{- else }}
{{- toYaml .Values }}
{{- end }}
{{- end }}

{{/* The strait chart's appVersion (the image tag default), also when included from a parent. */}}
{{- define "strait.sidecar.appVersion" -}}
{{- $av := "" }}
{{- if and .Subcharts (hasKey .Subcharts "strait") }}
{{- $av = (index .Subcharts "strait").Chart.AppVersion }}
{{- else if eq .Chart.Name "strait" }}
{{- $av = .Chart.AppVersion }}
{{- end }}
{{- required "strait.sidecar: cannot find the strait chart's appVersion; set strait.image.tag" (default $av "") }}
{{- end }}

{{- define "strait.sidecar.configMapName" -}}
{{- $v := include "strait.sidecar.values" . | fromYaml }}
{{- default (printf "%s-strait-sidecar" .Release.Name) $v.sidecar.configMapName | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
"true" when the sidecars of many pods share one state (backend.type kinesis with state.type
dynamodb): each registers its Kafka address for the others to hand out (FindCoordinator names
the replica holding a group), so its Kafka listener must be on the pod IP, advertised as such.
*/}}
{{- define "strait.sidecar.sharedState" -}}
{{- $v := include "strait.sidecar.values" . | fromYaml }}
{{- $b := $v.config.backend }}
{{- if and (eq (toString $b.type) "kinesis") (eq (toString (dig "kinesis" "state" "type" "" $b)) "dynamodb") }}true{{ end }}
{{- end }}

{{/* The sidecar's strait.yaml: the configured tree with loopback listeners (Kafka on the pod
IP when the state is shared). */}}
{{- define "strait.sidecar.config" -}}
{{- $v := include "strait.sidecar.values" . | fromYaml }}
{{- $c := deepCopy $v.config }}
{{- $kinesisPort := include "strait.port" $c.kinesis.listen }}
{{- $kafkaPort := include "strait.port" $c.kafka.listen }}
{{- $adminPort := include "strait.port" $c.admin.listen }}
{{- $adminHost := ternary "0.0.0.0" "127.0.0.1" (ne (toString $v.sidecar.adminOnPodIP) "false") }}
{{- $_ := set $c "data_dir" "/var/lib/strait/data" }}
{{- $_ := set $c.kinesis "listen" (printf "127.0.0.1:%s" $kinesisPort) }}
{{- if and $kafkaPort (include "strait.sidecar.sharedState" .) }}
{{- $_ := set $c.kafka "listen" (printf "0.0.0.0:%s" $kafkaPort) }}
{{- $_ := unset $c.kafka "advertised_address" }}
{{- else if $kafkaPort }}
{{- $_ := set $c.kafka "listen" (printf "127.0.0.1:%s" $kafkaPort) }}
{{- $_ := set $c.kafka "advertised_address" (printf "127.0.0.1:%s" $kafkaPort) }}
{{- end }}
{{- if $adminPort }}
{{- $_ := set $c.admin "listen" (printf "%s:%s" $adminHost $adminPort) }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/* ConfigMap for the sidecar (include it from a template file of the app chart). */}}
{{- define "strait.sidecarConfigMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "strait.sidecar.configMapName" . }}
  labels:
    app.kubernetes.io/name: strait-sidecar
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/managed-by: {{ .Release.Service }}
data:
  strait.yaml: |
    # strait sidecar configuration, rendered by the strait chart's strait.sidecarConfigMap.
    {{- include "strait.sidecar.config" . | nindent 4 }}
{{- end }}

{{/* terminationGracePeriodSeconds for a pod with the sidecar. */}}
{{- define "strait.sidecarTerminationGracePeriodSeconds" -}}
{{- $v := include "strait.sidecar.values" . | fromYaml }}
{{- add (int $v.config.shutdown_grace_secs) (int $v.terminationGraceExtraSecs) }}
{{- end }}

{{/* "true" when strait runs as a native sidecar (an init container that keeps running). */}}
{{- define "strait.sidecar.native" -}}
{{- $v := include "strait.sidecar.values" . | fromYaml }}
{{- $form := toString (dig "sidecar" "form" "native" $v) }}
{{- if not (has $form (list "native" "classic")) }}
{{- fail (printf "strait.sidecar.form must be native or classic, not %q" $form) }}
{{- end }}
{{- if eq $form "native" }}true{{ end }}
{{- end }}

{{/* The pod's `initContainers:` items for strait: the native sidecar, or nothing. */}}
{{- define "strait.sidecarInitContainers" -}}
{{- if include "strait.sidecar.native" . }}
{{- include "strait.sidecar.container" (dict "root" . "native" true) }}
{{- end }}
{{- end }}

{{/* The pod's `containers:` items for strait: the classic sidecar, or nothing. */}}
{{- define "strait.sidecarContainers" -}}
{{- if not (include "strait.sidecar.native" .) }}
{{- include "strait.sidecar.container" (dict "root" . "native" false) }}
{{- end }}
{{- end }}

{{/* The strait container in its classic form, whatever sidecar.form says (the include of
charts written before the native form). */}}
{{- define "strait.sidecar" -}}
{{- include "strait.sidecar.container" (dict "root" . "native" false) }}
{{- end }}

{{/* The strait container; native adds restartPolicy: Always (an init container that keeps
running: Kubernetes' native sidecar). */}}
{{- define "strait.sidecar.container" -}}
{{- $native := .native }}
{{- with .root }}
{{- $v := include "strait.sidecar.values" . | fromYaml }}
{{- include "strait.validateBackendAuth" (dict "values" $v "prefix" "strait.") }}
{{- $c := include "strait.sidecar.config" . | fromYaml }}
{{- $kinesisPort := include "strait.port" $c.kinesis.listen }}
{{- $kafkaPort := include "strait.port" $c.kafka.listen }}
{{- $adminPort := include "strait.port" $c.admin.listen }}
{{- $shared := and $kafkaPort (include "strait.sidecar.sharedState" .) -}}
- name: {{ $v.sidecar.containerName }}
  image: {{ include "strait.image" (dict "values" $v "appVersion" (include "strait.sidecar.appVersion" .)) }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $native }}
  # A native sidecar: started before the app's containers (they wait for the startup probe)
  # and stopped after they have exited.
  restartPolicy: Always
  {{- end }}
  command:
    {{- toYaml $v.command | nindent 4 }}
  args:
    - serve
    - --config
    - /etc/strait/strait.yaml
  {{- if or $v.tls.enabled $v.extraEnv $v.sasl.enabled $v.backendTls.enabled $shared }}
  env:
    {{- if $shared }}
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    - name: STRAIT_KAFKA__ADVERTISED_ADDRESS
      value: "$(POD_IP):{{ $kafkaPort }}"
    {{- end }}
    {{- if $v.tls.enabled }}
    - name: STRAIT_KINESIS__TLS__CERT
      value: {{ printf "%s/tls.crt" $v.tls.mountPath | quote }}
    - name: STRAIT_KINESIS__TLS__KEY
      value: {{ printf "%s/tls.key" $v.tls.mountPath | quote }}
    {{- end }}
    {{- include "strait.backendAuthEnv" $v | nindent 4 }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- if and $adminPort (hasPrefix "0.0.0.0" $c.admin.listen) }}
  # Only the admin port is on the pod IP (probes, metrics), and Kafka when the state is shared
  # (other pods' clients are sent here); Kinesis stays on 127.0.0.1.
  ports:
    - name: strait-admin
      containerPort: {{ $adminPort }}
      protocol: TCP
    {{- if $shared }}
    - name: strait-kafka
      containerPort: {{ $kafkaPort }}
      protocol: TCP
    {{- end }}
  {{- if $v.probes.startup.enabled }}
  startupProbe:
    httpGet:
      path: {{ $v.sidecar.startupProbe.path }}
      port: {{ $adminPort }}
    periodSeconds: {{ $v.sidecar.startupProbe.periodSeconds }}
    failureThreshold: {{ $v.sidecar.startupProbe.failureThreshold }}
  {{- end }}
  livenessProbe:
    httpGet:
      path: {{ $v.probes.liveness.path }}
      port: {{ $adminPort }}
    periodSeconds: {{ $v.probes.liveness.periodSeconds }}
    timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
    failureThreshold: {{ $v.probes.liveness.failureThreshold }}
  readinessProbe:
    httpGet:
      path: {{ $v.probes.readiness.path }}
      port: {{ $adminPort }}
    periodSeconds: {{ $v.probes.readiness.periodSeconds }}
    timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
    failureThreshold: {{ $v.probes.readiness.failureThreshold }}
  {{- end }}
  resources:
    {{- toYaml $v.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: strait-config
      mountPath: /etc/strait/strait.yaml
      subPath: strait.yaml
      readOnly: true
    - name: strait-data
      mountPath: /var/lib/strait
    - name: strait-tmp
      mountPath: /tmp
    {{- if $v.tls.enabled }}
    - name: strait-tls
      mountPath: {{ $v.tls.mountPath }}
      readOnly: true
    {{- end }}
    {{- include "strait.backendTlsMount" (dict "values" $v "volume" "strait-kafka-tls") | nindent 4 }}
{{- end }}
{{- end }}

{{/* The sidecar's volumes (items of the pod's `volumes:` list). */}}
{{- define "strait.sidecarVolumes" -}}
{{- $v := include "strait.sidecar.values" . | fromYaml -}}
- name: strait-config
  configMap:
    name: {{ include "strait.sidecar.configMapName" . }}
- name: strait-data
  {{- if $v.sidecar.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ $v.sidecar.existingClaim }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ $v.sidecar.emptyDirSizeLimit }}
  {{- end }}
- name: strait-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if $v.tls.enabled }}
- name: strait-tls
  secret:
    secretName: {{ required "strait.tls.secretName is required with tls.enabled" $v.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- include "strait.backendTlsVolume" (dict "values" $v "volume" "strait-kafka-tls") }}
{{- end }}
