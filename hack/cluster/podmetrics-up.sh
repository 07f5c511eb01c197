#!/usr/bin/env bash
# Starts podmetrics (hack/cluster/podmetrics: custom.metrics.k8s.io for pods, each pod's value of
# metric M read from its annotation metrics.surge.dev/M) on the running local e2e control plane,
# registered as the APIServices v1beta2 and v1beta1.custom.metrics.k8s.io (ExternalName Service
# -> localhost, as for metrics-server and KEDA), so the real HPA scales on Pods metrics. It is a
# test device standing in for prometheus-adapter (docs/cluster.md).
# up.sh calls it after KEDA; it also runs alone. Idempotent: exits 0 when the process runs and
# the API answers; never restarts anything else. The PID goes to $STATE_DIR/pids (down.sh
# stops it).
#
# Env: SURGE_PODMETRICS=0 skips it; SURGE_PODMETRICS_PORT moves its port (default 27443).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"
# shellcheck source=hack/cluster/pki.sh
source "$HERE/pki.sh"

if [[ "${SURGE_PODMETRICS:-1}" == "0" ]]; then
  log "SURGE_PODMETRICS=0: podmetrics (custom.metrics.k8s.io) not started"
  exit 0
fi

PKI="$STATE_DIR/pki"
LOGS="$STATE_DIR/logs"
PIDS="$STATE_DIR/pids"
CONF="$STATE_DIR/conf"
PORT="${SURGE_PODMETRICS_PORT:-27443}"
NAME=podmetrics

K() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

if [[ -z "${SURGE_CLUSTER_LOCKED:-}" ]]; then
  exec 9>"$STATE_DIR/.lock"
  flock -w 600 9 || die "another up.sh/down.sh holds $STATE_DIR/.lock"
fi
[[ -f "$KUBECONFIG_PATH" && -f "$PKI/ca.crt" ]] || die "no cluster at $STATE_DIR: run up.sh"
[[ -x "$BIN_DIR/$NAME" ]] || die "$BIN_DIR/$NAME missing: run make cluster-build (or SURGE_PODMETRICS=0)"

running() { [[ -f "$PIDS/$NAME.pid" ]] && runs_binary "$(cat "$PIDS/$NAME.pid")" "$NAME"; }
custom_metrics_api() {
  K get --raw /apis/custom.metrics.k8s.io/v1beta2 >/dev/null 2>&1 &&
    K get --raw /apis/custom.metrics.k8s.io/v1beta1 >/dev/null 2>&1
}

if running && custom_metrics_api; then
  log "$NAME already running (custom.metrics.k8s.io on 127.0.0.1:$PORT)"
  exit 0
fi

T0=$SECONDS
mkdir -p "$LOGS" "$PIDS"
# The aggregator verifies the name <service>.<namespace>.svc of the APIService's Service.
new_cert "$NAME" ca "/CN=surge-podmetrics" serverAuth \
  "DNS:surge-podmetrics.custom-metrics.svc,DNS:localhost,IP:127.0.0.1"

if running; then
  log "$NAME already running (pid $(cat "$PIDS/$NAME.pid"))"
else
  # Same admin identity as metrics-server and KEDA (conf/addons.kubeconfig): it lists pods,
  # reads the front proxy's CA and sends SubjectAccessReviews for the HPA's requests.
  setsid "$BIN_DIR/$NAME" \
    --bind-address=127.0.0.1 --secure-port="$PORT" \
    --tls-cert-file="$PKI/$NAME.crt" --tls-private-key-file="$PKI/$NAME.key" \
    --lister-kubeconfig="$CONF/addons.kubeconfig" \
    --authentication-kubeconfig="$CONF/addons.kubeconfig" \
    --authorization-kubeconfig="$CONF/addons.kubeconfig" \
    >>"$LOGS/$NAME.log" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDS/$NAME.pid"
  log "started $NAME (pid $!)"
fi

# wait_for WHAT COMMAND...: until COMMAND succeeds; fails fast if the process has exited.
wait_for() {
  local what="$1"
  shift
  until "$@"; do
    if ! kill -0 "$(cat "$PIDS/$NAME.pid")" 2>/dev/null; then
      tail -n 20 "$LOGS/$NAME.log" >&2 || true
      die "$NAME exited (log: $LOGS/$NAME.log)"
    fi
    ((SECONDS - T0 < 90)) || die "$what not ready after 90 s (log: $LOGS/$NAME.log)"
    sleep 0.5
  done
}
ready() { curl -sf --max-time 2 --cacert "$PKI/ca.crt" "https://127.0.0.1:$PORT/readyz" >/dev/null; }
# Register the APIServices only once it serves (its pod cache filled): meanwhile an APIService
# that does not answer would fail API discovery for every client of the cluster.
wait_for "$NAME /readyz" ready

K create namespace custom-metrics --dry-run=client -o yaml | K apply -f - >/dev/null
api_service() {  # VERSION PRIORITY
  cat <<EOF
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: $1.custom.metrics.k8s.io}
spec:
  group: custom.metrics.k8s.io
  version: $1
  service: {name: surge-podmetrics, namespace: custom-metrics, port: $PORT}
  caBundle: $(base64 -w0 <"$PKI/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: $2
EOF
}
K apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: surge-podmetrics, namespace: custom-metrics}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: $PORT, protocol: TCP}]
$(api_service v1beta2 200)
$(api_service v1beta1 100)
EOF
wait_for "custom.metrics.k8s.io APIService" custom_metrics_api
log "$NAME up in $((SECONDS - T0)) s (custom.metrics.k8s.io v1beta2, v1beta1 on 127.0.0.1:$PORT)"
