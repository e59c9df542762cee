{{/*
Names
*/}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sluice.fullname" -}}
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

{{- define "sluice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Stage table: values key -> component name (also the binary and image name).
*/}}
{{- define "sluice.component" -}}
{{- $c := dict "collector" "collector" "archiver" "stream-archiver" "transcoder" "transcoder" "loader" "warehouse-loader" "setup" "setup" -}}
{{- required (printf "unknown stage %q" .stage) (get $c .stage) -}}
{{- end }}

{{/* <fullname>-<component>, e.g. sluice-stream-archiver. Args: root, stage */}}
{{- define "sluice.stageName" -}}
{{- printf "%s-%s" (include "sluice.fullname" .root) (include "sluice.component" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels. Common labels on every object; selector labels are the stable subset;
component labels add app.kubernetes.io/component for one stage.
*/}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ include "sluice.chart" . }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
{{- end }}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Args: root, stage */}}
{{- define "sluice.componentLabels" -}}
{{ include "sluice.labels" .root }}
app.kubernetes.io/component: {{ include "sluice.component" . }}
{{- end }}

{{/* Args: root, stage */}}
{{- define "sluice.componentSelectorLabels" -}}
{{ include "sluice.selectorLabels" .root }}
app.kubernetes.io/component: {{ include "sluice.component" . }}
{{- end }}

{{/*
Image of a stage. Args: root, stage
*/}}
{{- define "sluice.image" -}}
{{- $root := .root -}}
{{- $s := index $root.Values .stage -}}
{{- $img := $s.image | default dict -}}
{{- $imageName := ternary "sluice" (include "sluice.component" .) (eq .stage "setup") -}}
{{- $repo := $img.repository | default (printf "%s/%s" $root.Values.image.repositoryPrefix $imageName) -}}
{{- $tag := $img.tag | default $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- printf "%s:%s" $repo (toString $tag) -}}
{{- end }}

{{/*
ServiceAccount name of a stage. Args: root, stage
*/}}
{{- define "sluice.serviceAccountName" -}}
{{- $s := index .root.Values .stage -}}
{{- if .root.Values.serviceAccount.create -}}
{{- include "sluice.stageName" . -}}
{{- else -}}
{{- $s.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end }}

{{/*
sluice.toml, rendered from .Values.config (with chart-computed keys merged
in). Maps become tables, scalars and lists become TOML values through toJson
(a JSON string, number, boolean or array of those is valid TOML), null and ""
are omitted.
*/}}
{{- define "sluice.configData" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $archiver := get $cfg "archiver" | default dict -}}
{{- $_ := set $archiver "replica_count" (int .Values.archiver.replicas) -}}
{{- $_ := set $cfg "archiver" $archiver -}}
# sluice.toml, rendered by the {{ include "sluice.chart" . }} Helm chart from
# .Values.config. Edit values, not this file. Environment variables
# SLUICE_<SECTION>__<KEY> override these keys.
{{- range $k := keys $cfg | sortAlpha }}
{{- $v := get $cfg $k }}
{{- if and (not (kindIs "map" $v)) (not (kindIs "invalid" $v)) (not (and (kindIs "string" $v) (eq $v ""))) }}
{{ include "sluice.tomlKey" $k }} = {{ $v | toJson }}
{{- end }}
{{- end }}
{{- include "sluice.tomlTables" (dict "map" $cfg "path" "") }}
{{- end }}

{{/* Args: map, path. Emits [path.key] for each submap of map, recursively. */}}
{{- define "sluice.tomlTables" -}}
{{- $map := .map -}}
{{- range $k := keys $map | sortAlpha }}
{{- $v := get $map $k }}
{{- if kindIs "map" $v }}
{{- $p := ternary (include "sluice.tomlKey" $k) (printf "%s.%s" $.path (include "sluice.tomlKey" $k)) (eq $.path "") }}

[{{ $p }}]
{{- range $sk := keys $v | sortAlpha }}
{{- $sv := get $v $sk }}
{{- if and (not (kindIs "map" $sv)) (not (kindIs "invalid" $sv)) (not (and (kindIs "string" $sv) (eq $sv ""))) }}
{{ include "sluice.tomlKey" $sk }} = {{ $sv | toJson }}
{{- end }}
{{- end }}
{{- include "sluice.tomlTables" (dict "map" $v "path" $p) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sluice.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ . | toJson }}{{ end -}}
{{- end }}

{{/* Checksum of the rendered configuration, for the checksum/config annotation. */}}
{{- define "sluice.configChecksum" -}}
{{- include "sluice.configData" . | sha256sum -}}
{{- end }}

{{/*
Pod template metadata annotations. Args: root, stage
*/}}
{{- define "sluice.podAnnotations" -}}
checksum/config: {{ include "sluice.configChecksum" .root }}
{{- $s := index .root.Values .stage }}
{{- with (merge (dict) ($s.podAnnotations | default dict) .root.Values.podAnnotations) }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod labels. Args: root, stage */}}
{{- define "sluice.podLabels" -}}
{{ include "sluice.componentLabels" . }}
{{- $s := index .root.Values .stage }}
{{- with (merge (dict) ($s.podLabels | default dict) .root.Values.podLabels) }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Environment common to every container. Args: root, stage
*/}}
{{- define "sluice.env" -}}
- name: SLUICE_CONFIG
  value: /etc/sluice/sluice.toml
- name: RUST_LOG
  value: {{ .root.Values.logLevel | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- $s := index .root.Values .stage }}
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $s.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* SLUICE_WAREHOUSE__URL from the existing Secret. Args: root */}}
{{- define "sluice.warehouseEnv" -}}
- name: SLUICE_WAREHOUSE__URL
  valueFrom:
    secretKeyRef:
      name: {{ required "warehouseSecret.name is required" .Values.warehouseSecret.name | quote }}
      key: {{ required "warehouseSecret.key is required" .Values.warehouseSecret.key | quote }}
{{- end }}

{{/* Liveness and readiness probes on the named admin port. */}}
{{- define "sluice.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 6
readinessProbe:
  httpGet:
    path: /readyz
    port: admin
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/* Volume mounts shared by every container. */}}
{{- define "sluice.volumeMounts" -}}
- name: config
  mountPath: /etc/sluice
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Volumes shared by every pod. Args: root, stage, configMap (name) */}}
{{- define "sluice.volumes" -}}
{{- $s := index .root.Values .stage -}}
- name: config
  configMap:
    name: {{ .configMap }}
    items:
      - key: sluice.toml
        path: sluice.toml
- name: tmp
  emptyDir:
    {{- with $s.tmpSizeLimit }}
    sizeLimit: {{ . }}
    {{- else }}
    {}
    {{- end }}
{{- end }}

{{/*
Pod spec fields shared by every workload (everything but containers).
Args: root, stage
*/}}
{{- define "sluice.podCommon" -}}
{{- $root := .root -}}
{{- $s := index $root.Values .stage -}}
serviceAccountName: {{ include "sluice.serviceAccountName" . }}
automountServiceAccountToken: {{ $root.Values.serviceAccount.automountToken }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($s.priorityClassName | default $root.Values.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
{{- with (merge (dict) ($s.nodeSelector | default dict) $root.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (concat ($root.Values.tolerations | default list) ($s.tolerations | default list)) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  {{- $tsc := deepCopy . }}
  {{- if not (hasKey $tsc "labelSelector") }}
  {{- $_ := set $tsc "labelSelector" (dict "matchLabels" (include "sluice.componentSelectorLabels" $ | fromYaml)) }}
  {{- end }}
  - {{- toYaml $tsc | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Container securityContext */}}
{{- define "sluice.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}
