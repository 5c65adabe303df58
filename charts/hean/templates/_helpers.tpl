{{/* The chart name, overridable. */}}
{{- define "hean.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of object names. */}}
{{- define "hean.fullname" -}}
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

{{- define "hean.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "hean.labels" -}}
helm.sh/chart: {{ include "hean.chart" . }}
{{ include "hean.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hean
{{- end }}

{{- define "hean.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hean.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of monitoring objects: the common ones plus .Values.monitoring.labels. */}}
{{- define "hean.monitoringLabels" -}}
{{ include "hean.labels" . }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "hean.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hean.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest. Call with (dict "image" .Values.x.image "root" $). */}}
{{- define "hean.imageRef" -}}
{{- $image := .image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* Whether to render monitoring.coreos.com/v1 objects at all. */}}
{{- define "hean.monitoringApi" -}}
{{- if or (not .Values.monitoring.apiCheck) (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") }}true{{ end }}
{{- end }}

{{/* Labels of engine pods, as operator/hean_operator/builders/common.py sets them. */}}
{{- define "hean.engineSelectorLabels" -}}
app.kubernetes.io/name: hean-engine
app.kubernetes.io/component: engine
app.kubernetes.io/managed-by: hean-operator
{{- end }}

{{/* The namespace-scoped rules: what operator/hean_operator/kube/cluster.py VERBS
     lists, plus what kopf needs (watch/patch TradingEngines, post Events). */}}
{{- define "hean.namespacedRules" -}}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "create", "delete", "list", "watch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["hean.io"]
  resources: ["tradingengines"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["hean.io"]
  resources: ["tradingengines/status"]
  verbs: ["patch"]
- apiGroups: ["hean.io"]
  resources: ["liveapprovals"]
  verbs: ["list", "watch"]
- apiGroups: ["hean.io"]
  resources: ["liveapprovals/status"]
  verbs: ["patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "create", "list", "watch"]
- apiGroups: ["hean.io"]
  resources: ["backtests"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["hean.io"]
  resources: ["backtests/status"]
  verbs: ["patch"]
{{- end }}

{{/*
The ConfigMap with the LiveApproval trust policy (in the release namespace).
*/}}
{{- define "hean.trustConfigMap" -}}
{{ include "hean.fullname" . }}-liveapproval-trust
{{- end }}

{{/*
name=quantity pairs, sorted by name: the operator's --engine-requests/--engine-limits.
*/}}
{{- define "hean.quantities" -}}
{{- $pairs := list -}}
{{- range $name, $quantity := . -}}
{{- $pairs = append $pairs (printf "%s=%v" $name $quantity) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/*
Which namespaces the operator serves: the listed ones (a Role in each), or,
as an explicit opt-in, all of them (clusterWide). Never a system namespace.
*/}}
{{- define "hean.validateScope" -}}
{{- range .Values.watchNamespaces }}
{{- if has . (list "kube-system" "kube-public" "kube-node-lease") }}
{{- fail (printf "watchNamespaces: %s is a system namespace; the operator never serves one (it would create and delete pods and read Secrets there)" .) }}
{{- end }}
{{- end }}
{{- if and .Values.clusterWide .Values.watchNamespaces }}
{{- fail "clusterWide: true serves every namespace: set watchNamespaces to [] (it lists the namespaces of a namespaced install)" }}
{{- end }}
{{- if and (not .Values.clusterWide) (not .Values.watchNamespaces) }}
{{- fail "watchNamespaces is empty: list the namespaces whose TradingEngines the operator serves, or opt in to clusterWide: true (see the chart's README for its risk)" }}
{{- end }}
{{- end }}

{{/* The console's objects: the common labels with component "console". */}}
{{- define "hean.consoleSelectorLabels" -}}
app.kubernetes.io/name: {{ include "hean.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: console
{{- end }}

{{- define "hean.consoleLabels" -}}
helm.sh/chart: {{ include "hean.chart" . }}
{{ include "hean.consoleSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hean
{{- end }}

{{- define "hean.consoleName" -}}
{{- printf "%s-console" (include "hean.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The read-only console's rules: exactly what it calls (CONSOLE_VERBS in
     desk/hean_desk/console/access.py; tests/repo/chart/test_chart_console.py checks
     both directions). Reads only; no Secrets (see console.engineHistory). */}}
{{- define "hean.consoleRules" -}}
- apiGroups: ["hean.io"]
  resources: ["tradingengines"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["hean.io"]
  resources: ["liveapprovals"]
  verbs: ["list"]
- apiGroups: ["hean.io"]
  resources: ["backtests"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["pods/log", "pods/proxy"]
  verbs: ["get"]
{{- end }}

{{/*
console.engineHistory ("NAMESPACE/ENGINE" entries) as a dict: namespace -> the
engines' control Secrets there. Each entry must name a served namespace.
*/}}
{{- define "hean.consoleHistorySecrets" -}}
{{- $byNamespace := dict }}
{{- range .Values.console.engineHistory }}
{{- $parts := splitList "/" . }}
{{- $namespace := index $parts 0 }}
{{- if and (not $.Values.clusterWide) (not (has $namespace $.Values.watchNamespaces)) }}
{{- fail (printf "console.engineHistory: %s is not in a watched namespace (watchNamespaces: %s)" . (join ", " $.Values.watchNamespaces)) }}
{{- end }}
{{- $secrets := default (list) (get $byNamespace $namespace) }}
{{- $_ := set $byNamespace $namespace (append $secrets (printf "%s-control" (index $parts 1)) | uniq) }}
{{- end }}
{{- toJson $byNamespace }}
{{- end }}
