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
{{- if regexMatch "^[+]?0+$" $d }}{{ $d = "0s" }}{{ end }}
{{- $d = trimPrefix "+" $d }}
{{- if not (regexMatch "^(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(h|m|s|ms|us|µs|μs|ns))+$" $d) }}
{{- fail (printf "config.%s %q: want a Go duration such as 30s or 1m30s" .key $d) }}
{{- end }}
{{- $units := dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001 "us" 0.000001 "µs" 0.000001 "μs" 0.000001 "ns" 0.000000001 }}
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
    {{- range .Values.extraEnv }}
    {{- if or (eq .name "POD_NAME") (hasKey $.Values.secretEnv .name) }}
    {{- fail (printf "extraEnv sets %s, which the chart sets already (POD_NAME, or a secretEnv entry): Kubernetes keeps the last, so one of the two would be lost" .name) }}
    {{- end }}
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

{{/*
Refuses a secret written into config as it is: config is a ConfigMap,
readable by whoever may read the namespace's ConfigMaps. Tokens, signing
secrets and header values must be ${NAME} (given through secretEnv); a
Redis URL may hold a password, and a subscription URL user info or a
token parameter, only as ${NAME}. The errors name the key, never the
value.
*/}}
{{- define "webhook-bridge.checkSecrets" -}}
{{- $env := "\\$\\{[^}]*\\}" }}
{{- $hint := "it would sit in the ConfigMap: write ${NAME} and give NAME through secretEnv" }}
{{- $cfg := .Values.config | default dict }}
{{- $auth := $cfg.auth | default dict }}
{{- range $key := list "jwt_secret" "admin_token" }}
{{- $v := toString (get $auth $key) }}
{{- if and (ne $v "") (not (regexMatch $env $v)) }}
{{- fail (printf "config.auth.%s is written as it is: %s" $key $hint) }}
{{- end }}
{{- end }}
{{- $redis := $cfg.redis | default dict }}
{{- range $key := list "url" "cluster_url" "sentinel_url" }}
{{- $v := regexReplaceAll $env (toString (get $redis $key | default "")) "" }}
{{- if or (regexMatch "://[^/?#@]*:[^/?#@]+@" $v) (regexMatch "[?&]password=[^&#]" $v) }}
{{- fail (printf "config.redis.%s holds a password written as it is: %s" $key $hint) }}
{{- end }}
{{- end }}
{{- range $i, $s := $cfg.subscriptions | default list }}
{{- $where := printf "config.subscriptions[%d]" $i }}
{{- $secrets := list }}
{{- if kindIs "slice" $s.secrets }}{{ $secrets = $s.secrets }}{{ end }}
{{- range $v := prepend $secrets ($s.secret | default "") }}
{{- if and (ne (toString $v) "") (not (regexMatch $env (toString $v))) }}
{{- fail (printf "%s.secret is written as it is: %s" $where $hint) }}
{{- end }}
{{- end }}
{{- range $name, $v := $s.headers | default dict }}
{{- if and (ne (toString $v) "") (not (regexMatch $env (toString $v))) }}
{{- fail (printf "%s.headers.%s is written as it is (a header value may be a credential): %s" $where $name $hint) }}
{{- end }}
{{- end }}
{{- $u := regexReplaceAll $env (toString ($s.url | default "")) "" }}
{{- if or (regexMatch "://[^/?#@]+@" $u) (regexMatch "(?i)[?&][^=&#]*(pass|secret|token|key|auth|sig)[^=&#]*=[^&#]" $u) }}
{{- fail (printf "%s.url holds user info or a token parameter written as it is: %s" $where $hint) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Refuses, in mode sidecar, an application container that would clash with
the bridge's: one named webhook-bridge, or one with containerPort among
its ports (the containers of a Pod share its network).
*/}}
{{- define "webhook-bridge.checkSidecar" -}}
{{- if eq .Values.mode "sidecar" }}
{{- $port := int .Values.containerPort }}
{{- range $c := .Values.app.containers }}
{{- if eq (toString $c.name) "webhook-bridge" }}
{{- fail "app.containers: a container is named \"webhook-bridge\", the bridge's container: rename it" }}
{{- end }}
{{- range $p := $c.ports | default list }}
{{- if eq (int $p.containerPort) $port }}
{{- fail (printf "app.containers: container %s listens on %d, the bridge's containerPort: set containerPort to another port" $c.name $port) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
