{{/* Names, labels and the shared RBAC rules of the Surge chart. */}}

{{- define "surge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "surge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "surge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "surge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "surge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "surge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: surge
{{- end -}}

{{- define "surge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "surge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: digest wins over tag; the tag defaults to appVersion. */}}
{{- define "surge.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped names carry the namespace: one release per namespace never collides. */}}
{{- define "surge.clusterName" -}}
{{- printf "%s-%s" (include "surge.fullname" .) .Release.Namespace | trunc 54 | trimSuffix "-" -}}
{{- end -}}

{{/* The workers' image (SURGE_LOADGEN_IMAGE): loadgen.image, else the operator's. */}}
{{- define "surge.loadgenImage" -}}
{{- default (include "surge.image" .) .Values.loadgen.image -}}
{{- end -}}

{{/*
The cluster policy as the operator reads it (YAML). Helm drops a key a user sets to null, so
every cap missing from the merged values is written back as null ("no cap"): values.yaml has
them all, so a missing one was nulled on purpose.
*/}}
{{- define "surge.policy" -}}
{{- $policy := deepCopy .Values.policy -}}
{{- $caps := default dict $policy.caps -}}
{{- range $key := list "maxRate" "maxUsers" "maxDuration" "maxWorkers" "maxInFlight" "maxConcurrentRunsPerNamespace" "maxExperimentReplicas" "maxGpusPerPod" "workerCpu" "workerMemory" -}}
{{- if not (hasKey $caps $key) -}}
{{- $_ := set $caps $key nil -}}
{{- end -}}
{{- end -}}
{{- $_ := set $policy "caps" $caps -}}
{{- toYaml $policy -}}
{{- end -}}

{{/* The namespaces served, as a JSON list (empty in cluster-wide mode). */}}
{{- define "surge.watchNamespaces" -}}
{{- if .Values.operator.clusterWide -}}
[]
{{- else if .Values.operator.watchNamespaces -}}
{{- toJson .Values.operator.watchNamespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/*
The operator's rules: exactly the API calls of surge/operator/kube.py and kopf.
docs/deploy.md explains each one; tests/e2e/test_chart.py proves each verb is needed.
Argument: a dict with "root" (the chart context) and "cluster" (true for the ClusterRole,
which names cluster-scoped peering objects).
*/}}
{{- define "surge.operatorRules" -}}
{{- $v := .root.Values -}}
# kopf lists and watches LoadTests, patches finalizers; get: is a target's holder still running?
- apiGroups: ["surge.dev"]
  resources: ["loadtests"]
  verbs: ["get", "list", "watch", "patch"]
# The lifecycle writes status through the status subresource.
- apiGroups: ["surge.dev"]
  resources: ["loadtests/status"]
  verbs: ["patch"]
# kopf.event(): RunStarted, WorkersCreated, BarrierOpened, ...
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# The plan ConfigMap (create, then patch startAt; deleted with its run when a new run starts);
# scenario ConfigMaps are read. get also reads back an existing one to check its owner, and is
# what the worker Role grants (RBAC only lets the operator grant what it holds).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch", "deletecollection"]
# One Indexed Job per run: find it, create it, delete it when done or on LoadTest deletion.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "create", "delete"]
# Worker pods: diagnose scheduling and exits (they go with their Job).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# The last lines of a failed worker's log go into the LoadTest's status.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Per-LoadTest worker identity that can read only its run's ConfigMap; get reads back one that
# exists to adopt it only if this LoadTest owns it.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["rolebindings"]
  verbs: ["get", "create"]
# One run per target: a Lease per target, taken before WaitingForTarget, released at the end.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update", "delete"]
# Target readiness: spec.target.deploymentRef.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get"]
# The cluster policy: a Secret a spec names (headers, Prometheus auth) must carry the label
# surge.dev/usable="true", so the operator reads it (get, by name: never list); it also reads
# spec.prometheus.auth's bearer token or basic-auth pair.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# The cluster policy: a target that is a Service of the run's namespace must exist; its
# ClusterIPs are read to check where the workers will send.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get"]
{{- if $v.operator.peering.enabled }}
# kopf peering (HA): replicas see each other and pause all but one.
- apiGroups: ["kopf.dev"]
  resources: [{{ if .cluster }}"clusterkopfpeerings"{{ else }}"kopfpeerings"{{ end }}]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- if $v.rbac.experiments }}
# ScalingExperiment: kopf watches experiments; the lifecycle writes their status.
- apiGroups: ["surge.dev"]
  resources: ["scalingexperiments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["surge.dev"]
  resources: ["scalingexperiments/status"]
  verbs: ["patch"]
# A variant writes only its own fields of the target Deployment (a uid-guarded JSON patch), and
# a restore puts back only those still holding what it wrote.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["patch"]
# The target's HPA: read, replaced per variant, created when missing, deleted on restore
# when the original had none.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "create", "update", "delete"]
# The target's KEDA ScaledObject: read, its variant's fields patched (uid-guarded JSON patch),
# created when missing and deleted on restore when the experiment created it; listed (with
# the HPAs) so that two scalers never scale the target at once.
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "create", "patch", "delete"]
# One child LoadTest per variant and repetition; deleted with the experiment.
- apiGroups: ["surge.dev"]
  resources: ["loadtests"]
  verbs: ["get", "create", "delete"]
{{- end }}
{{- end -}}

{{/* Restricted Pod Security Standard, shared by every container the chart renders. */}}
{{- define "surge.containerSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
readOnlyRootFilesystem: true
runAsNonRoot: true
{{- end -}}

{{/* Non-empty when the operator runs with leader election (operator.leaderElection.mode). */}}
{{- define "surge.leaderElection" -}}
{{- $mode := .Values.operator.leaderElection.mode -}}
{{- if or (eq $mode "on") (and (eq $mode "auto") (gt (int .Values.operator.replicas) 1)) -}}
true
{{- end -}}
{{- end -}}
