#!/usr/bin/env bash
# Builds the Surge image (operator and worker, one image) with no container daemon and no
# registry beyond the package registries: Debian (mmdebstrap) and PyPI (pip).
# `make image` runs it. The steps are the Dockerfile's, in the same order:
#
#   1. base      mmdebstrap --variant=essential --include=python3 bookworm: Debian's own
#                Python 3.11 at /usr/bin/python3 (as in distroless/python3-debian12), no apt,
#                no docs; perl and usrmerge purged. Cached per package list.
#   2. wheels    pip wheel of docker/constraints.txt (the lock file) on this machine. Cached
#                per lock file.
#   3. venv      /venv created by the image's python3 (chroot), the locked wheels installed
#                into it by pip running under the image's python3, from the cache only
#                (--no-index): a wheel the image's Python cannot use is refused here. Cached
#                per base and lock file.
#   4. surge     surge's wheel (built from the same files as the Dockerfile's context),
#                --no-deps, `pip check`, bytecode compiled, smoke-tested as uid 65532.
#   5. import    the root filesystem is imported as one layer with the Dockerfile's USER
#                65532:65532, ENTRYPOINT ["surge"], CMD ["operator"] and ENV; everything is
#                root-owned, nothing needs to be writable but /tmp (readOnlyRootFilesystem).
#   6. SBOM      CycloneDX JSON of the Debian packages (the rootfs's dpkg status) and the
#                Python packages (the venv's metadata), next to the image in build/image/.
#
# Prints the image's size, ID and digest, and the SBOM's package count. A build whose inputs
# (base, lock file, sources) did not change since the last one is skipped.
#
# Needs root (mmdebstrap and chroot), mmdebstrap, and podman or docker (only for `import`).
# Environment: SURGE_IMAGE (default localhost/surge:VERSION), SURGE_IMAGE_CACHE
# (~/.cache/surge-image), SURGE_IMAGE_OUT (build/image), SURGE_IMAGE_ENGINE (podman|docker),
# SURGE_DEBIAN_MIRROR (mmdebstrap's default), PY (the Python that builds the wheels:
# .venv/bin/python; its major.minor must be the image's).
# Flags: --rebuild-base (fresh Debian packages, e.g. security updates), --force (rebuild even
# when up to date), --if-possible (`make test`: a missing prerequisite is a note, not an error,
# unless CI=true), --base-only (import only step 1's base as localhost/surge-base:bookworm, for
# `docker build --build-arg RUNTIME_IMAGE=...`: the Dockerfile on this same base).
set -euo pipefail
umask 022
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

SUITE=bookworm
# The image's Debian packages: python3, libstdc++6 and what Debian makes essential. usr-is-merged keeps
# usrmerge's perl out; the purge removes what mmdebstrap still brought for the /usr merge.
PACKAGES=usr-is-merged,python3,libstdc++6 # manylinux wheels (numpy) link libstdc++
PURGE="usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl perl-modules-5.36 libperl5.36 libgdbm-compat4"
PIP_VERSION=26.3 # the Dockerfile's pip
UID_GID=65532:65532
VENV=/venv

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
IMAGE=${SURGE_IMAGE:-localhost/surge:$VERSION}
CACHE=${SURGE_IMAGE_CACHE:-$HOME/.cache/surge-image}
OUT=${SURGE_IMAGE_OUT:-$ROOT/build/image}
PY=${PY:-$ROOT/.venv/bin/python}
REBUILD_BASE=0
FORCE=0
IF_POSSIBLE=0
BASE_ONLY=0
for arg in "$@"; do
  case $arg in
    --rebuild-base) REBUILD_BASE=1 ;;
    --force) FORCE=1 ;;
    --if-possible) IF_POSSIBLE=1 ;;
    --base-only) BASE_ONLY=1 ;;
    *) echo "usage: $0 [--rebuild-base] [--force] [--if-possible] [--base-only]" >&2; exit 2 ;;
  esac
done

