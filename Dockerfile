# syntax=docker/dockerfile:1.7
# Surge: one image, two entrypoints.
#   surge operator   the kopf operator (the chart's Deployment)
#   surge worker     a load generator pod (the operator's Indexed Job)
# One image because both are the same Python package with the same pinned dependencies:
# every node pulls one image, and the operator and its workers can never drift apart.
#
# Two ways to build the same image, with the same steps (docs/deploy.md, "Images"):
#   make image            no daemon, no registry but Debian's and PyPI: hack/image/build.sh
#                         (mmdebstrap base, the locked wheels, podman import, SBOM); what CI
#                         builds and the container-mode e2e tests run (tests/e2e/test_container.py)
#   docker build -t REGISTRY/surge:0.1.0 .     this file, from the repository root
# tests/chart/test_images.py checks that both follow the same steps (lock file, pip pin,
# --no-deps, pip check, compileall, uid 65532, entrypoint, environment).
#
# Runtime base (build argument RUNTIME_IMAGE): by default distroless python3 (Debian 12): no
# shell, no package manager, no pip; the nonroot variant runs as uid/gid 65532. Or the base
# that `make image` uses, built from Debian packages (`hack/image/build.sh --base-only`, then
# --build-arg RUNTIME_IMAGE=localhost/surge-base:bookworm). Either way Debian 12's own Python
# 3.11 at /usr/bin/python3, the interpreter the venv is built with in the build stage, so the
# venv's interpreter links stay valid when copied across.
# Tags are pinned; pin digests too (image@sha256:...) where the registry can be asked.
ARG BUILD_IMAGE=debian:12.12-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/python3-debian12:nonroot

# ---- build: a venv with the pinned runtime dependencies and surge ----
FROM ${BUILD_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /venv && /venv/bin/pip install pip==26.3
WORKDIR /src
# Dependencies first, exactly as pinned (their own layer: source edits do not rebuild it).
COPY docker/constraints.txt docker/constraints.txt
RUN /venv/bin/pip install --requirement docker/constraints.txt
COPY pyproject.toml README.md ./
COPY surge/ surge/
COPY operator/ operator/
COPY loadgen/ loadgen/
RUN /venv/bin/pip install --no-deps --constraint docker/constraints.txt . \
 && /venv/bin/pip check \
 && /venv/bin/pip uninstall -y pip \
 && /venv/bin/python -m compileall -q /venv \
 && /venv/bin/surge operator --help >/dev/null \
 && /venv/bin/surge worker --help >/dev/null

# ---- runtime: distroless, non-root, nothing writable needed but /tmp ----
FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="surge" \
      org.opencontainers.image.description="Surge operator and load generator" \
      org.opencontainers.image.source="https://github.com/surge-dev/surge" \
      org.opencontainers.image.licenses="Apache-2.0"
# Root owns the code: the non-root user can run it, never change it.
COPY --from=build --chown=0:0 /venv /venv
# Bytecode is compiled at build time, so a read-only root filesystem costs nothing.
ENV PATH=/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
ENTRYPOINT ["surge"]
CMD ["operator"]
