{{/* ---------------------------------------------------------------------------------------
Names and labels
--------------------------------------------------------------------------------------- */}}

{{- define "gitstore-agents.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gitstore-agents.fullname" -}}
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

{{/* Name of one role's objects (Deployment, PDB, ScaledObject): <fullname>-<role>. */}}
{{- define "gitstore-agents.componentName" -}}
{{- printf "%s-%s" (include "gitstore-agents.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gitstore-agents.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gitstore-agents.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gitstore-agents.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gitstore-agents.labels" -}}
helm.sh/chart: {{ include "gitstore-agents.chart" . }}
{{ include "gitstore-agents.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gitstore
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component's objects. Input: dict "root" $ "component" NAME. */}}
{{- define "gitstore-agents.componentLabels" -}}
{{ include "gitstore-agents.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Pod selector of one component. Input: dict "root" $ "component" NAME. */}}
{{- define "gitstore-agents.componentSelectorLabels" -}}
{{ include "gitstore-agents.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "gitstore-agents.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gitstore-agents.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gitstore-agents.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------------------------------
Roles
--------------------------------------------------------------------------------------- */}}

{{/* Every role the worker knows, in pipeline order (JSON list). */}}
{{- define "gitstore-agents.knownRoles" -}}
{{- list "planner" "markdown-compiler" "enricher" "extension-runner" | toJson }}
{{- end }}

{{/* Enabled roles in pipeline order (JSON list). */}}
{{- define "gitstore-agents.enabledRoles" -}}
{{- $enabled := list }}
{{- range $role := include "gitstore-agents.knownRoles" . | fromJsonArray }}
{{- $spec := get $.Values.roles $role }}
{{- if and $spec $spec.enabled }}
{{- $enabled = append $enabled $role }}
{{- end }}
{{- end }}
{{- $enabled | toJson }}
{{- end }}

{{/* NATS identities with credentials: the roles, the provisioning Job and the test pod (the
runtime's), then the operator, the control plane and the audit stream's administrator, whose
credentials no pod of this chart mounts (people and GitStore read them from the Secret). */}}
{{- define "gitstore-agents.identities" -}}
{{- concat (include "gitstore-agents.knownRoles" . | fromJsonArray) (list "provisioner" "status-probe") (include "gitstore-agents.externalIdentities" . | fromJsonArray) | toJson }}
{{- end }}

{{- define "gitstore-agents.externalIdentities" -}}
{{- list "operator" "control-plane" "audit-admin" | toJson }}
{{- end }}

{{/* The durable pull consumer a role reads from, as the worker names it (role_consumer).
Input: dict "root" $ "role" NAME. Output JSON {stream, durable}: the planner reads git events,
the task roles read tasks, from the streams config.topology names; the durable is the role name
(shared by every replica). */}}
{{- define "gitstore-agents.consumer" -}}
{{- $t := include "gitstore-agents.topologyNames" .root | fromJson }}
{{- $stream := ternary $t.events $t.tasks (eq .role "planner") }}
{{- dict "stream" $stream "durable" .role | toJson }}
{{- end }}

{{/* ---------------------------------------------------------------------------------------
NATS
--------------------------------------------------------------------------------------- */}}

{{/* Full name of the bundled NATS chart's objects (mirrors its nats.fullname). */}}
{{- define "gitstore-agents.bundledNatsFullname" -}}
{{- if .Values.nats.fullnameOverride }}
{{- .Values.nats.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "nats" .Values.nats.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Server URL(s) the workers connect to. */}}
{{- define "gitstore-agents.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s.%s.svc:4222" (include "gitstore-agents.bundledNatsFullname" .) .Release.Namespace }}
{{- else }}
{{- required "nats.url is required unless nats.enabled" .Values.nats.url }}
{{- end }}
{{- end }}

{{/* TCP ports of the NATS URL(s) (JSON list, 4222 when a URL names none). */}}
{{- define "gitstore-agents.natsPorts" -}}
{{- $ports := list }}
{{- range $url := splitList "," (include "gitstore-agents.natsUrl" .) }}
{{- $host := (urlParse (trim $url)).host }}
{{- $port := 4222 }}
{{- if regexMatch ":[0-9]+$" $host }}
{{- $port = regexFind "[0-9]+$" $host | int }}
{{- end }}
{{- $ports = append $ports $port }}
{{- end }}
{{- $ports | uniq | toJson }}
{{- end }}

{{- define "gitstore-agents.credentialsSecretName" -}}
{{- if .Values.nats.existingSecret }}
{{- .Values.nats.existingSecret }}
{{- else }}
{{- printf "%s-nats-credentials" (include "gitstore-agents.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Secret holding the bundled NATS server's authorization block. The NATS chart calls this in
its own context (only .Release is shared with ours), so it depends on the release name only. */}}
{{- define "gitstore-agents.natsAuthorizationSecretName" -}}
{{- printf "%s-gitstore-agents-nats-auth" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The JetStream names the workers use: config.topology's (the same values go into every
config file), with the worker's defaults for names a release's values do not hold (an upgrade
with --reuse-values keeps the previous chart's values, which did not list them). Output JSON
{events, tasks, validation, failures, advisories, audit, streams: [every stream], slots: [the
slot streams], modules, content}. When the worker's Topology.stream_configs() gains a stream,
add it here. */}}
{{- define "gitstore-agents.topologyNames" -}}
{{- $c := .Values.config.topology }}
{{- $events := $c.events_stream | default "GITSTORE_EVENTS" }}
{{- $tasks := $c.tasks_stream | default "GITSTORE_TASKS" }}
{{- $validation := $c.validation_stream | default "GITSTORE_VALIDATION" }}
{{- $failures := $c.failures_stream | default "GITSTORE_FAILURES" }}
{{- $advisories := $c.advisories_stream | default "GITSTORE_ADVISORIES" }}
{{- $audit := $c.audit_stream | default "GITSTORE_AUDIT" }}
{{- $streams := list $events $tasks $validation $failures $advisories $audit }}
{{- $slots := list $tasks $validation $failures }}
{{- dict "events" $events "tasks" $tasks "validation" $validation "failures" $failures "advisories" $advisories "audit" $audit "streams" $streams "slots" $slots "modules" ($c.modules_bucket | default "gitstore-modules") "content" ($c.content_bucket | default "gitstore-content") | toJson }}
{{- end }}

{{/*
gitstore-agents.natsPermissions: each identity's nats-server permissions, derived from the policy.

THIS MUST EQUAL `gitstore-agents policy nats-config` (guardrails/_nats_auth.py, the source of
truth) for the policy the chart renders: tests/test_chart_nats_permissions.py renders both and
compares them for every value set. Output JSON {identity: {publish, subscribe, allow_responses}}
for the enabled roles, provisioner, status-probe, operator, control-plane and audit-admin.

Per role R (prefix P, the policy's kinds K and publishes_tasks F of R):
  publish   the slots P.validation.<k>.*, P.failures.<k>.*, P.dlq.<k>.* for k in K (the
            planner: only failures and dlq of git.push), P.tasks.<f>.* for f in F, its own
            audit records P.audit.R.*; for its two consumers (its input durable R, its
            dead-letter durable R-dead-letters on the advisories stream): CONSUMER.MSG.NEXT,
            CONSUMER.INFO and acks $JS.ACK.<stream>.<durable>.> (also in the v2 form
            $JS.ACK.*.*.<stream>.<durable>.>); STREAM.INFO of every stream and bucket;
            STREAM.MSG.GET of its input stream (dead letters read the original); DIRECT.GET of
            the audit stream (the status service reads audit trails) and of the slot streams'
            subjects (DIRECT.GET.<slot stream>.>: stored results); object store reads
            (STREAM.NAMES, STREAM.MSG.GET, CONSUMER.CREATE, flow control $JS.FC) of the
            modules and content stores; puts into the content store ($O.<content>.C.> chunks,
            $O.<content>.M.> meta: what does not fit one message travels by ref);
  subscribe its inbox _INBOX_R.>, the status service's $SRV.> and P.status.>; allow_responses.
Nothing else: no stream/consumer deletion, no purge, no other role's or the control plane's
subjects.
*/}}
{{- define "gitstore-agents.natsPermissions" -}}
{{- $root := .root }}
{{- $p := $root.Values.config.topology.prefix }}
{{- $t := include "gitstore-agents.topologyNames" $root | fromJson }}
{{- $api := "$JS.API" }}
{{- $objects := list (printf "OBJ_%s" $t.modules) (printf "OBJ_%s" $t.content) }}
{{- $allStreams := concat $t.streams $objects }}
{{- $out := dict }}
{{- range $role := include "gitstore-agents.enabledRoles" $root | fromJsonArray }}
{{- $rules := get ($root.Values.policy.roles | default dict) $role | default dict }}
{{- $input := ternary $t.events $t.tasks (eq $role "planner") }}
{{- $pub := list }}
{{- if eq $role "planner" }}
{{- $pub = concat $pub (list (printf "%s.failures.git.push.*" $p) (printf "%s.dlq.git.push.*" $p)) }}
{{- else }}
{{- range $k := $rules.kinds | default list }}
{{- $pub = concat $pub (list (printf "%s.validation.%s.*" $p $k) (printf "%s.failures.%s.*" $p $k) (printf "%s.dlq.%s.*" $p $k)) }}
{{- end }}
{{- end }}
{{- range $f := $rules.publishes_tasks | default list }}
{{- $pub = append $pub (printf "%s.tasks.%s.*" $p $f) }}
{{- end }}
{{- $pub = append $pub (printf "%s.audit.%s.*" $p $role) }}
{{- range $c := list (list $input $role) (list $t.advisories (printf "%s-dead-letters" $role)) }}
{{- $s := index $c 0 }}{{- $d := index $c 1 }}
{{- $pub = concat $pub (list (printf "%s.CONSUMER.MSG.NEXT.%s.%s" $api $s $d) (printf "%s.CONSUMER.INFO.%s.%s" $api $s $d) (printf "$JS.ACK.%s.%s.>" $s $d) (printf "$JS.ACK.*.*.%s.%s.>" $s $d)) }}
{{- end }}
{{- range $s := $allStreams }}
{{- $pub = append $pub (printf "%s.STREAM.INFO.%s" $api $s) }}
{{- end }}
{{- $pub = concat $pub (list (printf "%s.STREAM.MSG.GET.%s" $api $input) (printf "%s.STREAM.NAMES" $api) (printf "%s.DIRECT.GET.%s" $api $t.audit)) }}
{{- range $s := $t.slots }}
{{- $pub = append $pub (printf "%s.DIRECT.GET.%s.>" $api $s) }}
{{- end }}
{{- range $o := $objects }}
{{- $pub = concat $pub (list (printf "%s.STREAM.MSG.GET.%s" $api $o) (printf "%s.CONSUMER.CREATE.%s" $api $o) (printf "$JS.FC.%s.>" $o)) }}
{{- end }}
{{- $pub = concat $pub (list (printf "$O.%s.C.>" $t.content) (printf "$O.%s.M.>" $t.content)) }}
{{- $sub := list (printf "_INBOX_%s.>" $role) "$SRV.>" (printf "%s.status.>" $p) }}
{{- $_ := set $out $role (dict "publish" ($pub | uniq) "subscribe" $sub "allow_responses" true) }}
{{- end }}
{{- /* The provisioning Job: creates and updates the streams, consumers and buckets, uploads the
reference modules (replacing a module purges its old chunks), migrates the slot streams from the
per-kind layout (reads them, copies into slots). No deletion. */}}
{{- $prov := list }}
{{- range $s := $t.streams }}
{{- /* The audit stream is created, never updated (only audit-admin may). */}}
{{- if eq $s $t.audit }}
{{- $prov = concat $prov (list (printf "%s.STREAM.CREATE.%s" $api $s) (printf "%s.STREAM.INFO.%s" $api $s)) }}
{{- else }}
{{- $prov = concat $prov (list (printf "%s.STREAM.CREATE.%s" $api $s) (printf "%s.STREAM.UPDATE.%s" $api $s) (printf "%s.STREAM.INFO.%s" $api $s)) }}
{{- end }}
{{- end }}
{{- range $s := $objects }}
{{- $prov = concat $prov (list (printf "%s.STREAM.CREATE.%s" $api $s) (printf "%s.STREAM.UPDATE.%s" $api $s) (printf "%s.STREAM.INFO.%s" $api $s)) }}
{{- end }}
{{- range $s := list $t.events $t.tasks $t.advisories }}
{{- $prov = concat $prov (list (printf "%s.CONSUMER.DURABLE.CREATE.%s.>" $api $s) (printf "%s.CONSUMER.INFO.%s.>" $api $s)) }}
{{- end }}
{{- range $s := $t.slots }}
{{- $prov = concat $prov (list (printf "%s.CONSUMER.CREATE.%s" $api $s) (printf "%s.CONSUMER.CREATE.%s.>" $api $s) (printf "$JS.FC.%s.>" $s)) }}
{{- end }}
{{- $prov = concat $prov (list (printf "%s.tasks.>" $p) (printf "%s.validation.>" $p) (printf "%s.failures.>" $p) (printf "%s.dlq.>" $p)) }}
{{- $prov = concat $prov (list (printf "$O.%s.>" $t.modules) (printf "%s.STREAM.MSG.GET.OBJ_%s" $api $t.modules) (printf "%s.STREAM.PURGE.OBJ_%s" $api $t.modules)) }}
{{- /* `modules list`: the bucket's stream found by subject, read through an ordered consumer. */}}
{{- $prov = concat $prov (list (printf "%s.STREAM.NAMES" $api) (printf "%s.CONSUMER.CREATE.OBJ_%s" $api $t.modules) (printf "%s.CONSUMER.CREATE.OBJ_%s.>" $api $t.modules) (printf "$JS.FC.OBJ_%s.>" $t.modules)) }}
{{- $_ := set $out "provisioner" (dict "publish" ($prov | uniq) "subscribe" (list "_INBOX_provisioner.>") "allow_responses" false) }}
{{- /* The `helm test` pod: asks the status micro service, nothing more. */}}
{{- $probe := list "$SRV.PING" "$SRV.PING.>" "$SRV.INFO" "$SRV.INFO.>" (printf "%s.status.>" $p) }}
{{- $_ := set $out "status-probe" (dict "publish" $probe "subscribe" (list "_INBOX_status-probe.>") "allow_responses" false) }}
{{- /* The operator: what the runbooks need (docs/operations.md). Reads everything, rewinds a
role's durable, requeues dead letters, replays; never creates, updates, deletes or purges a
stream. */}}
{{- $op := list (printf "%s.INFO" $api) (printf "%s.STREAM.NAMES" $api) (printf "%s.STREAM.LIST" $api) (printf "$O.%s.C.>" $t.content) (printf "$O.%s.M.>" $t.content) }}
{{- range $s := $allStreams }}
{{- $op = concat $op (list (printf "%s.STREAM.INFO.%s" $api $s) (printf "%s.STREAM.MSG.GET.%s" $api $s) (printf "%s.DIRECT.GET.%s" $api $s) (printf "%s.DIRECT.GET.%s.>" $api $s) (printf "%s.CONSUMER.NAMES.%s" $api $s) (printf "%s.CONSUMER.LIST.%s" $api $s) (printf "%s.CONSUMER.INFO.%s.>" $api $s) (printf "%s.CONSUMER.CREATE.%s" $api $s) (printf "%s.CONSUMER.CREATE.%s.>" $api $s) (printf "$JS.FC.%s.>" $s)) }}
{{- end }}
{{- range $s := list $t.events $t.tasks }}
{{- $op = concat $op (list (printf "%s.CONSUMER.RESET.%s.*" $api $s) (printf "%s.CONSUMER.PAUSE.%s.*" $api $s) (printf "%s.CONSUMER.DURABLE.CREATE.%s.*" $api $s) (printf "%s.CONSUMER.DELETE.%s.*" $api $s)) }}
{{- end }}
{{- $op = concat $op (list (printf "%s.STREAM.MSG.DELETE.%s" $api $t.validation) (printf "%s.STREAM.MSG.DELETE.%s" $api $t.failures)) }}
{{- $op = concat $op (list (printf "%s.events.git.push.>" $p) (printf "%s.tasks.>" $p) (printf "%s.dlq._requeued.*" $p) (printf "%s.audit.operator.*" $p) (printf "%s.validation.>" $p) (printf "%s.failures.>" $p) (printf "%s.dlq.>" $p)) }}
{{- $op = concat $op (list "$SRV.PING" "$SRV.PING.>" "$SRV.INFO" "$SRV.INFO.>" (printf "%s.status.>" $p)) }}
{{- $opSub := list "_INBOX_operator.>" "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>" "$SRV.>" (printf "%s.status.>" $p) }}
{{- $_ := set $out "operator" (dict "publish" ($op | uniq) "subscribe" $opSub "allow_responses" true) }}
{{- /* The control plane: git events in; validation requests and diagnostics out through its
own durable "control-plane" on each stream; large outputs from the content store; status. */}}
{{- $cp := list (printf "%s.events.git.push.>" $p) (printf "%s.STREAM.NAMES" $api) (printf "%s.STREAM.INFO.%s" $api $t.events) }}
{{- range $s := list $t.validation $t.failures }}
{{- $cp = concat $cp (list (printf "%s.STREAM.INFO.%s" $api $s) (printf "%s.CONSUMER.CREATE.%s.control-plane" $api $s) (printf "%s.CONSUMER.CREATE.%s.control-plane.>" $api $s) (printf "%s.CONSUMER.DURABLE.CREATE.%s.control-plane" $api $s) (printf "%s.CONSUMER.INFO.%s.control-plane" $api $s) (printf "%s.CONSUMER.MSG.NEXT.%s.control-plane" $api $s) (printf "$JS.ACK.%s.control-plane.>" $s) (printf "$JS.ACK.*.*.%s.control-plane.>" $s)) }}
{{- end }}
{{- $content := printf "OBJ_%s" $t.content }}
{{- $cp = concat $cp (list (printf "%s.STREAM.INFO.%s" $api $content) (printf "%s.STREAM.MSG.GET.%s" $api $content) (printf "%s.CONSUMER.CREATE.%s" $api $content) (printf "$JS.FC.%s.>" $content)) }}
{{- $cp = concat $cp (list "$SRV.PING" "$SRV.PING.>" "$SRV.INFO" "$SRV.INFO.>" (printf "%s.status.>" $p)) }}
{{- $_ := set $out "control-plane" (dict "publish" ($cp | uniq) "subscribe" (list "_INBOX_control-plane.>") "allow_responses" false) }}
{{- /* The audit stream's administrator: creates and changes the audit stream, nothing else. */}}
{{- $admin := list (printf "%s.STREAM.CREATE.%s" $api $t.audit) (printf "%s.STREAM.UPDATE.%s" $api $t.audit) (printf "%s.STREAM.INFO.%s" $api $t.audit) }}
{{- $_ := set $out "audit-admin" (dict "publish" $admin "subscribe" (list "_INBOX_audit-admin.>") "allow_responses" false) }}
{{- $out | toJson }}
{{- end }}

{{/* gitstore-agents.natsAuthorization: the nats-server `authorization` block of the all-in-one
install: one user per identity with the permissions above and a bcrypt hash of its password.
Input: dict "root" $ "passwords" (dict identity -> plaintext). */}}
{{- define "gitstore-agents.natsAuthorization" -}}
{{- $root := .root }}
{{- $users := list }}
{{- $permissions := include "gitstore-agents.natsPermissions" (dict "root" $root) | fromJson }}
{{- range $identity := concat (include "gitstore-agents.enabledRoles" $root | fromJsonArray) (list "provisioner" "status-probe") (include "gitstore-agents.externalIdentities" $root | fromJsonArray) }}
{{- $perm := get $permissions $identity }}
{{- $block := dict "publish" (dict "allow" $perm.publish) "subscribe" (dict "allow" $perm.subscribe) }}
{{- if $perm.allow_responses }}
{{- $_ := set $block "allow_responses" true }}
{{- end }}
{{- $users = append $users (dict "user" (get $root.Values.nats.credentials $identity).user "password" (bcrypt (get $.passwords $identity)) "permissions" $block) }}
{{- end }}
{{- dict "users" $users | toYaml }}
{{- end }}

{{/* Environment that authenticates one identity. Input: dict "root" $ "identity" NAME. */}}
{{- define "gitstore-agents.natsEnv" -}}
{{- $root := .root }}
{{- $secret := include "gitstore-agents.credentialsSecretName" $root }}
{{- if eq $root.Values.nats.auth "userPassword" }}
- name: GITSTORE_NATS_USER
  valueFrom:
    secretKeyRef: { name: {{ $secret }}, key: {{ printf "%s-user" .identity }} }
- name: GITSTORE_NATS_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ $secret }}, key: {{ printf "%s-password" .identity }} }
{{- else if eq $root.Values.nats.auth "creds" }}
- name: GITSTORE_NATS_CREDS
  value: {{ printf "/etc/gitstore-agents/nats/%s.creds" .identity }}
{{- end }}
{{- end }}

{{/* Credentials volume (creds mode only). Input: dict "root" $ "identity" NAME. */}}
{{- define "gitstore-agents.natsCredsVolume" -}}
{{- if eq .root.Values.nats.auth "creds" -}}
- name: nats-creds
  secret:
    secretName: {{ include "gitstore-agents.credentialsSecretName" .root }}
    defaultMode: 0440
    items:
      - key: {{ printf "%s.creds" .identity }}
        path: {{ printf "%s.creds" .identity }}
{{- end }}
{{- end }}

{{- define "gitstore-agents.natsCredsVolumeMount" -}}
{{- if eq .Values.nats.auth "creds" -}}
- name: nats-creds
  mountPath: /etc/gitstore-agents/nats
  readOnly: true
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------------------------------
Configuration file
--------------------------------------------------------------------------------------- */}}

{{/* config.yaml for one identity (a role, provisioner or status-probe): the same file for
all, except the inbox prefix its NATS permissions allow. Input: dict "root" $ "identity" NAME. */}}
{{- define "gitstore-agents.configFile" -}}
{{- $root := .root }}
{{- $nats := dict "url" (include "gitstore-agents.natsUrl" $root) "inbox_prefix" (printf "_INBOX_%s" .identity) }}
{{- if eq $root.Values.nats.auth "creds" }}
{{- $_ := set $nats "creds_file" (printf "/etc/gitstore-agents/nats/%s.creds" .identity) }}
{{- end }}
{{- with $root.Values.nats.tls }}
{{- if .enabled }}
{{- $_ := set $nats "tls_ca_file" (printf "/etc/gitstore-agents/nats-tls/%s" .caKey) }}
{{- if .certKey }}
{{- $_ := set $nats "tls_cert_file" (printf "/etc/gitstore-agents/nats-tls/%s" .certKey) }}
{{- $_ := set $nats "tls_key_file" (printf "/etc/gitstore-agents/nats-tls/%s" .keyKey) }}
{{- end }}
{{- with .serverName }}
{{- $_ := set $nats "tls_server_name" . }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Every role's settings, enabled or not: a role reads the kinds it depends on from the
roles that run them (the planner plans with the markdown-compiler's module and limits, the
markdown-compiler publishes follow-ups with the enricher's and extension-runner's). */}}
{{- $roles := dict }}
{{- range $role := include "gitstore-agents.knownRoles" $root | fromJsonArray }}
{{- $_ := set $roles $role (get $root.Values.roles $role).config }}
{{- end }}
{{- /* The hook Job provisions; with role credentials workers could not (their NATS users may
not create streams), so they only verify the topology. */}}
{{- $provision := and (not $root.Values.provisioning.enabled) (eq $root.Values.nats.auth "none") }}
{{- $config := dict
  "nats" $nats
  "topology" $root.Values.config.topology
  "health" $root.Values.config.health
  "drain_grace_s" $root.Values.config.drain_grace_s
  "policy_file" "/etc/gitstore-agents/policy/policy.yaml"
  "provision_on_start" $provision
  "on_consumer_drift" ($root.Values.config.on_consumer_drift | default "refuse")
  "roles" $roles }}
{{- toYaml $config }}
{{- end }}

