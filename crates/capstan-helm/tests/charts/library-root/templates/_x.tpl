{{- define "library-root.x" -}}x{{- end -}}
