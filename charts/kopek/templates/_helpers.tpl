{{/* The chart name, overridable. */}}
{{- define "kopek.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every namespaced object and of the cluster-scoped ones. */}}
{{- define "kopek.fullname" -}}
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

{{- define "kopek.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard labels, on every object. */}}
{{- define "kopek.labels" -}}
helm.sh/chart: {{ include "kopek.chart" . }}
{{ include "kopek.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kopek
{{- end }}

{{/* The labels that select the operator's pods; never change them in an upgrade. */}}
{{- define "kopek.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kopek.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kopek.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kopek.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kopek.leaseName" -}}
{{- default (include "kopek.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "kopek.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Service's name: Prometheus Operator uses it as the `job` label of the scraped series. */}}
{{- define "kopek.metricsServiceName" -}}
{{- printf "%s-metrics" (include "kopek.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Whether the cluster serves the Prometheus Operator's API (ServiceMonitor, PrometheusRule). */}}
{{- define "kopek.hasMonitoringApi" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}

{{/* A probe from values; with metrics.secure its httpGet speaks HTTPS unless it names a scheme. */}}
{{- define "kopek.probe" -}}
{{- $probe := deepCopy .probe }}
{{- if and .secure $probe.httpGet }}
{{- if not $probe.httpGet.scheme }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- end }}
{{- toYaml $probe }}
{{- end }}

{{/* Where the metrics certificate Secret is mounted (metrics.certSecret). */}}
{{- define "kopek.metricsCertDir" -}}
/etc/kopek/metrics-tls
{{- end }}