{{/* The policy file: values' policy with the subject prefix the workers use. */}}
{{- define "gitstore-agents.policyFile" -}}
{{- $policy := deepCopy .Values.policy }}
{{- $_ := set $policy "subject_prefix" .Values.config.topology.prefix }}
{{- toYaml $policy }}
{{- end }}

{{/* ---------------------------------------------------------------------------------------
Pod building blocks (shared by workers, the provisioning Job and the test pod)
--------------------------------------------------------------------------------------- */}}

{{- define "gitstore-agents.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "gitstore-agents.securityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* Environment every container gets. Input: dict "root" $ "identity" NAME. */}}
{{- define "gitstore-agents.commonEnv" -}}
{{- $root := .root -}}
- name: GITSTORE_CONFIG
  value: /etc/gitstore-agents/config.yaml
- name: GITSTORE_WORKER_ID
  valueFrom:
    fieldRef: { fieldPath: metadata.name }
- name: POD_NAMESPACE
  valueFrom:
    fieldRef: { fieldPath: metadata.namespace }
- name: HOME
  value: /tmp
- name: GITSTORE_MODULE_CACHE
  value: /var/cache/gitstore-agents
{{- include "gitstore-agents.natsEnv" . }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "gitstore-agents-%s" .identity | quote }}
{{- $attrs := list (printf "service.namespace=%s" $root.Values.config.topology.prefix) "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.pod.name=$(GITSTORE_WORKER_ID)" (printf "gitstore.identity=%s" .identity) }}
{{- range $k, $v := $root.Values.telemetry.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k (toString $v)) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- with $root.Values.telemetry.otlp }}
{{- if .endpoint }}
- name: OTEL_TRACES_EXPORTER
  value: otlp
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .protocol | quote }}
{{- else }}
- name: OTEL_TRACES_EXPORTER
  value: none
{{- end }}
{{- end }}
{{- /* Metrics are scraped from /metrics and logs go to stdout: no OTLP push for either. */}}
- name: OTEL_METRICS_EXPORTER
  value: none
