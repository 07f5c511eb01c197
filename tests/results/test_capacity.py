"""A sweep's capacity from its steps and the cluster series, its verdict, the simulator's
capacity file and the capacity-curve plot."""

from __future__ import annotations

from typing import Any

import pytest

from surge.api.results import RunResults, ThresholdResult
from surge.api.results.sweep import SweepStep
from surge.api.simulation import PoolCapacity
from surge.results.capacity import apply_capacity, capacity_file
from surge.results.capacity_plot import capacity_spec
from surge.verdicts import sweep_verdict

T0 = 1_000_000.0
SWEEP = {"startRate": 10, "maxRate": 40, "stepDuration": "10s", "settle": "2s"}


def _step(i: int, rate: float, passed: bool, p95: float) -> dict[str, Any]:
    start = T0 + 10 * i
    return {
        "index": i,
        "rate": rate,
        "achievedRps": rate if passed else rate * 0.8,
        "latency": {"p50": p95 / 2, "p95": p95, "p99": p95 * 1.5},
        "errorRate": 0.0 if passed else 0.1,
        "requests": {"completed": int(rate * 8)},
        "passed": passed,
        "saturated": None,
        "window": {"start": start + 2, "end": start + 10},
    }


def _results(replicas: list[float]) -> RunResults:
    steps = [_step(0, 10, True, 100), _step(1, 20, True, 200), _step(2, 40, False, 900)]
    series_t = [0.0, 10.0, 20.0]
    doc = {
        "loadtest": "lt",
        "runId": "1",
        "summary": {},
        "sweep": {"steps": steps, "maxSustainableRps": 20, "firstFailingRps": 40,
                  "resolutionRps": 20, "lowerBound": False, "saturated": None,
                  "config": SWEEP, "settleSeconds": 2},
        "cluster": {
            "window": {"start": T0, "end": T0 + 30, "stepSeconds": 1},
            # 0.5 cores at 10 req/s, 1 core at 20, 2 at 40: 0.05 core-seconds a request
            "cpu": {"series": [[t, c] for t, c in zip(series_t, (0.5, 1.0, 2.0), strict=True)]},
            "replicas": {"series": [[t, r] for t, r in zip(series_t, replicas, strict=True)]},
        },
    }  # fmt: skip
    return RunResults.model_validate(doc)


def test_per_replica_and_cpu_per_request_from_the_cluster() -> None:
    results = _results([2, 2, 2])
    apply_capacity(results, replicas=None)
    cap = results.capacity
    assert cap is not None and results.sweep is not None
    assert cap.max_sustainable_rps == 20 and cap.replicas == 2
    assert cap.max_sustainable_rps_per_replica == 10
    # ∫ 1 core over the 8 s window ÷ 160 requests completed in it
    assert cap.cpu_seconds_per_request == pytest.approx(8.0 / 160)
    assert [s.replicas_source for s in results.sweep.steps] == ["prometheus"] * 3
    assert results.summary.max_sustainable_rps_per_replica == 10
    judged = sweep_verdict(results)
    assert (judged.verdict, judged.reason) == ("Passed", "CapacityFound")
    body = capacity_file(results, pool="cpu")["capacity"]["cpu"]
    pool = PoolCapacity.model_validate(body)
    assert pool.cpu_per_request == pytest.approx(0.05)
    assert pool.max_rps == 16  # 32 req/s completed at the failing step, on 2 replicas
    assert pool.base_latency == pytest.approx(0.1)


def test_replicas_that_changed_make_it_inconclusive() -> None:
    results = _results([2, 3, 4])
    apply_capacity(results, replicas=None)
    cap = results.capacity
    assert cap is not None
    assert cap.max_sustainable_rps_per_replica is None and cap.replicas_seen == [2, 3, 4]
    judged = sweep_verdict(results)
    assert (judged.verdict, judged.reason) == ("Inconclusive", "ReplicasChanged")
    assert "minReplicas = maxReplicas" in judged.message


def test_without_prometheus_the_given_replicas_divide() -> None:
    results = _results([2, 2, 2])
    results.cluster = None
    apply_capacity(results, replicas=4, source="--replicas")
    assert results.capacity is not None
    assert results.capacity.max_sustainable_rps_per_replica == 5
    assert results.capacity.cpu_seconds_per_request is None
    assert "cpuPerRequest" not in capacity_file(results)["capacity"]["default"]


def test_start_rate_failing_fails_the_sweep() -> None:
    results = _results([1, 1, 1])
    assert results.sweep is not None
    results.sweep.max_sustainable_rps = None
    results.sweep.steps = [SweepStep.model_validate(_step(0, 10, False, 900))]
    results.sweep.steps[0].thresholds = ["latency.p95 = 900ms < 500ms ✗"]
    apply_capacity(results, replicas=1)
    judged = sweep_verdict(results)
    assert (judged.verdict, judged.reason) == ("Failed", "ThresholdFailed")
    assert "900ms" in judged.message


def test_the_capacity_curve_plot() -> None:
    pytest.importorskip("matplotlib")
    from surge.results.plots import drawn_labels, render_png

    results = _results([2, 2, 2])
    apply_capacity(results, replicas=None)
    results.thresholds = [
        ThresholdResult(
            metric="latency.p95", expression="latency.p95 < 500ms", op="<", limit=0.5, passed=True
        )
    ]
    spec = capacity_spec(results)
    assert spec is not None and spec.xlabel == "requests per second per replica"
    assert spec.lines[1].points == [(5.0, 100.0), (10.0, 200.0), (20.0, 900.0)]
    assert spec.lines[-1].points == [(20.0, 1350.0)]  # the failing step, marked at its p99
    assert drawn_labels(spec) == [
        "latency p50", "latency p95", "latency p99", "failing step (p99)", "latency.p95 < 500ms"
    ]  # fmt: skip
    assert render_png(spec).startswith(b"\x89PNG")
