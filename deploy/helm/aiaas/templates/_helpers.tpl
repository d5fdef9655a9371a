{{/*
The chart name.
*/}}
{{- define "aiaas.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources (63 characters at most, a DNS label).
*/}}
{{- define "aiaas.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "aiaas.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "aiaas.labels" -}}
helm.sh/chart: {{ include "aiaas.chart" . }}
{{ include "aiaas.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aiaas
{{- end }}

{{/*
Selector labels (immutable once the Deployment exists: never add to them).
*/}}
{{- define "aiaas.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aiaas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "aiaas.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aiaas.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The container image reference.
*/}}
{{- define "aiaas.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Name of the development Secret (devSecret.create).
*/}}
{{- define "aiaas.devSecretName" -}}
{{- printf "%s-dev" (include "aiaas.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the Secret holding the master key. Required: a render without it fails.
*/}}
{{- define "aiaas.masterKeySecretName" -}}
{{- if .Values.devSecret.create }}
{{- include "aiaas.devSecretName" . }}
{{- else }}
{{- required "secrets.masterKey.name is required: name an existing Secret that holds the master key (64 hex digits, from `openssl rand -hex 32`) under the key secrets.masterKey.key. See docs/kubernetes.md." .Values.secrets.masterKey.name }}
{{- end }}
{{- end }}

{{/*
Name of the Secret for one secret reference: the development Secret, the reference's own
name, or the master key's Secret. Call with (dict "ctx" $ "ref" .Values.secrets.adminKey).
*/}}
{{- define "aiaas.secretName" -}}
{{- if .ctx.Values.devSecret.create }}
{{- include "aiaas.devSecretName" .ctx }}
{{- else }}
{{- default (include "aiaas.masterKeySecretName" .ctx) .ref.name }}
{{- end }}
{{- end }}

{{/*
URL scheme the pods serve.
*/}}
{{- define "aiaas.scheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: explicit, or preStop sleep + drain timeout + 15 seconds.
*/}}
{{- define "aiaas.terminationGracePeriodSeconds" -}}
{{- if .Values.terminationGracePeriodSeconds }}
{{- .Values.terminationGracePeriodSeconds | int }}
{{- else }}
{{- add (.Values.lifecycle.preStopSleepSeconds | int) (.Values.config.drainTimeoutSeconds | int) 15 }}
{{- end }}
{{- end }}

{{/*
A probe with the scheme of the pods (HTTPS with tls.enabled) on its httpGet.
*/}}
{{- define "aiaas.probe" -}}
{{- $probe := deepCopy .probe }}
{{- if hasKey $probe "httpGet" }}
{{- $_ := set $probe "httpGet" (mergeOverwrite (dict "scheme" (include "aiaas.scheme" .ctx)) $probe.httpGet) }}
{{- end }}
{{- toYaml $probe }}
{{- end }}

{{/*
Checks of values that the schema cannot express; fails the render with a clear message.
*/}}
{{- define "aiaas.validate" -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled is true but tls.secretName is empty: name an existing kubernetes.io/tls Secret." }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas." }}
{{- end }}
{{- if not (or (gt (int .Values.autoscaling.targetCPUUtilizationPercentage) 0) (gt (int .Values.autoscaling.targetMemoryUtilizationPercentage) 0) .Values.autoscaling.queueDepth.enabled) }}
{{- fail "autoscaling.enabled is true but no metric is: set targetCPUUtilizationPercentage, targetMemoryUtilizationPercentage or enable queueDepth." }}
{{- end }}
{{- end }}
{{- if .Values.artifacts.url }}
{{- if not (hasPrefix "s3://" .Values.artifacts.url) }}
{{- fail (printf "artifacts.url must look like s3://bucket/prefix, got %q." .Values.artifacts.url) }}
{{- end }}
{{- end }}
{{- end }}
