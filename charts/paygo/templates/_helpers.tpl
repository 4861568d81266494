{{- define "paygo.fullname" -}}
{{- if contains "paygo" .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-paygo" .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "paygo.operatorName" -}}{{ include "paygo.fullname" . }}-operator{{- end -}}

{{- define "paygo.labels" -}}
app.kubernetes.io/name: paygo
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "paygo.operatorSelector" -}}
app.kubernetes.io/name: paygo
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "paygo.operatorImage" -}}
{{ .Values.operator.image.repository }}:{{ .Values.operator.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "paygo.sidecarImage" -}}
{{ .Values.sidecar.image.repository }}:{{ .Values.sidecar.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "paygo.webhookName" -}}{{ include "paygo.fullname" . }}-inject{{- end -}}
{{- define "paygo.tlsSecret" -}}{{ include "paygo.operatorName" . }}-tls{{- end -}}

{{/* true when a Prometheus Operator resource should be rendered: "true", or "auto" with the CRDs present */}}
{{- define "paygo.monitoringEnabled" -}}
{{- $v := toString .value -}}
{{- if or (eq $v "true") (and (eq $v "auto") (.root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}true{{- end -}}
{{- end -}}

{{/* What both webhook entries share. */}}
{{- define "paygo.webhookCommon" -}}
clientConfig:
  service:
    name: {{ include "paygo.operatorName" . }}
    namespace: {{ .Release.Namespace }}
    path: /mutate-pods
    port: 8443
rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE]
    resources: [pods]
    scope: Namespaced
sideEffects: None
admissionReviewVersions: [v1]
failurePolicy: {{ .Values.webhook.failurePolicy }}
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
reinvocationPolicy: Never
{{- end }}
