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

{{/*
A CA for serving certificates, as YAML {cert, key} (base64 PEM): the one in the release's Secret
.secret when it exists (upgrades keep it), else a new self-signed one (install; also helm template,
which cannot look up).
*/}}
{{- define "lockstep.ca" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if and $existing (hasKey ($existing.data | default dict) "tls.crt") (hasKey ($existing.data | default dict) "tls.key") -}}
cert: {{ index $existing.data "tls.crt" }}
key: {{ index $existing.data "tls.key" }}
{{- else -}}
{{- $ca := genCA .secret 3650 -}}
cert: {{ $ca.Cert | b64enc }}
key: {{ $ca.Key | b64enc }}
{{- end -}}
{{- end -}}
