#!/usr/bin/env bash
# Starts KEDA on the running local e2e control plane (up.sh calls it last; it also runs alone):
#   keda-operator: host process, admin identity, watches every namespace; serves KEDA's gRPC
#                  metrics service to the adapter on 127.0.0.1 (mTLS, certificates below).
#   keda-adapter:  KEDA's metrics API server, registered as the APIService
#                  v1beta1.external.metrics.k8s.io (ExternalName Service -> localhost, as for
#                  metrics-server), so the real HPA that KEDA creates reads External metrics.
# KEDA's CRDs come from the pinned module's config/crd/bases (copied next to the binaries by
# build.sh). Idempotent: exits 0 when both processes run and the APIService answers.
# The PIDs go to $STATE_DIR/pids, so down.sh stops them with the rest.
#
# Env: SURGE_KEDA=0 skips it (up.sh then starts the cluster without KEDA).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"
# shellcheck source=hack/cluster/pki.sh
source "$HERE/pki.sh"

if [[ "${SURGE_KEDA:-1}" == "0" ]]; then
  log "SURGE_KEDA=0: KEDA not started"
  exit 0
fi

PKI="$STATE_DIR/pki"
LOGS="$STATE_DIR/logs"
PIDS="$STATE_DIR/pids"
CONF="$STATE_DIR/conf"
CERTS="$STATE_DIR/keda-certs"  # the file names KEDA reads: ca.crt, tls.crt, tls.key
CA_DIR="$STATE_DIR/keda-ca"    # CAs the scalers trust (KEDA reads every file there as PEM certs)

# Every port is on 127.0.0.1 (but see the adapter's --port below) and can be moved.
APISERVER_PORT="${SURGE_APISERVER_PORT:-16443}"
KEDA_GRPC_PORT="${SURGE_KEDA_GRPC_PORT:-29666}"                # operator -> adapter metrics service
KEDA_ADAPTER_PORT="${SURGE_KEDA_ADAPTER_PORT:-26443}"          # external.metrics.k8s.io
KEDA_ADAPTER_METRICS_PORT="${SURGE_KEDA_ADAPTER_METRICS_PORT:-28080}"
KEDA_OPERATOR_METRICS_PORT="${SURGE_KEDA_OPERATOR_METRICS_PORT:-28081}"
KEDA_OPERATOR_PROBE_PORT="${SURGE_KEDA_OPERATOR_PROBE_PORT:-28082}"

K() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

if [[ -z "${SURGE_CLUSTER_LOCKED:-}" ]]; then
  exec 9>"$STATE_DIR/.lock"
  flock -w 600 9 || die "another up.sh/down.sh holds $STATE_DIR/.lock"
fi
[[ -f "$KUBECONFIG_PATH" && -f "$PKI/ca.crt" ]] || die "no cluster at $STATE_DIR: run up.sh"
for b in keda-operator keda-adapter; do
  [[ -x "$BIN_DIR/$b" ]] || die "$BIN_DIR/$b missing: run make cluster-build (or SURGE_KEDA=0)"
done
[[ -d "$BIN_DIR/keda-crds" ]] || die "$BIN_DIR/keda-crds missing: run make cluster-build"

# running NAME: its recorded PID still runs its binary (the test down.sh makes).
running() {
  local f="$PIDS/$1.pid"
  [[ -f "$f" ]] && runs_binary "$(cat "$f")" "$1"
}
external_metrics_api() { K get --raw /apis/external.metrics.k8s.io/v1beta1 >/dev/null 2>&1; }
operator_ready() { curl -sf --max-time 2 "http://127.0.0.1:$KEDA_OPERATOR_PROBE_PORT/readyz" >/dev/null; }

if running keda-operator && running keda-adapter && external_metrics_api; then
  log "KEDA already running"
  exit 0
fi

alive_or_die() {
  local n
  for n in keda-operator keda-adapter; do
    [[ -f "$PIDS/$n.pid" ]] || continue
    if ! kill -0 "$(cat "$PIDS/$n.pid")" 2>/dev/null; then
      tail -n 20 "$LOGS/$n.log" >&2 || true
      die "$n exited (log: $LOGS/$n.log)"
    fi
  done
}
wait_for() {
  local what="$1" timeout_s="$2" t0=$SECONDS
  shift 2
  until "$@"; do
    alive_or_die
    ((SECONDS - t0 < timeout_s)) || die "$what not ready after ${timeout_s}s (logs: $LOGS)"
    sleep 0.5
  done
  log "$what ready ($((SECONDS - t0)) s)"
}
start() {
  local name="$1"
  shift
  if running "$name"; then
    log "$name already running (pid $(cat "$PIDS/$name.pid"))"
    return
  fi
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDS/$name.pid"
  log "started $name (pid $!)"
}