- name: OTEL_LOGS_EXPORTER
  value: none
{{- end }}

{{/* Writable emptyDirs and the config mount. Input: dict "root" $ "configMap" NAME "key" KEY. */}}
{{- define "gitstore-agents.commonVolumes" -}}
- name: config
  configMap:
    name: {{ .configMap }}
    items:
      - key: {{ .key }}
        path: config.yaml
- name: tmp
  emptyDir: { sizeLimit: {{ .root.Values.scratch.tmpSizeLimit }} }
- name: module-cache
  emptyDir: { sizeLimit: {{ .root.Values.scratch.moduleCacheSizeLimit }} }
{{- with .root.Values.nats.tls }}
{{- if .enabled }}
- name: nats-tls
  secret:
    secretName: {{ required "nats.tls.secretName is required with nats.tls.enabled" .secretName }}
    defaultMode: 0440
    items:
      - { key: {{ .caKey }}, path: {{ .caKey }} }
      {{- if .certKey }}
      - { key: {{ .certKey }}, path: {{ .certKey }} }
      - { key: {{ required "nats.tls.keyKey is required with nats.tls.certKey" .keyKey }}, path: {{ .keyKey }} }
      {{- end }}
{{- end }}
{{- end }}
{{- with .root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "gitstore-agents.commonVolumeMounts" -}}
- name: config
  mountPath: /etc/gitstore-agents/config.yaml
  subPath: config.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: module-cache
  mountPath: /var/cache/gitstore-agents
{{- if and .Values.nats.tls .Values.nats.tls.enabled }}
- name: nats-tls
  mountPath: /etc/gitstore-agents/nats-tls
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Hook phases of the provisioning Job (see values.yaml provisioning.hook). */}}
{{- define "gitstore-agents.provisionHook" -}}
{{- if .Values.provisioning.hook }}
{{- .Values.provisioning.hook }}
{{- else if or .Values.nats.enabled (and (eq .Values.nats.auth "userPassword") (not .Values.nats.existingSecret)) }}
{{- print "post-install,pre-upgrade" }}
{{- else }}
{{- print "pre-install,pre-upgrade" }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------------------------------
Cross-field checks the JSON schema cannot express
--------------------------------------------------------------------------------------- */}}
{{- define "gitstore-agents.validate" -}}
{{- $v := .Values }}
{{- if and $v.nats.enabled $v.nats.existingSecret }}
{{- fail "nats.existingSecret cannot be combined with nats.enabled: the bundled server's authorization is generated from the chart's own credentials (set nats.credentials.<identity>.password to choose them)" }}
{{- end }}
{{- if and (eq $v.nats.auth "creds") (not $v.nats.existingSecret) }}
{{- fail "nats.auth=creds needs nats.existingSecret holding <identity>.creds files" }}
{{- end }}
{{- if and $v.nats.enabled (eq $v.nats.auth "creds") }}
{{- fail "nats.auth=creds is not supported with nats.enabled (the bundled server uses user/password authorization)" }}
{{- end }}
{{- if and $v.nats.enabled (gt (int $v.config.topology.replicas) 1) (not $v.nats.config.cluster.enabled) }}
{{- fail (printf "config.topology.replicas=%d needs a clustered JetStream: set nats.config.cluster.enabled=true" (int $v.config.topology.replicas)) }}
{{- end }}
{{- if and $v.nats.enabled $v.nats.config.cluster.enabled (gt (int $v.config.topology.replicas) (int $v.nats.config.cluster.replicas)) }}
{{- fail (printf "config.topology.replicas=%d exceeds nats.config.cluster.replicas=%d" (int $v.config.topology.replicas) (int $v.nats.config.cluster.replicas)) }}
{{- end }}
{{- with $v.keda.streams }}
{{- $t := include "gitstore-agents.topologyNames" $ | fromJson }}
{{- if or (and .events (ne .events $t.events)) (and .tasks (ne .tasks $t.tasks)) }}
{{- fail (printf "keda.streams is no longer used: the KEDA scalers read the streams the workers read, config.topology.events_stream=%s and config.topology.tasks_stream=%s; set those instead and drop keda.streams (--set keda.streams=null)" $t.events $t.tasks) }}
{{- end }}
{{- end }}
{{- if and $v.keda.enabled (not $v.nats.enabled) (not $v.keda.natsServerMonitoringEndpoint) }}
{{- fail "keda.natsServerMonitoringEndpoint is required when keda.enabled and NATS is external (host:port of the NATS monitoring endpoint)" }}
{{- end }}
{{- range $role := include "gitstore-agents.enabledRoles" . | fromJsonArray }}
{{- $spec := get $v.roles $role }}
{{- if and $v.keda.enabled (gt (int $spec.keda.minReplicaCount) (int $spec.keda.maxReplicaCount)) }}
{{- fail (printf "roles.%s.keda.minReplicaCount=%d exceeds maxReplicaCount=%d" $role (int $spec.keda.minReplicaCount) (int $spec.keda.maxReplicaCount)) }}
{{- end }}
{{- $cfg := $spec.config }}
{{- if le (int $cfg.max_deliver) (len ($cfg.backoff_s | default list)) }}
{{- fail (printf "roles.%s.config.max_deliver=%d must exceed the number of backoff_s steps (%d): the last delivery has no backoff step" $role (int $cfg.max_deliver) (len $cfg.backoff_s)) }}
{{- end }}
{{- end }}
{{- if eq (len (include "gitstore-agents.enabledRoles" . | fromJsonArray)) 0 }}
{{- fail "no role is enabled: enable at least one of roles.<role>.enabled" }}
{{- end }}
{{- end }}
