{{/* The chart's name, nameOverride when set. */}}
{{- define "webhook-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The resources' name: fullnameOverride, else the release's name with the chart's. */}}
{{- define "webhook-bridge.fullname" -}}
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

{{/* The labels that select the Pods. */}}
{{- define "webhook-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "webhook-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Every resource's labels. */}}
{{- define "webhook-bridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "webhook-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Secret the bridge's secretEnv reads. */}}
{{- define "webhook-bridge.secretName" -}}
{{- default (include "webhook-bridge.fullname" .) .Values.secret.name }}
{{- end }}

{{/*
The whole seconds of a duration of config, rounded up: called with a dict
of key (the config key, for the error), value (its value) and default (a
Go duration, taken when value is unset). A duration is a Go duration such
as 30s, 1m30s or 2.5s; anything else fails, naming config.<key>.
*/}}
{{- define "webhook-bridge.durationSeconds" -}}
{{- $d := toString (default .default .value) }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$" $d) }}
{{- fail (printf "config.%s %q: want a Go duration such as 30s or 1m30s" .key $d) }}
{{- end }}
{{- $units := dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001 "us" 0.000001 "µs" 0.000001 "ns" 0.000000001 }}
{{- $total := 0.0 }}
{{- range $part := regexFindAll "[0-9.]+[^0-9.]+" $d -1 }}
{{- $unit := regexFind "[^0-9.]+$" $part }}
{{- $total = addf $total (mulf (float64 (trimSuffix $unit $part)) (get $units $unit)) }}
{{- end }}
{{- ceil $total | int }}
{{- end }}

{{/* The bridge's configuration file: config with listen and consumer set. */}}
{{- define "webhook-bridge.config" -}}
{{- if hasKey .Values.config "listen" }}
{{- fail "config.listen: leave it out; the chart sets it to 0.0.0.0:<containerPort> (set containerPort instead)" }}
{{- end }}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- if not (hasKey $cfg "consumer") }}
{{- $_ := set $cfg "consumer" "${POD_NAME}" }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* The bridge container, in both modes. */}}
{{- define "webhook-bridge.container" -}}
- name: webhook-bridge
  {{- if and (eq .Values.mode "sidecar") .Values.app.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  image: {{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["--config", "/etc/webhook-bridge/bridge.yaml"]
  ports:
    - name: bridge-http
      containerPort: {{ .Values.containerPort }}
      protocol: TCP
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    {{- range $name, $key := .Values.secretEnv }}
    - name: {{ $name }}
      valueFrom:
        secretKeyRef:
          name: {{ include "webhook-bridge.secretName" $ }}
          key: {{ $key }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if and (eq .Values.mode "sidecar") .Values.app.nativeSidecar }}
  # Your containers start once the bridge answers.
  startupProbe:
    httpGet:
      path: /healthz
      port: bridge-http
    periodSeconds: 1
    failureThreshold: 30
  {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: bridge-http
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  readinessProbe:
    httpGet:
      path: /readyz
      port: bridge-http
    periodSeconds: 5
    timeoutSeconds: 2
    failureThreshold: 2
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities:
      drop: ["ALL"]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    - name: webhook-bridge-config
      mountPath: /etc/webhook-bridge
      readOnly: true
{{- end }}

{{/* The volume holding the bridge's configuration file. */}}
{{- define "webhook-bridge.volume" -}}
- name: webhook-bridge-config
  configMap:
    name: {{ include "webhook-bridge.fullname" . }}
{{- end }}
