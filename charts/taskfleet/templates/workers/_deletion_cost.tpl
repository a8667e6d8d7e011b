{{/* Busy-aware scale-in (scaleIn.deletionCost): the workers' ServiceAccount, env, token volume and mount. */}}

{{/* The workers' ServiceAccount: their own when they patch their pods, else the fleet's (no API access). */}}
{{- define "taskfleet.workerServiceAccountName" -}}
{{- if .Values.scaleIn.deletionCost.enabled }}
{{- printf "%s-worker" (include "taskfleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- include "taskfleet.serviceAccountName" . }}
{{- end }}
{{- end }}

{{/* Worker env: the switch, the rate bound, and the pod's own name and namespace (downward API). */}}
{{- define "taskfleet.deletionCostEnv" -}}
- name: DELETION_COST_ENABLED
  value: {{ .Values.scaleIn.deletionCost.enabled | quote }}
{{- if .Values.scaleIn.deletionCost.enabled }}
- name: DELETION_COST_MIN_INTERVAL_SECONDS
  value: {{ .Values.scaleIn.deletionCost.minIntervalSeconds | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}
{{- end }}

{{/*
The token the in-cluster client reads, mounted into the worker container only (automountServiceAccountToken stays
false on every pod): what the kubelet's automount would project, with a lifetime of the chart's choosing.
*/}}
{{- define "taskfleet.deletionCostVolume" -}}
{{- if .Values.scaleIn.deletionCost.enabled }}
- name: kube-api-access
  projected:
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: {{ .Values.scaleIn.deletionCost.tokenExpirationSeconds }}
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end }}
{{- end }}

{{- define "taskfleet.deletionCostMount" -}}
{{- if .Values.scaleIn.deletionCost.enabled }}
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end }}
{{- end }}