log() { printf '[image %3ss] %s\n' "$SECONDS" "$*"; }
die() { echo "image: $*" >&2; exit 1; }
# A missing prerequisite (root, mmdebstrap, podman): with --if-possible and outside CI, a
# note and exit 0 (tests/e2e/test_container.py then skips); otherwise an error.
missing() {
  if [ "$IF_POSSIBLE" = 1 ] && [ "${CI:-}" != true ]; then
    echo "image: not built: $* (the container-mode e2e tests will be skipped)" >&2
    exit 0
  fi
  die "$*"
}
sha() { sha256sum | cut -c1-16; }

[ "$(id -u)" = 0 ] || missing "needs root (mmdebstrap and chroot); without root, use the Dockerfile (docs/deploy.md)"
command -v mmdebstrap >/dev/null || missing "mmdebstrap missing: apt-get install mmdebstrap (make system-deps)"
ENGINE=${SURGE_IMAGE_ENGINE:-}
if [ -z "$ENGINE" ]; then
  if command -v podman >/dev/null; then ENGINE=podman; elif command -v docker >/dev/null; then ENGINE=docker; fi
fi
[ -n "$ENGINE" ] || missing "podman or docker is needed to import the image (apt-get install podman)"
QUIET=()
[ "$ENGINE" = podman ] && QUIET=(--quiet)
[ -x "$PY" ] || die "$PY missing (make venv)"

mkdir -p "$CACHE" "$OUT"
# A find-links directory of this machine's pip config that does not exist only adds warnings.
if [ -n "${PIP_FIND_LINKS:-}" ] && [ ! -e "$PIP_FIND_LINKS" ]; then unset PIP_FIND_LINKS; fi
exec 9>"$CACHE/lock"
flock 9 # one build at a time per cache

# ---- inputs and their keys -------------------------------------------------------------------
DPKGOPTS=(
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
)
MIRROR=(${SURGE_DEBIAN_MIRROR:+"$SURGE_DEBIAN_MIRROR"})
BASE_KEY=$(printf '%s\n' "$SUITE" "$PACKAGES" "$PURGE" "${DPKGOPTS[@]}" "${MIRROR[@]}" base-v1 | sha)
BASE_TAR=$CACHE/base-$SUITE-$BASE_KEY.tar
HOST_PY=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
WHEELS_KEY=$({ cat docker/constraints.txt; echo "$HOST_PY pip==$PIP_VERSION wheels-v1"; } | sha)
WHEELS=$CACHE/wheels-$WHEELS_KEY
SOURCES=(pyproject.toml README.md surge operator loadgen)
SRC_KEY=$(find "${SOURCES[@]}" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 \
  | LC_ALL=C sort -z | xargs -0 sha256sum | sha)
DEPS_KEY=$(echo "$BASE_KEY $WHEELS_KEY deps-v2" | sha) # bump deps-vN when step 3 changes
DEPS_TAR=$CACHE/deps-$DEPS_KEY.tar
INPUTS=$(echo "$DEPS_KEY $SRC_KEY $(cat hack/image/build.sh hack/image/sbom.py | sha)" | sha)
SBOM=$OUT/surge-$VERSION.cdx.json

report() {
  local id digest size
  read -r id digest size < <($ENGINE image inspect "$IMAGE" --format '{{.Id}} {{.Digest}} {{.Size}}')
  {
    echo "IMAGE=$IMAGE"
    echo "IMAGE_ID=$id"
    echo "IMAGE_DIGEST=$digest"
    echo "IMAGE_SIZE=$size"
    echo "INPUTS=$INPUTS"
    echo "SBOM=$SBOM"
    echo "SBOM_PACKAGES=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$SBOM")"
  } >"$OUT/image.env"
  # shellcheck disable=SC1091
  source "$OUT/image.env"
  log "image $IMAGE: size $((IMAGE_SIZE / 1000000)) MB ($IMAGE_SIZE bytes), id ${IMAGE_ID:0:12}, digest $IMAGE_DIGEST"
  log "SBOM $SBOM: $SBOM_PACKAGES packages"
}

