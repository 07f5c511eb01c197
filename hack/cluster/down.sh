#!/usr/bin/env bash
# Stops the local e2e control plane started by up.sh: only the PIDs recorded in
# $STATE_DIR/pids, and only while each still runs the binary it was started with.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"
PIDS="$STATE_DIR/pids"
if [[ -z "${SURGE_CLUSTER_LOCKED:-}" && -d "$STATE_DIR" ]]; then
  exec 9>"$STATE_DIR/.lock"
  flock -w 600 9 || die "another up.sh/down.sh holds $STATE_DIR/.lock"
fi

# stop NAME: SIGTERM, then SIGKILL after 15 s.
stop() {
  local name="$1" f="$PIDS/$1.pid" pid exe
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  if [[ "$exe" != "$BIN_DIR/$name" ]]; then
    log "$name (pid $pid) is not running"  # or the PID now belongs to something else
    rm -f "$f"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local t0=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - t0 >= 15)); then
      log "$name (pid $pid) ignored SIGTERM; killing"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$f"
  log "stopped $name (pid $pid)"
}

# Clients first, etcd last.
for name in kube-state-metrics metrics-server kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  stop "$name"
done
rm -rf "$STATE_DIR/etcd" "$STATE_DIR/state.env" "$STATE_DIR/state.json"
