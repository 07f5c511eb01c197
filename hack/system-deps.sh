#!/usr/bin/env bash
# System packages the tests need (Debian): Prometheus and promtool for the results tests,
# openssl for the local cluster's certificates, taskset for the bench, podman, runc and
# mmdebstrap for the image. Idempotent; a no-op
# when everything is present. Installing needs root (as on CI); otherwise it says what to do.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v openssl >/dev/null || need+=(openssl)
command -v taskset >/dev/null || need+=(util-linux)
# The image (hack/image/build.sh) and the container-mode e2e tests (tests/e2e/test_container.py).
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${need[*]} (install them with your package manager)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the packaged Prometheus as a service; the tests run their own on free ports.
(systemctl stop prometheus || service prometheus stop || true) >/dev/null 2>&1
echo "installed: ${need[*]}"
