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

# pid_of NAME: the recorded PID while it still runs the binary it was started with, else "".
pid_of() {
  local f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if runs_binary "$pid" "$1"; then
    echo "$pid"
  else
    log "$1 (pid $pid) is not running"  # or the PID now belongs to something else
    rm -f "$f"
  fi
}

# stop NAME...: SIGTERM to all of them at once, SIGKILL to any left after 15 s.
stop() {
  local name pid t0=$SECONDS
  local -A pids=()
  for name in "$@"; do
    pid="$(pid_of "$name")"
    [[ -n "$pid" ]] || continue
    pids[$name]=$pid
    kill -TERM "$pid" 2>/dev/null || true
  done
  for name in "${!pids[@]}"; do
    pid=${pids[$name]}
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS - t0 >= 15)); then
        log "$name (pid $pid) ignored SIGTERM; killing"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
    rm -f "$PIDS/$name.pid"
    log "stopped $name (pid $pid)"
  done
}

# Clients first, etcd last.
stop podmetrics keda-adapter keda-operator kube-state-metrics metrics-server kwok \
  kube-scheduler kube-controller-manager
stop kube-apiserver
stop etcd
rm -rf "$STATE_DIR/etcd" "$STATE_DIR/state.env" "$STATE_DIR/state.json" "$STATE_DIR/keda.env"
