{{/*
Rules that span several values (values.schema.json checks each value alone). Every broken rule adds a message
naming the key and the fix; the chart then fails once, listing them all.
*/}}
{{- define "taskfleet.validateValues" -}}
{{- $errors := list }}
{{- $seen := dict }}
{{- range $i, $raw := .Values.queues }}
{{- $name := $raw.name | default "" }}
{{- if not $name }}
{{- $errors = append $errors (printf "queues[%d]: has no name; set queues[%d].name to the registry's queue name (taskfleet_core.tasks.queues.QUEUES)" $i $i) }}
{{- else }}
{{- if hasKey $seen $name }}
{{- $errors = append $errors (printf "queues[%d]: queue %q is listed twice; keep one entry per queue" $i $name) }}
{{- end }}
{{- $_ := set $seen $name true }}
{{- $q := include "taskfleet.queue" (dict "ctx" $ "queue" $raw) | fromYaml }}
{{- $where := printf "queues[%d] (%s)" $i $name }}
{{- if lt (int $q.maxReplicaCount) (int $q.minReplicaCount) }}
{{- $errors = append $errors (printf "%s: maxReplicaCount %d is below minReplicaCount %d; raise maxReplicaCount or lower minReplicaCount" $where (int $q.maxReplicaCount) (int $q.minReplicaCount)) }}
{{- end }}
{{- if gt (int $q.fallback.replicas) (int $q.maxReplicaCount) }}
{{- $errors = append $errors (printf "%s: fallback.replicas %d is above maxReplicaCount %d; lower fallback.replicas" $where (int $q.fallback.replicas) (int $q.maxReplicaCount)) }}
{{- end }}
{{- if gt (int $q.prefetchMultiplier) 4 }}
{{- $errors = append $errors (printf "%s: prefetchMultiplier %d is too large; keep it small (1, at most 4): prefetched messages wait behind running tasks on one pod while other pods idle, and each is redelivered if that pod dies" $where (int $q.prefetchMultiplier)) }}
{{- end }}
{{- if ge (int $q.softTimeLimit) (int $q.timeLimit) }}
{{- $errors = append $errors (printf "%s: softTimeLimit %d must be below timeLimit %d" $where (int $q.softTimeLimit) (int $q.timeLimit)) }}
{{- end }}
{{- $minGrace := add (int $q.timeLimit) (int $q.graceMarginSeconds) }}
{{- if lt (int $q.terminationGracePeriodSeconds) (int $minGrace) }}
{{- $errors = append $errors (printf "%s: terminationGracePeriodSeconds %d is shorter than timeLimit %d + graceMarginSeconds %d; set it to at least %d so a warm shutdown can finish running tasks" $where (int $q.terminationGracePeriodSeconds) (int $q.timeLimit) (int $q.graceMarginSeconds) $minGrace) }}
{{- end }}
{{- if le (int $q.cooldownPeriod) (int $q.terminationGracePeriodSeconds) }}
{{- $errors = append $errors (printf "%s: cooldownPeriod %d must be longer than terminationGracePeriodSeconds %d; raise cooldownPeriod" $where (int $q.cooldownPeriod) (int $q.terminationGracePeriodSeconds)) }}
{{- end }}
{{- if le (int $q.scaleDown.stabilizationWindowSeconds) (int $q.terminationGracePeriodSeconds) }}
{{- $errors = append $errors (printf "%s: scaleDown.stabilizationWindowSeconds %d must be longer than terminationGracePeriodSeconds %d; raise it" $where (int $q.scaleDown.stabilizationWindowSeconds) (int $q.terminationGracePeriodSeconds)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $vt := int .Values.config.visibilityTimeoutSeconds }}
{{- if $vt }}
{{- range $i, $raw := .Values.queues }}
{{- $q := include "taskfleet.queue" (dict "ctx" $ "queue" $raw) | fromYaml }}
{{- if lt $vt (mul 2 (int $q.timeLimit)) }}
{{- $errors = append $errors (printf "config.visibilityTimeoutSeconds %d is below 2 x timeLimit %d of queues[%d] (%s): a running task would be delivered twice; set it to at least %d, or 0 to derive it" $vt (int $q.timeLimit) $i $q.name (mul 2 (int $q.timeLimit))) }}
{{- end }}
{{- if lt $vt (add (int $q.retryBackoffMaxSeconds) (int $q.timeLimit)) }}
{{- $errors = append $errors (printf "config.visibilityTimeoutSeconds %d is below retryBackoffMaxSeconds %d + timeLimit %d of queues[%d] (%s); set it to at least %d, or 0 to derive it" $vt (int $q.retryBackoffMaxSeconds) (int $q.timeLimit) $i $q.name (add (int $q.retryBackoffMaxSeconds) (int $q.timeLimit))) }}
{{- end }}
{{- end }}
{{- end }}
{{- if not .Values.queues }}
{{- $errors = append $errors "queues: the list is empty; list every queue of the registry" }}
{{- end }}
{{- if and (not .Values.valkey.enabled) (not .Values.valkey.external.host) }}
{{- $errors = append $errors "valkey: valkey.enabled is false but valkey.external.host is empty; set the external host or enable the in-chart Valkey" }}
{{- end }}
{{- if and .Values.valkey.enabled .Values.valkey.external.host }}
{{- $errors = append $errors "valkey: both valkey.enabled and valkey.external.host are set; choose one" }}
{{- end }}
{{- if and .Values.valkey.enabled .Values.valkey.auth.username }}
{{- $errors = append $errors (printf "valkey.auth.username %q: the in-chart Valkey has only its default user (requirepass); ACL users are for an external Valkey (valkey.enabled false, valkey.external.host)" .Values.valkey.auth.username) }}
{{- end }}
{{- if and .Values.valkey.external.tls.caSecret (not (eq (include "taskfleet.valkey.tls" .) "true")) }}
{{- $errors = append $errors "valkey.external.tls.caSecret is set but TLS is off: set valkey.external.tls.enabled (with an external Valkey) or drop caSecret" }}
{{- end }}
{{- if .Values.keda.enabled }}
{{- $kedaMin := index .Chart.Annotations "taskfleet.io/keda-min-version" }}
{{- if and .Values.keda.version (not (semverCompare (printf ">=%s-0" $kedaMin) .Values.keda.version)) }}
{{- $errors = append $errors (printf "keda.version %s is older than the %s the chart needs (ScaledObject fallback.behavior currentReplicasIfHigher); upgrade KEDA, or set keda.enabled false for fixed replicas" .Values.keda.version $kedaMin) }}
{{- end }}
{{- if and .Values.keda.requireApi (not (.Capabilities.APIVersions.Has "keda.sh/v1alpha1")) }}
{{- $errors = append $errors (printf "keda.requireApi: the cluster does not serve keda.sh/v1alpha1; install KEDA >= %s (namespace keda) first, or with helm template pass --api-versions keda.sh/v1alpha1" $kedaMin) }}
{{- end }}
{{- end }}
{{- if and (eq (include "taskfleet.database.sqlite" .) "true") (eq (include "taskfleet.api.multiPod" .) "true") }}
{{- $errors = append $errors (printf "database: the per-pod SQLite default (database.url %s) cannot serve an API that runs more than one pod (%s): each pod would answer from its own file. Set database.existingSecret to a PostgreSQL URL (postgresql+asyncpg://...), or run one API pod (api.hpa.enabled false, api.replicas 1)" .Values.database.url (ternary (printf "api.hpa.maxReplicas %d" (int .Values.api.hpa.maxReplicas)) (printf "api.replicas %d" (int .Values.api.replicas)) .Values.api.hpa.enabled)) }}
{{- end }}
{{- if and .Values.flower.enabled (not .Values.flower.basicAuth.existingSecret) }}
{{- $errors = append $errors "flower: flower.enabled needs flower.basicAuth.existingSecret (a Secret with key `auth` = user:password); Flower never runs without auth" }}
{{- end }}
{{- if and .Values.api.hpa.enabled (lt (int .Values.api.hpa.maxReplicas) (int .Values.api.hpa.minReplicas)) }}
{{- $errors = append $errors (printf "api.hpa: maxReplicas %d is below minReplicas %d" (int .Values.api.hpa.maxReplicas) (int .Values.api.hpa.minReplicas)) }}
{{- end }}
{{- if $errors }}
{{- fail (printf "\n\nVALUES VALIDATION:\n  %s\n" (join "\n  " $errors)) }}
{{- end }}
{{- end }}
