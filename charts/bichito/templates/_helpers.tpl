{{/*
Names, labels, the three components and their environment. Every template takes either the
root context or a `ctx` dict: (dict "root" $ "component" "api").
*/}}

{{- define "bichito.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `<release>-<chart>`, or the release name when it already holds the chart name. */}}
{{- define "bichito.fullname" -}}
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

{{- define "bichito.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of a component's objects: `<fullname>-api`. */}}
{{- define "bichito.componentName" -}}
{{- printf "%s-%s" (include "bichito.fullname" .root | trunc 54 | trimSuffix "-") .component }}
{{- end }}

{{/* Labels every object carries; `ctx.component` may be empty (the CRD, cluster RBAC). */}}
{{- define "bichito.labels" -}}
helm.sh/chart: {{ include "bichito.chart" .root }}
app.kubernetes.io/name: {{ include "bichito.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: bichito
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* The stable subset that selects a component's pods. */}}
{{- define "bichito.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bichito.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "bichito.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount }}
{{- if $sa.create }}
{{- default (include "bichito.componentName" .) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{- define "bichito.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The components: the command each container runs, its one port (probes, metrics and, for api and
sse, traffic), and whether it talks to the Kubernetes API.
*/}}
{{- define "bichito.componentSpecs" -}}
api:
  command: [/usr/local/bin/bichito, api]
  port: 8080
  portName: http
  automountServiceAccountToken: false
sse:
  command: [/usr/local/bin/bichito, sse]
  port: 8081
  portName: http
  automountServiceAccountToken: false
operator:
  command: [/usr/local/bin/bichito-operator, run]
  port: 8082
  portName: metrics
  automountServiceAccountToken: true
{{- end }}

{{/* The restricted Pod Security Standard, and then some: the image's nonroot user (65532). */}}
{{- define "bichito.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "bichito.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
seccompProfile:
  type: RuntimeDefault
capabilities:
  drop: [ALL]
{{- end }}

{{/* Refuses value combinations the schema cannot express, with the fix in the message. */}}
{{- define "bichito.validate" -}}
{{- $jwt := .Values.jwt }}
{{- $keys := 0 }}
{{- range (list $jwt.secret.existingSecret $jwt.publicKey.existingSecret $jwt.jwksUrl) }}
{{- if . }}{{ $keys = add1 $keys }}{{ end }}
{{- end }}
{{- if ne (int $keys) 1 }}
{{- fail "jwt: set exactly one of jwt.secret.existingSecret (an HMAC secret: HS256/384/512), jwt.publicKey.existingSecret (a PEM public key: RS/PS/ES/EdDSA) and jwt.jwksUrl (an identity provider's key set); the api and sse pods verify dashboard tokens with it" }}
{{- end }}
{{- $oidc := .Values.signIn.oidc }}
{{- if and $oidc.issuer (or (not $oidc.clientId) (not .Values.signIn.publicUrl)) }}
{{- fail "signIn.oidc.issuer needs signIn.oidc.clientId and signIn.publicUrl (the provider sends people back to <publicUrl>/login/callback)" }}
{{- end }}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.leaderElection.enabled) }}
{{- fail "operator.replicas > 1 needs operator.leaderElection.enabled: without the Lease, replicas would reconcile at once" }}
{{- end }}
{{- end }}

{{/* Env of every component: log settings and the listen address on all interfaces. */}}
{{- define "bichito.env.common" -}}
- name: LOG_FORMAT
  value: {{ .root.Values.logFormat | quote }}
- name: RUST_LOG
  value: {{ .root.Values.logLevel | quote }}
- name: BICHITO_LISTEN
  value: {{ printf "0.0.0.0:%v" .port | quote }}
{{- end }}

{{- define "bichito.env.database" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.urlKey }}
- name: DATABASE_TIMEOUT
  value: {{ .Values.database.timeout | quote }}
{{- end }}

{{/* Connection timeouts and browser origins of the pods that serve HTTP to clients (api, sse). */}}
{{- define "bichito.env.http" -}}
- name: HTTP_HEADER_READ_TIMEOUT
  value: {{ .Values.http.headerReadTimeout | quote }}
- name: HTTP_IDLE_TIMEOUT
  value: {{ .Values.http.idleTimeout | quote }}
- name: SHUTDOWN_TIMEOUT
  value: {{ printf "%ds" (int64 .Values.http.shutdownTimeoutSeconds) | quote }}
{{- with .Values.dashboardOrigins }}
- name: DASHBOARD_ORIGINS
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}

{{/* Dashboard JWT verification (api and sse). */}}
{{- define "bichito.env.jwt" -}}
{{- $jwt := .Values.jwt -}}
{{- if $jwt.publicKey.existingSecret }}
- name: JWT_PUBLIC_KEY_FILE
  value: {{ printf "/etc/bichito/jwt/%s" $jwt.publicKey.key | quote }}
{{- else if $jwt.jwksUrl }}
- name: JWT_JWKS_URL
  value: {{ $jwt.jwksUrl | quote }}
- name: JWT_JWKS_REFRESH
  value: {{ $jwt.jwksRefresh | quote }}
{{- else }}
- name: JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $jwt.secret.existingSecret }}
      key: {{ $jwt.secret.key }}
{{- end }}
{{- with $jwt.algorithm }}
- name: JWT_ALGORITHM
  value: {{ . | quote }}
{{- end }}
- name: JWT_TEAMS_CLAIM
  value: {{ $jwt.teamsClaim | quote }}
{{- with $jwt.issuer }}
- name: JWT_ISSUER
  value: {{ . | quote }}
{{- end }}
{{- with $jwt.audience }}
- name: JWT_AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* The NATS JetStream bus (api publishes, sse subscribes). */}}
{{- define "bichito.env.nats" -}}
{{- $nats := .Values.nats -}}
- name: SSE_BACKEND
  value: nats
{{- if $nats.existingSecret }}
- name: NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $nats.existingSecret }}
      key: {{ $nats.urlKey }}
{{- else if $nats.servers }}
- name: NATS_URL
  value: {{ join "," $nats.servers | quote }}
{{- else }}
- name: NATS_URL
  value: {{ $nats.url | quote }}
{{- end }}
- name: NATS_STREAM
  value: {{ $nats.stream | quote }}