if [ "$FORCE$REBUILD_BASE$BASE_ONLY" = 000 ] && [ -f "$SBOM" ] && [ -f "$OUT/image.env" ] \
  && [ "$($ENGINE image inspect "$IMAGE" --format '{{index .Labels "dev.surge.inputs"}}' 2>/dev/null)" = "$INPUTS" ]; then
  log "up to date (inputs $INPUTS)"
  report
  exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/surge-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
RFS=$WORK/rootfs
in_image() { chroot "$RFS" "$@"; }

# ---- 1. base ---------------------------------------------------------------------------------
if [ "$REBUILD_BASE" = 1 ] || [ ! -f "$BASE_TAR" ]; then
  log "base: mmdebstrap $SUITE ($PACKAGES)"
  mmdebstrap --quiet --variant=essential --include="$PACKAGES" "${DPKGOPTS[@]}" \
    --customize-hook="chroot \"\$1\" dpkg --purge $PURGE" \
    "$SUITE" "$WORK/base.tar" "${MIRROR[@]}"
  mv "$WORK/base.tar" "$BASE_TAR"
  rm -f "$CACHE"/deps-*.tar # built on the old base
else
  log "base: cached $(basename "$BASE_TAR")"
fi

if [ "$BASE_ONLY" = 1 ]; then
  $ENGINE import "${QUIET[@]}" --change 'CMD ["python3"]' "$BASE_TAR" "localhost/surge-base:$SUITE" >/dev/null
  log "base imported as localhost/surge-base:$SUITE ($ENGINE image ls localhost/surge-base)"
  exit 0
fi

# ---- 2. wheels -------------------------------------------------------------------------------
if [ ! -f "$WHEELS/.complete" ]; then
  log "wheels: pip wheel -r docker/constraints.txt (Python $HOST_PY)"
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  "$PY" -m pip wheel -q --disable-pip-version-check --wheel-dir "$WHEELS" \
    --requirement docker/constraints.txt "pip==$PIP_VERSION"
  cp docker/constraints.txt "$WHEELS/constraints.txt"
  touch "$WHEELS/.complete"
else
  log "wheels: cached $(basename "$WHEELS") ($(find "$WHEELS" -name '*.whl' | wc -l) wheels)"
fi

# ---- 3. venv with the locked dependencies ----------------------------------------------------
mkdir -p "$RFS"
if [ ! -f "$DEPS_TAR" ]; then
  log "venv: $VENV with the locked dependencies, installed by the image's python3"
  tar -C "$RFS" -xf "$BASE_TAR"
  IMAGE_PY=$(in_image /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$IMAGE_PY" = "$HOST_PY" ] || die "the image's Python is $IMAGE_PY, $PY is $HOST_PY: wheels would not match"
  # The image's own passwd knows the non-root user (distroless calls it nonroot, too).
  grep -q ':65532:' "$RFS/etc/passwd" || echo 'nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin' >>"$RFS/etc/passwd"
  grep -q ':65532:' "$RFS/etc/group" || echo 'nonroot:x:65532:' >>"$RFS/etc/group"
  in_image /usr/bin/python3 -m venv --without-pip "$VENV"
  mkdir -p "$RFS/wheels"
  cp -l "$WHEELS"/*.whl "$WHEELS/constraints.txt" "$RFS/wheels/" 2>/dev/null || cp "$WHEELS"/*.whl "$WHEELS/constraints.txt" "$RFS/wheels/"
  PIPWHL=$(cd "$RFS/wheels" && ls pip-"$PIP_VERSION"-*.whl)
  # pip runs from its wheel under the image's Python and is never installed into the image.
  in_image env PIP_CONFIG_FILE=/dev/null PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" \
    "/wheels/$PIPWHL/pip" install -q --no-index --find-links /wheels --no-compile \
    --disable-pip-version-check --requirement /wheels/constraints.txt
  rm -rf "$RFS/wheels"
  # Bytecode now, so a read-only root costs nothing at run time.
  in_image "$VENV/bin/python" -m compileall -q -j0 "$VENV"
  tar -C "$RFS" --numeric-owner -cf "$WORK/deps.tar" .
  rm -f "$CACHE"/deps-*.tar
  mv "$WORK/deps.tar" "$DEPS_TAR"
else
  log "venv: cached $(basename "$DEPS_TAR")"
  tar -C "$RFS" -xf "$DEPS_TAR"
fi

# ---- 4. surge --------------------------------------------------------------------------------
log "surge: wheel from ${SOURCES[*]}"
mkdir -p "$WORK/src" "$WORK/dist"
# The Dockerfile's build context (.dockerignore): nothing else reaches the wheel.
tar -cf - --exclude=__pycache__ --exclude='*.pyc' "${SOURCES[@]}" | tar -C "$WORK/src" -xf -
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
  --wheel-dir "$WORK/dist" "$WORK/src"
mkdir -p "$RFS/wheels"
cp "$WORK"/dist/surge-*.whl "$WHEELS/pip-$PIP_VERSION"-*.whl "$RFS/wheels/"
PIPWHL=$(cd "$RFS/wheels" && ls pip-"$PIP_VERSION"-*.whl)
SURGEWHL=$(cd "$RFS/wheels" && ls surge-*.whl)
PIP_IN=(env PIP_CONFIG_FILE=/dev/null PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" "/wheels/$PIPWHL/pip")
in_image "${PIP_IN[@]}" install -q --no-index --no-deps --no-compile --disable-pip-version-check "/wheels/$SURGEWHL"
in_image "${PIP_IN[@]}" check --disable-pip-version-check >/dev/null
rm -rf "$RFS/wheels"
in_image "$VENV/bin/python" -m compileall -q -j0 "/$(cd "$RFS" && echo venv/lib/python3*/site-packages/surge)"
# Smoke test as the image's user on the finished tree (what the pods run).
in_image setpriv --reuid=65532 --regid=65532 --clear-groups env HOME=/tmp PYTHONDONTWRITEBYTECODE=1 \
  "$VENV/bin/surge" operator --help >/dev/null
