{{- define "a" -}}
x: {{ include "b" . }}
{{- end -}}
{{- define "b" -}}
{{ .Values.missing.deep }}
{{- end -}}
