{{/* Names, labels, images and the fleet's shared environment. Helpers are named taskfleet.<noun>. */}}

{{- define "taskfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "taskfleet.fullname" -}}
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

{{- define "taskfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. IMPORTANT: selectors are immutable; changing these blocks future upgrades.
Call with (dict "ctx" $ "component" "api").
*/}}
{{- define "taskfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskfleet.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Standard labels for an object of a component. Call with (dict "ctx" $ "component" "api"). */}}
{{- define "taskfleet.labels" -}}
{{ include "taskfleet.selectorLabels" . }}
helm.sh/chart: {{ include "taskfleet.chart" .ctx }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: taskfleet
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod labels: standard labels plus the marker the Valkey NetworkPolicy admits. */}}
{{- define "taskfleet.podLabels" -}}
{{ include "taskfleet.labels" . }}
taskfleet.io/valkey-client: "true"
{{- end }}

{{- define "taskfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "taskfleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image of a service: (dict "ctx" $ "service" "api"); values.images.<service> wins. A tag "sha256:..." is a digest. */}}
{{- define "taskfleet.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .ctx.Values.image.tag }}
{{- $default := printf "%s/taskfleet-%s%s%s" .ctx.Values.image.registry .service (ternary "@" ":" (hasPrefix "sha256:" $tag)) $tag }}
{{- default $default (index .ctx.Values.images .service) }}
{{- end }}

{{/* A queue entry with workerDefaults filled in: (dict "ctx" $ "queue" $queue) -> YAML; use with fromYaml. */}}
{{- define "taskfleet.queue" -}}
{{- $q := mergeOverwrite (deepCopy .ctx.Values.workerDefaults) (deepCopy .queue) }}
{{- if not (int $q.listLength) }}
{{- $_ := set $q "listLength" $q.concurrency }}
{{- end }}
{{- toYaml $q }}
{{- end }}

{{- define "taskfleet.valkey.fullname" -}}
{{- printf "%s-valkey" (include "taskfleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "taskfleet.valkey.host" -}}
{{- if .Values.valkey.enabled }}
{{- printf "%s.%s.svc" (include "taskfleet.valkey.fullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.valkey.external.host }}
{{- end }}
{{- end }}

{{- define "taskfleet.valkey.secretName" -}}
{{- default (include "taskfleet.valkey.fullname" .) .Values.valkey.auth.existingSecret }}
{{- end }}

{{- define "taskfleet.valkey.tls" -}}
{{- and (not .Values.valkey.enabled) .Values.valkey.external.tls.enabled }}
{{- end }}

{{/* Where fleet pods find the CA of an external TLS Valkey (valkey.external.tls.caSecret). */}}
{{- define "taskfleet.valkey.caDir" -}}/etc/taskfleet/valkey-ca{{- end }}

{{- define "taskfleet.valkey.hasCa" -}}
{{- if and (eq (include "taskfleet.valkey.tls" .) "true") .Values.valkey.external.tls.caSecret }}true{{ else }}false{{ end }}
{{- end }}

{{/*
REDIS_URL of every fleet container. The ACL user and the password expand from earlier env entries
(VALKEY_USERNAME, VALKEY_PASSWORD). With TLS the URL names the verification itself (ssl_cert_reqs=required and,
with a caSecret, ssl_ca_certs=<mounted ca>), so Celery's broker, its result backend, redis-py and Flower all
verify the server the same way.
*/}}
{{- define "taskfleet.valkey.url" -}}
{{- $tls := eq (include "taskfleet.valkey.tls" .) "true" }}
{{- $user := ternary "$(VALKEY_USERNAME)" "" (ne (toString .Values.valkey.auth.username) "") }}
{{- $url := printf "%s://%s:$(VALKEY_PASSWORD)@%s:%d/%d" (ternary "rediss" "redis" $tls) $user (include "taskfleet.valkey.host" .) (int .Values.valkey.port) (int .Values.valkey.database) }}
{{- if $tls }}
{{- $url = printf "%s?ssl_cert_reqs=required" $url }}
{{- if eq (include "taskfleet.valkey.hasCa" .) "true" }}
{{- $url = printf "%s&ssl_ca_certs=%s/%s" $url (include "taskfleet.valkey.caDir" .) .Values.valkey.external.tls.caKey }}
{{- end }}
{{- end }}
{{- $url }}
{{- end }}

{{/* The CA volume and mount of fleet pods (nothing without an external TLS Valkey with a caSecret). */}}
{{- define "taskfleet.valkey.caVolume" -}}
{{- if eq (include "taskfleet.valkey.hasCa" .) "true" }}
- name: valkey-ca
  secret:
    secretName: {{ .Values.valkey.external.tls.caSecret }}
    items:
      - key: {{ .Values.valkey.external.tls.caKey }}
        path: {{ .Values.valkey.external.tls.caKey }}
{{- end }}
{{- end }}

{{- define "taskfleet.valkey.caMount" -}}
{{- if eq (include "taskfleet.valkey.hasCa" .) "true" }}
- name: valkey-ca
  mountPath: {{ include "taskfleet.valkey.caDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Environment every fleet container shares: Valkey URL with the password from its Secret, database, settings. */}}
{{- define "taskfleet.env" -}}
{{- if .Values.valkey.auth.username }}
- name: VALKEY_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "taskfleet.valkey.secretName" . }}
      key: {{ .Values.valkey.auth.usernameKey }}
{{- end }}
- name: VALKEY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "taskfleet.valkey.secretName" . }}
      key: {{ .Values.valkey.auth.secretKey }}
- name: REDIS_URL
  value: {{ include "taskfleet.valkey.url" . | quote }}
- name: DATABASE_URL
{{- if .Values.database.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.secretKey }}
{{- else }}
  value: {{ .Values.database.url | quote }}
{{- end }}
{{- if and .Values.migrations.enabled (ne (include "taskfleet.database.sqlite" .) "true") }}
# The migration hook Job brings the schema to head; services wait for it instead of migrating.
- name: DATABASE_MIGRATIONS
  value: wait
{{- end }}
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: CELERY_BEAT_SCHEDULE_ENABLED
  value: {{ .Values.config.beatScheduleEnabled | quote }}
- name: PIPELINE_SYNC_INTERVAL_HOURS
  value: {{ .Values.config.pipelineSyncIntervalHours | quote }}
- name: SYNC_SCHEDULE_HOUR
  value: {{ .Values.config.syncScheduleHour | quote }}
- name: WORKER_HEALTH_DIR
  value: {{ .Values.health.dir | quote }}
- name: WORKER_HEARTBEAT_INTERVAL_SECONDS
  value: {{ .Values.health.heartbeatIntervalSeconds | quote }}
- name: WORKER_HEARTBEAT_MAX_AGE_SECONDS
  value: {{ .Values.health.heartbeatMaxAgeSeconds | quote }}
- name: BEAT_SCHEDULE_FILE
  value: /tmp/celerybeat-schedule
- name: METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: BROKER_VISIBILITY_TIMEOUT_SECONDS
  value: {{ include "taskfleet.visibilityTimeout" . | quote }}
{{ include "taskfleet.appSecretEnv" . }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every fleet pod. */}}
{{- define "taskfleet.podSpecCommon" -}}
serviceAccountName: {{ include "taskfleet.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- include "taskfleet.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The emptyDir volumes a read-only root filesystem needs. */}}
{{- define "taskfleet.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end }}

{{- define "taskfleet.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Exec probe command of the health CLI: (dict "check" "live" "name" "worker-default"). */}}
{{- define "taskfleet.probeCommand" -}}
exec:
  command: ["python", "-m", "taskfleet_core.observability.probes", {{ .check | quote }}, "--name", {{ .name | quote }}]
{{- end }}

{{- define "taskfleet.appSecretName" -}}
{{- printf "%s-app" (include "taskfleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Keys of the chart-created application Secret: only values not taken from an existingSecret. */}}
{{- define "taskfleet.appSecretData" -}}
{{- $d := dict }}
{{- if not .Values.apiTokens.existingSecret }}
{{- $_ := set $d "api-tokens" .Values.apiTokens.tokens }}
{{- $_ := set $d "api-read-tokens" .Values.apiTokens.readTokens }}
{{- end }}
{{- if and (not .Values.smtp.existingSecret) .Values.smtp.username }}
{{- $_ := set $d "smtp-username" .Values.smtp.username }}
{{- $_ := set $d "smtp-password" .Values.smtp.password }}
{{- end }}
{{- if and (not .Values.otel.existingSecret) .Values.otel.endpoint }}
{{- $_ := set $d "otlp-endpoint" .Values.otel.endpoint }}
{{- end }}
{{- if $d }}{{ toYaml $d }}{{ end }}
{{- end }}

{{/* env entries read from the application Secret or the existingSecrets named in values. */}}
{{- define "taskfleet.appSecretEnv" -}}
{{- $app := include "taskfleet.appSecretName" . }}
- name: API_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ default $app .Values.apiTokens.existingSecret }}
      key: {{ ternary .Values.apiTokens.secretKey "api-tokens" (ne .Values.apiTokens.existingSecret "") }}
- name: API_READ_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ default $app .Values.apiTokens.existingSecret }}
      key: {{ ternary .Values.apiTokens.readSecretKey "api-read-tokens" (ne .Values.apiTokens.existingSecret "") }}
      optional: true
- name: SMTP_HOST
  value: {{ .Values.smtp.host | quote }}
- name: SMTP_PORT
  value: {{ .Values.smtp.port | quote }}
- name: SMTP_STARTTLS
  value: {{ .Values.smtp.starttls | quote }}
{{- if or .Values.smtp.existingSecret .Values.smtp.username }}
- name: SMTP_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ default $app .Values.smtp.existingSecret }}
      key: {{ ternary .Values.smtp.usernameKey "smtp-username" (ne .Values.smtp.existingSecret "") }}
- name: SMTP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default $app .Values.smtp.existingSecret }}
      key: {{ ternary .Values.smtp.passwordKey "smtp-password" (ne .Values.smtp.existingSecret "") }}
{{- end }}
{{- if or .Values.otel.existingSecret .Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  valueFrom:
    secretKeyRef:
      name: {{ default $app .Values.otel.existingSecret }}
      key: {{ ternary .Values.otel.secretKey "otlp-endpoint" (ne .Values.otel.existingSecret "") }}
{{- end }}
{{- end }}

{{/*
Pod annotations that roll the pods when their configuration changes: a checksum of the application Secret's
rendered data and of every value the shared environment is built from (not of the generated Valkey password).
*/}}
{{- define "taskfleet.checksumAnnotations" -}}
checksum/app-secret: {{ include "taskfleet.appSecretData" . | sha256sum }}
checksum/env: {{ toJson (list .Values.valkey.auth .Values.valkey.external .Values.database .Values.config .Values.health .Values.apiTokens.existingSecret .Values.smtp .Values.otel.existingSecret) | sha256sum }}
{{- end }}

{{/*
The visibility timeout every queue needs (invariant 2): the largest of 2 x timeLimit and retryBackoffMaxSeconds +
timeLimit over the queues, with workerDefaults merged.
*/}}
{{- define "taskfleet.visibilityTimeoutRequired" -}}
{{- $need := 0 }}
{{- range .Values.queues }}
{{- $q := include "taskfleet.queue" (dict "ctx" $ "queue" .) | fromYaml }}
{{- $need = max $need (mul 2 (int $q.timeLimit)) (add (int $q.retryBackoffMaxSeconds) (int $q.timeLimit)) }}
{{- end }}
{{- $need }}
{{- end }}

{{- define "taskfleet.visibilityTimeout" -}}
{{- if .Values.config.visibilityTimeoutSeconds }}{{ int .Values.config.visibilityTimeoutSeconds }}{{ else }}{{ include "taskfleet.visibilityTimeoutRequired" . }}{{ end }}
{{- end }}

{{/*
Security contexts with the locked parts forced, whatever values say (a null in values removes a key, and the
schema cannot see that): all capabilities dropped, no privilege escalation, read-only root, non-root, and a
seccomp profile (RuntimeDefault unless values name another).
*/}}
{{- define "taskfleet.containerSecurityContext" -}}
{{- $c := deepCopy (.Values.containerSecurityContext | default dict) }}
{{- $_ := set $c "capabilities" (dict "drop" (list "ALL")) }}
{{- $_ = set $c "allowPrivilegeEscalation" false }}
{{- $_ = set $c "readOnlyRootFilesystem" true }}
{{- $_ = set $c "runAsNonRoot" true }}
{{- if not (get ($c.seccompProfile | default dict) "type") }}
{{- $_ = set $c "seccompProfile" (dict "type" "RuntimeDefault") }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{- define "taskfleet.podSecurityContext" -}}
{{- $p := deepCopy (.Values.podSecurityContext | default dict) }}
{{- $_ := set $p "runAsNonRoot" true }}
{{- if not (get ($p.seccompProfile | default dict) "type") }}
{{- $_ = set $p "seccompProfile" (dict "type" "RuntimeDefault") }}
{{- end }}
{{- toYaml $p }}
{{- end }}

{{/* repository:tag, or repository@sha256:... when the tag is a digest: (dict "repository" .. "tag" ..). */}}
{{- define "taskfleet.imageRef" -}}
{{- printf "%s%s%s" .repository (ternary "@" ":" (hasPrefix "sha256:" (toString .tag))) (toString .tag) }}
{{- end }}

{{/*
Scheduling of a non-worker component: (dict "ctx" $ "component" "api" "values" .Values.api). nodeSelector,
tolerations, affinity, priorityClassName and topologySpreadConstraints (an entry without labelSelector spreads
the component's own pods), as the workers take them per queue.
*/}}
{{- define "taskfleet.placement" -}}
{{- $v := .values }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- if $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range $v.topologySpreadConstraints }}
  {{- $c := deepCopy . }}
  {{- if not $c.labelSelector }}
  {{- $_ := set $c "labelSelector" (dict "matchLabels" (include "taskfleet.selectorLabels" (dict "ctx" $.ctx "component" $.component) | fromYaml)) }}
  {{- end }}
  - {{- toYaml $c | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* "true" when the API can run more than one pod (HPA with maxReplicas > 1, or replicas > 1). */}}
{{- define "taskfleet.api.multiPod" -}}
{{- if .Values.api.hpa.enabled }}{{ gt (int .Values.api.hpa.maxReplicas) 1 }}{{ else }}{{ gt (int .Values.api.replicas) 1 }}{{ end }}
{{- end }}

{{/* "true" when DATABASE_URL is the per-pod SQLite file (no Secret, a sqlite URL). */}}
{{- define "taskfleet.database.sqlite" -}}
{{- and (not .Values.database.existingSecret) (hasPrefix "sqlite" .Values.database.url) }}
{{- end }}
