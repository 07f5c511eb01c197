"""A capacity sweep run by the operator (#18): a LoadTest with `load.model: sweep` against
Alice with a known capacity, in her own process: 8 requests at a time, 50 ms each, nothing
queued (the rest refused with 503), so about 8 ÷ 0.05 = 160 req/s at most (a little less:
she takes ~53 ms). The sweep must find the largest rate that holds `errors.rate < 1%` within
the bisection's resolution, and write it into status. On a busy machine Alice is slower, so
the test checks the sweep's algorithm and the bound (never above 80 req/s), not where
between 25 and 160 the boundary fell in this run. The start barrier gets a 4 s lead: a worker
that starts after its first arrivals were due sends them at once, and a burst over her 8 slots
is refused (a CI run saw 12% errors at 25 req/s with a 1 s lead)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from surge.agent import start_agent_process, stop_agent_process
from tests.e2e.operator_support import Operator, create, loadtest, wait_phase
from tests.support.cluster import wait_until
from tests.support.podrunner import PodRunner

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


@pytest.fixture
def sweep_operator(namespace: str, tmp_path: Path) -> Iterator[Operator]:
    op = Operator(namespace, tmp_path / "operator.log", env={"SURGE_START_DELAY_S": "4"})
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def limited_alice() -> Iterator[str]:
    proc, url = start_agent_process(
        ["--latency", "fixed:50ms", "--max-concurrency", "8", "--queue-size", "0"],
        stderr=subprocess.DEVNULL,
    )
    yield url
    stop_agent_process(proc)


def test_the_operator_runs_a_sweep_and_writes_the_capacity(
    api_client: client.ApiClient,
    namespace: str,
    sweep_operator: Operator,
    limited_alice: str,
    pod_runner: PodRunner,
) -> None:
    lt = loadtest(
        "sweep",
        limited_alice,
        load={
            "model": "sweep",
            "stages": None,
            "warmup": None,
            "workers": 1,
            "sweep": {
                "startRate": 25,
                "factor": 2,
                "maxRate": 400,
                "stepDuration": "3s",
                "settle": "1s",
                "bisections": 2,
            },
        },
        thresholds=["errors.rate < 1%"],
    )
    lt["spec"]["load"] = {k: v for k, v in lt["spec"]["load"].items() if v is not None}
    # Her Deployment (KWOK pods; 2 replicas pinned: no HPA) gives the rate per replica.
    _pinned_deployment(api_client, namespace, replicas=2)
    lt["spec"]["target"]["deploymentRef"] = {"name": "alice"}
    create(api_client, namespace, lt)
    operator = sweep_operator
    obj = wait_phase(api_client, namespace, "sweep", {"Succeeded", "Failed"}, operator, 180)
    status = obj["status"]
    assert status["phase"] == "Succeeded", (status.get("message"), operator.tail())
    assert status["summary"]["verdict"] == "Passed"
    found = status["summary"]["maxSustainableRps"]
    steps = status["results"]["sweep"]["steps"]
    rates = [s["rate"] for s in steps]
    # Geometric from 25 until the first failure, which must come by 200 (> 160 req/s can
    # never hold); the lightest step must hold (25 req/s keep ~1.3 of her 8 slots busy).
    k = next(i for i, st in enumerate(steps) if not st["passed"])
    assert k >= 1 and rates[: k + 1] == [25 * 2**i for i in range(k + 1)], rates
    assert rates[k] <= 200, rates
    # Then bisection between the last passing and the first failing rate.
    resolution = (rates[k] - rates[k - 1]) / 2**2
    assert len(steps) == k + 1 + 2, rates
    assert found < 160, found  # never above the truth
    first_failing = min(st["rate"] for st in steps if not st["passed"])
    assert 0 < first_failing - found <= resolution + 1e-9, (found, first_failing, rates)
    assert status["summary"]["maxSustainableRpsPerReplica"] == found / 2
    assert all(st["replicas"] == 2 for st in status["results"]["sweep"]["steps"]), steps


def _pinned_deployment(api: client.ApiClient, ns: str, replicas: int) -> None:
    apps: Any = client.AppsV1Api(api)
    labels = {"app": "alice"}
    apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "alice"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": {"surge.dev/pool": "cpu"},
                        "containers": [{"name": "alice", "image": "alice:1"}],
                    },
                },
            },
        },
    )

    def available() -> bool:
        dep = apps.read_namespaced_deployment("alice", ns)
        return int(dep.status.available_replicas or 0) >= replicas

    wait_until(available, timeout_s=60, what="alice available")