in_image setpriv --reuid=65532 --regid=65532 --clear-groups env HOME=/tmp PYTHONDONTWRITEBYTECODE=1 \
  "$VENV/bin/surge" worker --help >/dev/null
# Nothing of the build stays: logs, caches, a machine id. /tmp is empty and world-writable.
rm -rf "$RFS"/var/log/* "$RFS"/var/cache/debconf/*-old "$RFS"/var/lib/dpkg/*-old "$RFS"/tmp/* \
  "$RFS"/root/.cache
: >"$RFS/etc/machine-id"
chmod 1777 "$RFS/tmp"

# ---- 6. SBOM (before the import: it describes this tree) --------------------------------------
python3 hack/image/sbom.py --rootfs "$RFS" --image "$IMAGE" --version "$VERSION" --out "$SBOM"

# ---- 5. import -------------------------------------------------------------------------------
log "import: $ENGINE import as $IMAGE"
tar -C "$RFS" --numeric-owner --sort=name -cf "$WORK/rootfs.tar" .
OLD_ID=$($ENGINE image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)
$ENGINE import "${QUIET[@]}" \
  --change "USER $UID_GID" \
  --change 'ENTRYPOINT ["surge"]' \
  --change 'CMD ["operator"]' \
  --change "ENV PATH=$VENV/bin:/usr/local/bin:/usr/bin:/bin" \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
  --change 'ENV PYTHONUNBUFFERED=1' \
  --change 'ENV HOME=/tmp' \
  --change 'LABEL org.opencontainers.image.title=surge' \
  --change 'LABEL org.opencontainers.image.description="Surge operator and load generator"' \
  --change 'LABEL org.opencontainers.image.licenses=Apache-2.0' \
  --change "LABEL org.opencontainers.image.version=$VERSION" \
  --change "LABEL dev.surge.inputs=$INPUTS" \
  "$WORK/rootfs.tar" "$IMAGE" >/dev/null
# The previous build, now untagged, would keep its 400 MB forever.
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$($ENGINE image inspect "$IMAGE" --format '{{.Id}}')" ]; then
  $ENGINE rmi "$OLD_ID" >/dev/null 2>&1 || true
fi
report
log "done"
