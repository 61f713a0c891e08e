{{/*
strait's own credentials for the Kafka cluster (backend.type: kafka): SASL from a Secret as
environment variables, and TLS material from a Secret as a mounted volume. Shared by the
StatefulSet/Deployment container and the sidecar; each takes the strait values.
*/}}

{{/* Fails on credentials strait could not use. dict: values, prefix (for messages). */}}
{{- define "strait.validateBackendAuth" -}}
{{- $v := .values -}}
{{- $p := .prefix -}}
{{- $kafka := eq (toString $v.config.backend.type) "kafka" -}}
{{- if $v.sasl.enabled }}
{{- if not $kafka }}
{{- fail (printf "%ssasl.enabled: strait logs in to a Kafka cluster only with config.backend.type: kafka" $p) }}
{{- end }}
{{- if not (has $v.sasl.mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512" "AWS_MSK_IAM")) }}
{{- fail (printf "%ssasl.mechanism must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM, not %q" $p (toString $v.sasl.mechanism)) }}
{{- end }}
{{- if and (not $v.sasl.existingSecret) (ne $v.sasl.mechanism "AWS_MSK_IAM") }}
{{- fail (printf "%ssasl.enabled needs %ssasl.existingSecret (a Secret with the credentials)" $p $p) }}
{{- end }}
{{- if and (eq $v.sasl.mechanism "AWS_MSK_IAM") (not $v.backendTls.enabled) }}
{{- fail (printf "%ssasl.mechanism AWS_MSK_IAM needs %sbackendTls.enabled (MSK takes IAM logins on TLS listeners only)" $p $p) }}
{{- end }}
{{- end }}
{{- if and $v.backendTls.enabled (not $kafka) }}
{{- fail (printf "%sbackendTls.enabled: TLS to a Kafka cluster needs config.backend.type: kafka" $p) }}
{{- end }}
{{- if and $v.backendTls.clientAuth (not $v.backendTls.existingSecret) }}
{{- fail (printf "%sbackendTls.clientAuth needs %sbackendTls.existingSecret (tls.crt, tls.key)" $p $p) }}
{{- end }}
{{- end }}

{{/* Environment entries (list items) for strait's login; the values are the strait values. */}}
{{- define "strait.backendAuthEnv" -}}
{{- $v := . -}}
{{- if $v.sasl.enabled }}
- name: STRAIT_BACKEND__KAFKA__SASL__MECHANISM
  value: {{ $v.sasl.mechanism | quote }}
{{- if eq $v.sasl.mechanism "AWS_MSK_IAM" }}
{{- /* Without a Secret: IRSA, whose webhook sets AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE. */}}
{{- if $v.sasl.existingSecret }}
{{- range $key := list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN" }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.sasl.existingSecret }}
      key: {{ $key | quote }}
      {{- if eq $key "AWS_SESSION_TOKEN" }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- else }}
- name: STRAIT_BACKEND__KAFKA__SASL__USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $v.sasl.existingSecret }}
      key: {{ $v.sasl.usernameKey | quote }}
- name: STRAIT_BACKEND__KAFKA__SASL__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.sasl.existingSecret }}
      key: {{ $v.sasl.passwordKey | quote }}
{{- end }}
{{- end }}
{{- if $v.backendTls.enabled }}
- name: STRAIT_BACKEND__KAFKA__TLS__ENABLED
  value: "true"
- name: STRAIT_BACKEND__KAFKA__TLS__CA
  {{- if and $v.backendTls.existingSecret $v.backendTls.caKey }}
  value: {{ printf "%s/%s" $v.backendTls.mountPath $v.backendTls.caKey | quote }}
  {{- else }}
  value: {{ $v.backendTls.systemCaFile | quote }}
  {{- end }}
{{- if $v.backendTls.clientAuth }}
- name: STRAIT_BACKEND__KAFKA__TLS__CERT
  value: {{ printf "%s/tls.crt" $v.backendTls.mountPath | quote }}
- name: STRAIT_BACKEND__KAFKA__TLS__KEY
  value: {{ printf "%s/tls.key" $v.backendTls.mountPath | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The volumeMounts entry for the backend TLS Secret. dict: values, volume (its name). */}}
{{- define "strait.backendTlsMount" -}}
{{- if and .values.backendTls.enabled .values.backendTls.existingSecret }}
- name: {{ .volume }}
  mountPath: {{ .values.backendTls.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{/* The volumes entry for the backend TLS Secret. dict: values, volume (its name). */}}
{{- define "strait.backendTlsVolume" -}}
{{- if and .values.backendTls.enabled .values.backendTls.existingSecret }}
- name: {{ .volume }}
  secret:
    secretName: {{ .values.backendTls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}
