"""Variant specs, restores, cost arithmetic (checked by hand) and ranking."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from surge.api.experiment import Cost, HpaSpec, Variant
from surge.api.experiment_status import RunRow
from surge.operator.experiment.variants import (
    aggregate,
    apply_hpa,
    apply_variant,
    price_per_replica_hour,
    rank,
    recommendation,
    run_cost,
)

ORIGINAL: dict[str, Any] = {
    "replicas": 2,
    "selector": {"matchLabels": {"app": "alice"}},
    "template": {
        "metadata": {"labels": {"app": "alice"}},
        "spec": {
            "nodeSelector": {"surge.dev/pool": "cpu", "zone": "a"},
            "containers": [
                {
                    "name": "alice",
                    "image": "alice:1",
                    "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
                    "env": [
                        {"name": "ALICE_CPU_MS", "value": "20"},
                        {"name": "LOG", "value": "info"},
                    ],
                }
            ],
        },
    },
}


def test_gpu_variant_spec() -> None:
    v = Variant.model_validate(
        {
            "name": "gpu",
            "nodeSelector": {"surge.dev/pool": "gpu"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "resources": {"limits": {"nvidia.com/gpu": 1}, "requests": {"cpu": "1"}},
            "env": [{"name": "ALICE_CPU_MS", "value": "2"}],
            "replicas": 1,
        }
    )
    before = copy.deepcopy(ORIGINAL)
    spec = apply_variant(ORIGINAL, v)
    assert before == ORIGINAL  # the snapshot is never mutated
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"surge.dev/pool": "gpu"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    c = pod["containers"][0]
    assert c["resources"] == {
        "requests": {"cpu": "1", "memory": "256Mi"},
        "limits": {"nvidia.com/gpu": "1"},  # quantities are strings on the wire
    }
    assert c["env"] == [{"name": "ALICE_CPU_MS", "value": "2"}, {"name": "LOG", "value": "info"}]
    assert spec["replicas"] == 1
    assert spec["selector"] == ORIGINAL["selector"]


def test_empty_variant_is_the_original() -> None:
    assert apply_variant(ORIGINAL, Variant(name="same")) == ORIGINAL


def test_hpa_from_scratch_and_over_original() -> None:
    hpa = HpaSpec.model_validate(
        {
            "minReplicas": 1,
            "maxReplicas": 5,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}},
        }
    )
    fresh = apply_hpa(None, hpa, "alice")
    assert fresh == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "alice"},
        "minReplicas": 1,
        "maxReplicas": 5,
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}},
    }
    original = {
        "scaleTargetRef": {"kind": "Deployment", "name": "alice"},
        "minReplicas": 2,
        "maxReplicas": 10,
        "metrics": [{"type": "Resource"}],
    }
    over = apply_hpa(original, HpaSpec(max_replicas=3), "alice")
    assert over is not None
    assert over["maxReplicas"] == 3
    assert over["minReplicas"] == 2
    assert over["metrics"] == [{"type": "Resource"}]
    assert apply_hpa(original, None, "alice") is None


@pytest.mark.parametrize(
    ("variant", "price"),
    [
        ({"name": "a", "nodeSelector": {"surge.dev/pool": "gpu"}}, 2.48),
        ({"name": "b", "nodeSelector": {"surge.dev/pool": "cpu"}}, 0.12),
        ({"name": "c", "nodeSelector": {"surge.dev/pool": "gpu"}, "costPerReplicaHour": 3.0}, 3.0),
        ({"name": "d"}, None),
    ],
)
def test_price(variant: dict[str, Any], price: float | None) -> None:
    cost = Cost.model_validate({"perPool": {"cpu": 0.12, "gpu": 2.48}})
    assert price_per_replica_hour(Variant.model_validate(variant), cost) == price


def test_cost_arithmetic_by_hand() -> None:
    # 3 GPU replicas for 10 minutes = 1800 replica-seconds = 0.5 replica-hours.
    # At 2.48/replica-hour that is 1.24; for 120,000 requests, 1.24 / 120 = 0.010333.. per 1k.
    hours, cost, per_1k = run_cost(1800.0, 2.48, 120_000)
    assert hours == pytest.approx(0.5)
    assert cost == pytest.approx(1.24)
    assert per_1k == pytest.approx(1.24 / 120)
    assert run_cost(None, 2.48, 10) == (None, None, None)


def test_cost_per_1k_from_the_operators_samples_prices_the_measured_window() -> None:
    """By hand: the operator sampled 2 replicas for 120 s (load, warm-up and the child's
    end: 240 replica-seconds), the measured window is 45 s with 1,800 requests. The run's
    cost is 240 / 3600 × 3.6 = 0.24; per 1k requests it is the mean (2) priced over the
    45 s the requests came from: 2 × 45 / 3600 × 3.6 / 1.8 = 0.05, not 0.24 / 1.8 = 0.133."""
    from surge.api.experiment_status import ExperimentStep
    from surge.api.results import RunResults
    from surge.operator.experiment.runs import run_row

    results = RunResults.model_validate(
        {"window": {"measuredSeconds": 45.0}, "requests": {"sent": 1800}}
    ).to_json()
    step = ExperimentStep(
        index=0, stage="Test", since="2026-12-06T12:00:00Z", variant="v", repetition=0
    )
    step.replica_seconds, step.observed_seconds = 240.0, 120.0
    row = run_row(Variant(name="v"), 0, "lt", {"phase": "Succeeded", "results": results}, step, 3.6)
    assert row.replica_source == "operator"
    assert row.cost == pytest.approx(0.24)
    assert row.cost_per1k_requests == pytest.approx(0.05)


def test_scale_up_time_and_events_from_the_operators_samples() -> None:
    """The operator's series holds one point per change: 1 replica from the load's start,
    3 at 12.5 s, 5 at 30 s, 2 at 70 s: the first rise is at 12.5 s and 3 changes follow
    the first point. Once its cap cut the series, later changes went uncounted: no count."""
    from surge.api.experiment_status import ExperimentStep
    from surge.operator.experiment.runs import run_row

    step = ExperimentStep(
        index=0, stage="Test", since="2026-12-06T12:00:00Z", variant="v", repetition=0
    )
    step.replica_seconds, step.observed_seconds = 240.0, 90.0
    step.replica_series = [[0.0, 1.0], [12.5, 3.0], [30.0, 5.0], [70.0, 2.0]]
    row = run_row(Variant(name="v"), 0, "lt", {"phase": "Succeeded"}, step, None)
    assert (row.replica_source, row.time_to_scale_up_s, row.scale_events) == (
        "operator",
        12.5,
        3.0,
    )
    step.replica_series_cut_s = 70.0
    cut = run_row(Variant(name="v"), 0, "lt", {"phase": "Succeeded"}, step, None)
    assert (cut.time_to_scale_up_s, cut.scale_events) == (12.5, None)
    step.replica_series = [[0.0, 4.0], [20.0, 2.0]]  # only a scale-down: no rise
    step.replica_series_cut_s = None
    down = run_row(Variant(name="v"), 0, "lt", {"phase": "Succeeded"}, step, None)
    assert (down.time_to_scale_up_s, down.scale_events) == (None, 1.0)


def _run(cost: float, p95: float, rps: float, passed: bool = True) -> RunRow:
    return RunRow(
        name="x",
        repetition=0,
        cost_per1k_requests=cost,
        p95_ms=p95,
        achieved_rps=rps,
        passed=passed,
    )


def test_rank_and_recommend() -> None:
    rows = [
        aggregate("gpu", [_run(0.010, 120, 200), _run(0.012, 130, 199)]),
        aggregate("cpu", [_run(0.004, 600, 198), _run(0.005, 640, 197)]),
        aggregate("tiny", [_run(0.001, 2500, 90, passed=False), _run(0.001, 2400, 91)]),
    ]
    cheapest = rank(rows, "cheapest-passing")
    assert [r.name for r in cheapest] == ["cpu", "gpu", "tiny"]
    assert cheapest[0].cost_per1k_requests == pytest.approx(0.0045)
    wire = cheapest[0].model_dump(by_alias=True)
    assert wire["costPer1kRequestsRange"] == [0.004, 0.005]
    assert cheapest[2].passed is False  # one failed repetition fails the variant
    assert [r.name for r in rank(rows, "lowest-p95")] == ["gpu", "cpu", "tiny"]
    assert next(r.name for r in rank(rows, "highest-sustainable-rate")) == "gpu"
    line = recommendation(cheapest, "cheapest-passing")
    assert line.startswith("cpu: passes the SLO with the best costPer1kRequests (0.0045)")
    assert "ahead of gpu" in line


def test_overlapping_spreads_are_indistinguishable() -> None:
    rows = rank(
        [
            aggregate("a", [_run(0.004, 1, 1), _run(0.006, 1, 1)]),
            aggregate("b", [_run(0.005, 1, 1), _run(0.007, 1, 1)]),
        ],
        "cheapest-passing",
    )
    assert "indistinguishable from b" in recommendation(rows, "cheapest-passing")


def test_no_passing_variant() -> None:
    rows = rank([aggregate("a", [_run(1, 1, 1, passed=False)])], "cheapest-passing")
    assert (
        recommendation(rows, "cheapest-passing") == "No variant met the SLO; none is recommended."
    )