T0=$SECONDS
mkdir -p "$LOGS" "$PIDS" "$CERTS" "$CA_DIR"
# One certificate for both ends of the gRPC mTLS and for the adapter's serving endpoint; the
# aggregator verifies the name <service>.<namespace>.svc of the APIService's Service.
new_cert keda ca "/CN=keda" "serverAuth,clientAuth" \
  "DNS:keda-metrics-apiserver.keda.svc,DNS:keda-operator.keda.svc,DNS:localhost,IP:127.0.0.1"
cp -f "$PKI/ca.crt" "$CERTS/ca.crt"
cp -f "$PKI/keda.crt" "$CERTS/tls.crt"
cp -f "$PKI/keda.key" "$CERTS/tls.key"
cp -f "$PKI/ca.crt" "$CA_DIR/ca.crt"

# Server-side apply: the ScaledObject CRD is too large for client-side apply's annotation.
K apply --server-side --force-conflicts -f "$BIN_DIR/keda-crds" >/dev/null
K create namespace keda --dry-run=client -o yaml | K apply -f - >/dev/null
K apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: keda}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: $KEDA_ADAPTER_PORT, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  service: {name: keda-metrics-apiserver, namespace: keda, port: $KEDA_ADAPTER_PORT}
  caBundle: $(base64 -w0 <"$PKI/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
EOF

# Out-of-cluster: KUBECONFIG instead of a service account; WATCH_NAMESPACE="" is all of them;
# KEDA_CLUSTER_OBJECT_NAMESPACE replaces the service account's namespace file.
export KUBECONFIG="$CONF/addons.kubeconfig" WATCH_NAMESPACE="" POD_NAMESPACE=keda \
  KEDA_CLUSTER_OBJECT_NAMESPACE=keda KEDA_HTTP_DEFAULT_TIMEOUT=3000
start keda-operator "$BIN_DIR/keda-operator" \
  --leader-elect=false --enable-cert-rotation=false --cert-dir="$CERTS" --ca-dir="$CA_DIR" \
  --metrics-service-bind-address="127.0.0.1:$KEDA_GRPC_PORT" \
  --metrics-bind-address="127.0.0.1:$KEDA_OPERATOR_METRICS_PORT" \
  --health-probe-bind-address="127.0.0.1:$KEDA_OPERATOR_PROBE_PORT" \
  --zap-log-level=info --zap-encoder=console
wait_for keda-operator 60 operator_ready
# The adapter's own /metrics (--port) binds every interface (KEDA hard-codes ":port"); it serves
# nothing but metrics.
start keda-adapter "$BIN_DIR/keda-adapter" \
  --bind-address=127.0.0.1 --secure-port="$KEDA_ADAPTER_PORT" --cert-dir="$CERTS" \
  --tls-cert-file="$CERTS/tls.crt" --tls-private-key-file="$CERTS/tls.key" \
  --lister-kubeconfig="$KUBECONFIG" \
  --authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG" \
  --metrics-service-address="127.0.0.1:$KEDA_GRPC_PORT" --port="$KEDA_ADAPTER_METRICS_PORT" \
  --zap-log-level=info --zap-encoder=console
wait_for "external.metrics.k8s.io APIService" 90 external_metrics_api

cat >"$STATE_DIR/keda.env" <<EOF
KEDA_VERSION=$(awk '$1 == "github.com/kedacore/keda/v2" {print $2; exit}' "$HERE/keda/go.mod")
KEDA_GRPC_PORT=$KEDA_GRPC_PORT
KEDA_ADAPTER_PORT=$KEDA_ADAPTER_PORT
KEDA_OPERATOR_METRICS_URL=http://127.0.0.1:$KEDA_OPERATOR_METRICS_PORT/metrics
EOF
log "KEDA up in $((SECONDS - T0)) s (external.metrics.k8s.io on 127.0.0.1:$KEDA_ADAPTER_PORT)"