- name: NATS_STREAM_REPLICAS
  value: {{ $nats.streamReplicas | quote }}
- name: NATS_SUBJECT_PREFIX
  value: {{ $nats.subjectPrefix | quote }}
- name: REPLAY_WINDOW
  value: {{ $nats.replayWindow | quote }}
{{- end }}

{{/* Attachments storage (api): S3 with a bucket, otherwise off (pods have no disk to keep
files on); each S3 variable only when its value is set. */}}
{{- define "bichito.env.s3" -}}
{{- $s3 := .Values.s3 }}
{{- if $s3.bucket }}
- name: ATTACHMENTS_BACKEND
  value: s3
- name: ATTACHMENT_UPLOAD_EXPIRY
  value: {{ .Values.attachments.uploadExpiry | quote }}
- name: ATTACHMENT_DOWNLOAD_EXPIRY
  value: {{ .Values.attachments.downloadExpiry | quote }}
{{- if $s3.forcePathStyle }}
- name: S3_FORCE_PATH_STYLE
  value: "true"
{{- end }}
{{- else }}
- name: ATTACHMENTS_BACKEND
  value: disabled
{{- end }}
{{- range $name, $value := dict "S3_ENDPOINT" $s3.endpoint "S3_BUCKET" $s3.bucket "S3_REGION" $s3.region }}
{{- if $value }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- if $s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.secretAccessKeyKey }}
{{- end }}
{{- end }}

{{- define "bichito.env.api" -}}
{{- $api := .Values.api }}
{{- include "bichito.env.database" . }}
- name: DATABASE_MAX_CONNECTIONS
  value: {{ $api.databaseMaxConnections | int64 | quote }}
- name: DATABASE_INSERT_QUEUE
  value: {{ $api.databaseInsertQueue | int64 | quote }}
- name: BODY_LIMIT_BYTES
  value: {{ $api.bodyLimitBytes | int64 | quote }}
