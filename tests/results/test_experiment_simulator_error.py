"""The simulator's error in the ScalingExperiment report: predicted replica timelines against
the measured ones, the table column and one plot per variant (measured solid, predicted
dashed). Every expected number is counted by hand from the series below."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from surge.results.experiment_report import (
    SIM_ERROR,
    comparison_rows,
    experiment_plot_specs,
    render_experiment,
    table_head,
)
from surge.results.report import ReportError
from surge.results.sim_error import SimError, run_error, variant_errors
from tests.results.test_experiment_report import _experiment


def _prediction(variant: str, series: list[list[float]], end: float = 60.0) -> dict[str, Any]:
    return {
        "variant": variant,
        "rank": 1,
        "live": True,
        "selection": "TopK",
        "pool": "cpu",
        "replicaSeconds": 0.0,
        "sloViolationSeconds": 0,
        "sustainableRps": 0.0,
        "replicaSeries": series,
        "replicaSeriesEndS": end,
    }


def _with_predictions(*predictions: dict[str, Any]) -> dict[str, Any]:
    obj = _experiment()
    obj["status"]["predictions"] = list(predictions)
    return obj


def test_one_run_second_by_second() -> None:
    run = {"replicaSeries": [[0, 2], [20, 4]], "replicaSeriesEndS": 30.0}
    # Predicted 2 until 10 s, then 4: seconds 0-9 agree, 10-19 are off by 2, 20-29 agree.
    total, equal, n = run_error(run, _prediction("x", [[0, 2], [10, 4]]), 0.0)
    assert (total, equal, n) == (20.0, 20, 30)


def test_seconds_stop_where_the_prediction_is_no_longer_complete() -> None:
    run = {"replicaSeries": [[0, 2]], "replicaSeriesEndS": 30.0}
    # A capped prediction, complete to 12 s only: 12 seconds sampled, 2 of them (10, 11) off.
    assert run_error(run, _prediction("x", [[0, 2], [10, 3]], end=12.0), 0.0) == (2.0, 10, 12)


def test_a_prometheus_series_starts_after_the_warm_up() -> None:
    # Prometheus's t = 0 is the measured window's start: 15 s into the load here.
    run = {"replicaSeries": [[0, 3]], "replicaSeriesEndS": 10.0, "replicaSource": "prometheus"}
    # Sampled at 15..24 s of the load; the prediction is 3 from 20 s on: 5 seconds off by 1.
    assert run_error(run, _prediction("x", [[0, 2], [20, 3]], end=100.0), 15.0) == (5.0, 5, 10)
    # The operator's own series starts at the load's start, whatever the warm-up.
    del run["replicaSource"]
    assert run_error(run, _prediction("x", [[0, 2], [20, 3]], end=100.0), 15.0) == (10.0, 0, 10)


def test_a_variant_pools_the_seconds_of_its_repetitions() -> None:
    # cpu r0: 2 until 20, 4 until 45, 6 to 60; cpu r1: 2 until 25, then 5 to 60.
    # Predicted cpu: 2 until 30, then 5 to 60.
    # r0: 0-19 equal; 20-29 off by 2 (20); 30-44 by 1 (15); 45-59 by 1 (15): 50, 20 equal.
    # r1: 0-24 equal; 25-29 off by 3 (15); 30-59 equal: 15, 55 equal.
    status = _with_predictions(_prediction("cpu", [[0, 2], [30, 5]]))["status"]
    errors = variant_errors(status, 0.0)
    assert errors == {"cpu": SimError(65.0 / 120, 75 / 120, 120)}  # gpu has no prediction


def test_the_table_gains_the_column_only_with_predictions() -> None:
    plain = _experiment()["status"]
    assert SIM_ERROR not in table_head(plain)
    assert len(comparison_rows(plain)[0]) == len(table_head(plain))
    status = _with_predictions(
        _prediction("cpu", [[0, 2], [30, 5]]), _prediction("gpu", [[0, 1], [30, 2]])
    )["status"]
    head = table_head(status)
    assert head[-1] == SIM_ERROR
    rows = {r[0]: r for r in comparison_rows(status)}
    assert rows["cpu"][-1] == "0.54 replicas, 62% exact"  # 65/120, 75/120
    # gpu r0 agrees to the second (2 from 30 s); r1 stays at 1: 30 seconds off by 1 of 120.
    assert rows["gpu"][-1] == "0.25 replicas, 75% exact"


def test_one_plot_per_variant_measured_solid_predicted_dashed() -> None:
    status = _with_predictions(
        _prediction("cpu", [[0, 2], [30, 5]]),
        _prediction("tiny", [[0, 1]], end=90.0),  # only predicted: not run live
    )["status"]
    specs = {s.name: s for s in experiment_plot_specs(status)}
    assert list(specs) == ["replicas-cpu", "replicas-gpu", "replicas-tiny", "p95-cost"]
    cpu = specs["replicas-cpu"]
    assert cpu.labels == ["measured r0", "measured r1", "predicted"]
    assert [(ln.steps, ln.dashed) for ln in cpu.lines] == [(True, False)] * 2 + [(True, True)]
    assert cpu.lines[0].points == [(0, 2), (20, 4), (45, 6), (60, 6)]
    assert cpu.lines[2].points == [(0, 2), (30, 5), (60, 5)]
    assert specs["replicas-gpu"].labels == ["measured r0", "measured r1"]
    tiny = specs["replicas-tiny"]
    assert tiny.labels == ["predicted"] and tiny.lines[0].points == [(0, 1), (90, 1)]
    assert "predicted only" in tiny.title


def test_reports_in_every_format_carry_it() -> None:
    obj = _with_predictions(_prediction("cpu", [[0, 2], [30, 5]]))
    md = render_experiment(obj, "md")
    assert f"| {SIM_ERROR} |" in md and "| 0.54 replicas, 62% exact |" in md
    page = render_experiment(obj, "html", png=lambda spec: b"png")
    assert re.findall(r'<img id="plot-([a-z0-9-]+)"', page) == [
        "replicas-cpu",
        "replicas-gpu",
        "p95-cost",
    ]
    assert "<td>0.54 replicas, 62% exact</td>" in page
    doc = json.loads(render_experiment(obj, "json"))
    assert doc["simulatorError"] == {
        "cpu": {"meanAbsReplicas": 65.0 / 120, "exactShare": 75 / 120, "seconds": 120}
    }


def test_the_warm_up_comes_from_the_spec() -> None:
    obj = _with_predictions(_prediction("cpu", [[0, 2], [30, 5]]))
    obj["spec"] = {"loadTest": {"load": {"warmup": "10s"}}}
    for run in obj["status"]["runs"]:
        run["replicaSource"] = "prometheus"
    specs = {s.name: s for s in experiment_plot_specs(obj["status"], 10.0)}
    assert specs["replicas-cpu"].lines[0].points[0] == (10.0, 2.0)
    # On the load's clock cpu r0 is 2 from 10 s, 4 from 30, 6 from 55; r1 2 from 10, 5 from 35;
    # the prediction is complete to 60 s: 10-59 sampled, 50 seconds a run.
    # r0: 30-54 off by 1 (25), 55-59 by 1 (5), 20 equal; r1: 30-34 off by 3 (15), 45 equal.
    assert "| 0.45 replicas, 65% exact |" in render_experiment(obj, "md")
    obj["spec"] = {"loadTest": {"load": {"warmup": "ten seconds"}}}
    with pytest.raises(ReportError, match=r"^spec\.loadTest\.load\.warmup: "):
        render_experiment(obj, "md")


def test_the_prediction_stands_beside_the_measurement() -> None:
    obj = _with_predictions(_prediction("cpu", [[0, 2], [30, 5]]))
    row = obj["status"]["comparison"][0]
    row.update(predictedSloViolationSeconds=12, predictedP95Ms=2400.0,
               predictedCostPer1kRequests=0.0123)  # fmt: skip
    head = table_head(obj["status"])
    rows = {r[0]: dict(zip(head, r, strict=True)) for r in comparison_rows(obj["status"])}
    assert rows[row["name"]]["predicted SLO"] == "FAIL (12 s over)"
    assert rows[row["name"]]["predicted p95 ms"] == "2400"
    assert rows[row["name"]]["predicted cost / 1k req"] == "0.0123"
    other = next(r for name, r in rows.items() if name != row["name"])
    assert other["predicted p95 ms"] == "—"  # no prediction in that row
    assert "| predicted p95 ms |" in render_experiment(obj, "md")
