"""Red team 2: experiment status that grows past the 256 KiB target with bounded inputs:
predictions' replica series (100 variants × 200 points) and run rows (200 runs, each with
its replica series and a copy of the HPA spec in force)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from surge.api.experiment import Variant
from surge.api.experiment_status import ExperimentStep, ScalingExperimentStatus
from surge.api.policy import Caps, ClusterPolicy
from surge.operator.context import dump_status
from surge.operator.experiment import reconcile as experiments
from surge.operator.experiment.runs import MAX_SERIES_POINTS, run_row
from surge.operator.settings import Settings
from tests.operator.test_experiment_simulation import _body, _spec, _variant
from tests.operator.test_experiments import T0, make_kube

TARGET_BYTES = 256 * 1024
LENGTH_S = 3000
FAST = {
    "stabilizationWindowSeconds": 0,
    "policies": [{"type": "Percent", "value": 1000, "periodSeconds": 1}],
}


def _flapping_experiment(variants: int, length_s: int = LENGTH_S) -> dict[str, Any]:
    """liveTopK over `variants` HPAs that follow a load switching every 3 s for 50 min:
    each prediction's replicas change over 200 times (about every 13 s)."""
    vs = []
    for i in range(variants):
        v = _variant(f"v{i}", "cpu", 1, 20)
        v["hpa"]["behavior"] = {"scaleDown": FAST, "scaleUp": FAST}
        vs.append(v)
    spec = _spec(variants=vs, dryRun=True)
    points = [
        {"tSeconds": float(t), "rps": 400 if (t // 3) % 2 else 5} for t in range(length_s + 1)
    ]
    spec["loadTest"]["load"] = {"model": "trace", "trace": {"points": points}}
    spec["simulation"].update({"liveTopK": 1, "syncPeriod": "1s", "downscaleStabilization": "0s"})
    spec["simulation"]["capacity"]["cpu"]["startup"] = "1s"
    return _body(spec)


def test_predictions_of_the_most_variants_keep_status_small() -> None:
    """Attack: 100 liveTopK variants (the CRD's most) whose predicted replicas flap, for
    as long a load as the simulation budget allows at a 1 s sync (1,100 s)."""
    body = _flapping_experiment(100, length_s=1100)
    settings = Settings(policy=ClusterPolicy(caps=Caps(max_variants=100)))
    step = experiments.reconcile_experiment(body, make_kube(), settings, T0)  # type: ignore[arg-type]
    assert step.status["phase"] == "Succeeded", step.status.get("message")
    predictions = step.status["predictions"]
    assert len(predictions) == 100
    cut = [p for p in predictions if p["replicaSeriesEndS"] < 1100]
    assert cut, "the load must flap enough to fill the series"
    size = len(json.dumps(step.status))
    assert size < TARGET_BYTES, f"status of {size:,} bytes"


def test_a_few_variants_keep_their_full_series() -> None:
    """The shared budget leaves 200 points each to an experiment of 20 variants or fewer."""
    body = _flapping_experiment(4)
    step = experiments.reconcile_experiment(body, make_kube(), Settings(), T0)  # type: ignore[arg-type]
    longest = max(len(p["replicaSeries"]) for p in step.status["predictions"])
    assert longest == 200


def _hpa(metrics: int) -> dict[str, Any]:
    """A valid autoscaling/v2 HPA spec: `metrics` Pods metrics with label selectors."""
    labels = {f"team.example.com/label-{j:02d}": "v" * 63 for j in range(8)}
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "alice"},
        "minReplicas": 1,
        "maxReplicas": 20,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": f"requests_{i}", "selector": {"matchLabels": labels}},
                    "target": {"type": "AverageValue", "averageValue": "10"},
                },
            }
            for i in range(metrics)
        ],
        "behavior": {"scaleDown": FAST, "scaleUp": FAST},
    }


@pytest.mark.parametrize("metrics", [1, 16])
def test_the_rows_of_the_most_runs_keep_status_small(metrics: int) -> None:
    """Attack: 20 variants × 10 repetitions whose replicas change often, with a large HPA."""
    hpa = _hpa(metrics)
    series = [[round(i * 29.917, 3), float(1 + i % 20)] for i in range(MAX_SERIES_POINTS)]
    rows = []
    for v in range(20):
        variant = Variant(name=f"variant-{v:02d}")
        for rep in range(10):
            step = ExperimentStep(
                index=0,
                stage="Test",
                since="2026-12-06T12:00:00Z",
                variant=variant.name,
                repetition=rep,
                hpa_in_force=hpa,
                replica_series=series,
                observed_seconds=3600.0,
                replica_seconds=3600 * 10.5,
                replicas_min=1,
                replicas_max=20,
            )
            child = {"phase": "Succeeded", "summary": {"achievedRps": 123.4, "p95Ms": 456.7}}
            name = f"sx-{variant.name}-r{rep}"
            rows.append(run_row(variant, rep, name, child, step, 0.12, planned_runs=200))
    size = len(json.dumps(dump_status(ScalingExperimentStatus(runs=rows))))
    assert size < TARGET_BYTES, f"status of {size:,} bytes"