- name: DEFAULT_REPORTS_PER_MINUTE
  value: {{ $api.defaultReportsPerMinute | int64 | quote }}
- name: HONEYCOMB_CACHE_TTL
  value: {{ $api.honeycombCacheTtl | quote }}
- name: CORS_MAX_AGE
  value: {{ $api.corsMaxAge | quote }}
{{- include "bichito.env.signIn" . | trim | nindent 0 }}
{{- include "bichito.env.http" . | trim | nindent 0 }}
{{- include "bichito.env.jwt" . | trim | nindent 0 }}
{{- include "bichito.env.nats" . | trim | nindent 0 }}
{{- include "bichito.env.s3" . }}
{{- end }}

{{/* Sessions and sign-in with an OpenID Connect provider (api). */}}
{{- define "bichito.env.signIn" -}}
{{- $signIn := .Values.signIn }}
- name: SESSION_MAX_AGE
  value: {{ $signIn.sessionMaxAge | quote }}
- name: DASHBOARD_PATH
  value: {{ $signIn.dashboardPath | quote }}
{{- with $signIn.publicUrl }}
- name: BICHITO_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- with $signIn.oidc }}
{{- if .issuer }}
- name: OIDC_ISSUER
  value: {{ .issuer | quote }}
- name: OIDC_CLIENT_ID
  value: {{ .clientId | quote }}
- name: OIDC_SCOPES
  value: {{ .scopes | quote }}
- name: OIDC_TEAMS_CLAIM
  value: {{ .teamsClaim | quote }}
{{- if .clientSecret.existingSecret }}
- name: OIDC_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .clientSecret.existingSecret }}
      key: {{ .clientSecret.key }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "bichito.env.sse" -}}
- name: STREAM_URL_TOKENS
  value: {{ .Values.sse.urlTokens | quote }}
- name: SSE_HEARTBEAT_INTERVAL
  value: {{ .Values.sse.heartbeatInterval | quote }}
- name: SSE_QUEUE_SIZE
  value: {{ .Values.sse.queueSize | int64 | quote }}
{{- include "bichito.env.http" . | trim | nindent 0 }}
{{- include "bichito.env.jwt" . | trim | nindent 0 }}
{{- include "bichito.env.nats" . | trim | nindent 0 }}
{{- end }}

{{- define "bichito.leaseName" -}}
{{- default (include "bichito.componentName" (dict "root" . "component" "operator")) .Values.operator.leaderElection.leaseName }}
{{- end }}

{{- define "bichito.env.operator" -}}
{{- $operator := .Values.operator }}
{{- include "bichito.env.database" . }}
- name: DATABASE_MAX_CONNECTIONS
  value: {{ $operator.databaseMaxConnections | int64 | quote }}
- name: MAX_CONCURRENT_RECONCILES
  value: {{ $operator.maxConcurrentReconciles | int64 | quote }}
- name: BICHITO_INSTALLATION
  value: {{ .Values.installation | quote }}
{{- with $operator.watchNamespace }}
- name: WATCH_NAMESPACE
  value: {{ . | quote }}
{{- end }}
- name: RESYNC_INTERVAL
  value: {{ $operator.resyncInterval | quote }}
- name: CONFLICT_RETRY_INTERVAL
  value: {{ $operator.conflictRetryInterval | quote }}
- name: LEADER_ELECTION
  value: {{ $operator.leaderElection.enabled | quote }}
- name: LEASE_NAME
  value: {{ include "bichito.leaseName" . | quote }}
- name: LEASE_DURATION_SECONDS
  value: {{ $operator.leaderElection.leaseDurationSeconds | int64 | quote }}
- name: LEASE_RENEW_GRACE_SECONDS
  value: {{ $operator.leaderElection.renewGraceSeconds | int64 | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* The least-privilege rules of the operator over Honeycombs, their Secrets and Events. */}}
{{- define "bichito.operatorRules" -}}
- apiGroups: [bichito.dev]
  resources: [honeycombs]
  verbs: [get, list, watch, patch, update]
- apiGroups: [bichito.dev]
  resources: [honeycombs/status]
  verbs: [get, patch, update]
- apiGroups: [bichito.dev]
  resources: [honeycombs/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
