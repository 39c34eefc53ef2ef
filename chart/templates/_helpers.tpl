{{/* Common labels. */}}
{{- define "lockstep.labels" -}}
app.kubernetes.io/part-of: lockstep
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Image reference for one binary. */}}
{{- define "lockstep.image" -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{ printf "%s/%s:%s" .root.Values.image.registry .name $tag }}
{{- end -}}

{{- define "lockstep.cronhpa.name" -}}{{ .Release.Name }}-cronhpa{{- end -}}

{{- define "lockstep.metricsAdapter.name" -}}{{ .Release.Name }}-metrics-adapter{{- end -}}
