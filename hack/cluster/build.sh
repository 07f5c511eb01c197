#!/usr/bin/env bash
# Builds the binaries of the local e2e control plane from the Go modules pinned in
# hack/cluster/{go.mod,addons/go.mod,ksm/go.mod,keda/go.mod,podmetrics/go.mod} and caches them in
#   ${SURGE_CLUSTER_CACHE:-~/.cache/surge-cluster}/<kubernetes version>/bin
# A binary is rebuilt only when the go.mod/go.sum that pins it (or its module's own .go files) or
# the Go version changed, so a second run takes a second. Prints how long each binary took (CI
# logs show it).
#
# Env: GO (go binary; default: go on PATH, else /usr/local/go/bin/go), SURGE_CLUSTER_CACHE.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
source "$HERE/lib.sh"

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x "$GO" ]] || die "no Go toolchain found (set GO=/path/to/go)"

# Build with the Go minor that the Kubernetes release's go.mod names: kube-apiserver built with
# a newer Go served a broken /openapi/v2 ("$root has invalid property: Extensions").
KUBE_GO="$(go_line_of_module k8s.io/kubernetes "$K8S_VERSION")"
HAVE_GO="$("$GO" env GOVERSION)"   # e.g. go1.26.8
if [[ "$(minor_of "${HAVE_GO#go}")" != "$(minor_of "$KUBE_GO")" ]]; then
  # The go command fetches the named toolchain through the module proxy; "+auto" lets a
  # module that names a later patch release (addons/go.mod) switch up to it.
  export GOTOOLCHAIN="go${KUBE_GO}+auto"
  log "Go ${HAVE_GO#go} does not match Kubernetes' go ${KUBE_GO}; using GOTOOLCHAIN=$GOTOOLCHAIN"
  HAVE_GO="$(cd "$HERE" && "$GO" env GOVERSION)"
fi

mkdir -p "$BIN_DIR"
exec 9>"$CACHE_DIR/.build.lock"
flock 9  # one build per cache at a time (two checkouts, or CI and a developer)

export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"

KUBE_LDFLAGS="-s -w \
 -X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} \
 -X k8s.io/component-base/version.gitMajor=$(cut -d. -f1 <<<"$K8S_VERSION") \
 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION") \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"

# build NAME MODULE_DIR PACKAGE [LDFLAGS] [test]   test: run the package's Go tests first
build() {
  local name="$1" dir="$2" pkg="$3" ldflags="${4:--s -w}" tests="${5:-}"
  local out="$BIN_DIR/$name" stamp="$BIN_DIR/.$name.stamp" want
  # The stamp: the module's go.mod/go.sum and its own sources (podmetrics has some).
  want="$(cat "$dir/go.mod" "$dir/go.sum" $(find "$dir" -maxdepth 1 -name '*.go' | sort) \
    | sha256sum | cut -c1-16) $HAVE_GO $pkg"
  if [[ -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "cached  $name ($out)"
    return
  fi
  local t0=$SECONDS
  if [[ "$tests" == test ]]; then
    # -vet=off: vet first computes facts for every dependency (about a minute cold).
    (cd "$dir" && nice -n 10 "$GO" test -vet=off -count=1 "$pkg")
  fi
  (cd "$dir" && nice -n 10 "$GO" build -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv -f "$out.tmp" "$out"
  echo "$want" >"$stamp"
  log "built   $name in $((SECONDS - t0)) s"
}

T0=$SECONDS
build kube-apiserver          "$HERE"        k8s.io/kubernetes/cmd/kube-apiserver          "$KUBE_LDFLAGS"
build kube-controller-manager "$HERE"        k8s.io/kubernetes/cmd/kube-controller-manager "$KUBE_LDFLAGS"
build kube-scheduler          "$HERE"        k8s.io/kubernetes/cmd/kube-scheduler          "$KUBE_LDFLAGS"
build etcd                    "$HERE"        go.etcd.io/etcd/server/v3
build kwok                    "$HERE/addons" sigs.k8s.io/kwok/cmd/kwok
build metrics-server          "$HERE/addons" sigs.k8s.io/metrics-server/cmd/metrics-server
build kube-state-metrics      "$HERE/ksm"    k8s.io/kube-state-metrics/v2
# KEDA (operator + external metrics adapter) and its CRDs: the slowest part of a cold build
# (10-15 min on 2 cores, mostly the SDKs of its scalers; docs/cluster.md); cached like the rest.
KEDA_VERSION="$(awk '$1 == "github.com/kedacore/keda/v2" {print $2; exit}' "$HERE/keda/go.mod")"
KEDA_LDFLAGS="-s -w -X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
build keda-operator "$HERE/keda" github.com/kedacore/keda/v2/cmd/operator "$KEDA_LDFLAGS"
build keda-adapter  "$HERE/keda" github.com/kedacore/keda/v2/cmd/adapter  "$KEDA_LDFLAGS"
# The custom.metrics.k8s.io server for pods (a test device in place of prometheus-adapter):
# built after KEDA, whose module versions it pins, so it reuses KEDA's compiled packages.
build podmetrics    "$HERE/podmetrics" . "-s -w" test
KEDA_DIR="$(cd "$HERE/keda" && "$GO" list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)"
rm -rf "$BIN_DIR/keda-crds" && cp -r "$KEDA_DIR/config/crd/bases" "$BIN_DIR/keda-crds"
chmod -R u+w "$BIN_DIR/keda-crds"  # the module cache is read-only
log "cluster binaries ready in $BIN_DIR (total $((SECONDS - T0)) s, $HAVE_GO)"
