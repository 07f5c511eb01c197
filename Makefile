# Surge. `make demo` runs the embedded default; `make test` runs the suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv system-deps demo test test-unit test-e2e lint crds image bench bench-ladder bench-operator bench-simulate cluster-build cluster-up cluster-down clean

help:
	@echo "make demo | test | test-unit | test-e2e | lint | crds | image | bench | bench-ladder | bench-operator | bench-simulate | cluster-build | cluster-up | cluster-down"

# The venv is refreshed whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

system-deps:
	hack/system-deps.sh

crds: $(STAMP)
	$(BIN)/surge crds --out-dir crds
	$(BIN)/surge crds --out-dir charts/surge/crds

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy surge tests

test-unit: $(STAMP)
	$(BIN)/pytest -m "not cluster" -q

# Unit and integration tests first, then the e2e tests on the control plane, so that the
# timing-sensitive tests never share the 2 cores with a running cluster.
test: $(STAMP) system-deps
	$(MAKE) lint
	$(BIN)/pytest -m "not cluster" -q
	hack/cluster/build.sh
	hack/image/build.sh --if-possible
	$(BIN)/pytest -m cluster -q

test-e2e: $(STAMP) system-deps
	hack/cluster/build.sh
	hack/image/build.sh --if-possible
	$(BIN)/pytest -m cluster -q

# The Surge image (operator and worker) without a daemon: Debian packages (mmdebstrap), the
# locked wheels, podman import; an SBOM next to it in build/image/. Needs root and podman.
image: $(STAMP)
	hack/image/build.sh

demo: $(STAMP)
	$(BIN)/surge run --start-demo-agent

# vegeta (open loop, Go) for the fixed-rate CPU comparison: built once into the venv.
VEGETA_VERSION := v12.13.0
VEGETA := $(VENV)/gobin/vegeta
# bombardier (Go, MIT) in the same comparison, standing in for k6 (AGPL: not allowed here).
BOMBARDIER_VERSION := v1.2.6
BOMBARDIER := $(VENV)/gobin/bombardier
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	@test -x $(VEGETA) || GOBIN=$(CURDIR)/$(VENV)/gobin $(GO) install \
		github.com/tsenart/vegeta/v12@$(VEGETA_VERSION) || echo "vegeta not built; the bench goes on without it"
	@test -x $(BOMBARDIER) || GOBIN=$(CURDIR)/$(VENV)/gobin $(GO) install \
		github.com/codesenberg/bombardier@$(BOMBARDIER_VERSION) || echo "bombardier not built; the bench goes on without it"
	SURGE_BENCH_VEGETA=$(CURDIR)/$(VEGETA) SURGE_BENCH_BOMBARDIER=$(CURDIR)/$(BOMBARDIER) \
		$(BIN)/python -m surge.bench

# The max rate one core sustains (schedule lag p99 <= 5 ms), Surge and vegeta (~2 min).
bench-ladder: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	@test -x $(VEGETA) || GOBIN=$(CURDIR)/$(VENV)/gobin $(GO) install \
		github.com/tsenart/vegeta/v12@$(VEGETA_VERSION) || echo "vegeta not built; the ladder goes on without it"
	SURGE_BENCH_VEGETA=$(CURDIR)/$(VEGETA) $(BIN)/python -m surge.bench ladder

# `surge simulate` on a 24-hour trace with 20 variants; prints the time (budget: 10 s).
bench-simulate: $(STAMP)
	$$(command -v taskset >/dev/null && echo taskset -c 0) $(BIN)/python -m tests.simulate.bench_simulate

# The operator's cost at rest and its reaction time, on the local control plane.
bench-operator: $(STAMP) system-deps
	hack/cluster/build.sh
	$(BIN)/python -m tests.bench_operator

cluster-build: $(STAMP)
	hack/cluster/build.sh

cluster-up: $(STAMP)
	hack/cluster/up.sh

cluster-down:
	hack/cluster/down.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
