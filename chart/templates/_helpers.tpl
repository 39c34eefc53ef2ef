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

{{/*
The metrics adapter's configuration file: values.metricsAdapter.config, with the credentials
of its alibabaCloud section pointed at the mounted Secret when alibabaCloudSecret is set and
the section names no credentials of its own.
*/}}
{{- define "lockstep.metricsAdapterConfig" -}}
{{- $cfg := deepCopy .Values.metricsAdapter.config -}}
{{- if and .Values.metricsAdapter.alibabaCloudSecret $cfg.alibabaCloud -}}
{{- if not $cfg.alibabaCloud.credentials -}}
{{- $_ := set $cfg.alibabaCloud "credentials" (dict "secretDir" "/etc/lockstep/alibaba-cloud") -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "lockstep.vpaInplace.name" -}}{{ .Release.Name }}-vpa-inplace{{- end -}}

{{- define "lockstep.nodeAutoscaler.name" -}}{{ .Release.Name }}-node-autoscaler{{- end -}}
