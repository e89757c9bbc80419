{{- define "helper" -}}
a={{ .a }} missing={{ .b }}
{{- end -}}
