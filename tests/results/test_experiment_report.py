"""The ScalingExperiment report: comparison table, recommendation, and both plots."""

from __future__ import annotations

import re
from typing import Any

import pytest

from surge.api.experiment_status import RunRow, ScalingExperimentStatus
from surge.api.status import Phase
from surge.operator.experiment.variants import aggregate, rank, recommendation
from surge.results.experiment_report import (
    comparison_rows,
    experiment_plot_specs,
    render_experiment,
)
from surge.results.plots import drawn_labels
from surge.results.report import ReportError


def _run(name: str, rep: int, cost: float, p95: float, series: list[list[float]]) -> dict[str, Any]:
    return {
        "replicaSeriesEndS": 60.0,
        "name": name,
        "repetition": rep,
        "passed": True,
        "achievedRps": 200.0,
        "p95Ms": p95,
        "costPer1kRequests": cost,
        "errorRate": 0.001,
        "replicaSeries": series,
    }


def _experiment() -> dict[str, Any]:
    runs = [
        _run("cpu", 0, 0.004, 600.0, [[0, 2], [20, 4], [45, 6]]),
        _run("gpu", 0, 0.010, 120.0, [[0, 1], [30, 2]]),
        _run("cpu", 1, 0.005, 640.0, [[0, 2], [25, 5]]),
        _run("gpu", 1, 0.012, 130.0, [[0, 1]]),
    ]
    typed = [RunRow.model_validate(r) for r in runs]
    rows = rank(
        [aggregate(n, [r for r in typed if r.name == n]) for n in ("cpu", "gpu")],
        "cheapest-passing",
    )
    # The status as the operator writes it: through the models, by alias.
    status = ScalingExperimentStatus(
        phase=Phase.SUCCEEDED,
        runs=typed,
        comparison=rows,
        recommendation=recommendation(rows, "cheapest-passing"),
    )
    return {
        "kind": "ScalingExperiment",
        "metadata": {"name": "alice-pools"},
        "status": status.model_dump(mode="json", by_alias=True),
    }


def test_table_shows_means_and_spreads() -> None:
    rows = comparison_rows(_experiment()["status"])
    assert [r[0] for r in rows] == ["cpu", "gpu"]
    cpu = rows[0]
    assert cpu[1] == "pass"
    assert cpu[3] == "620 [600–640]"  # p95 ms: mean [low–high] over two repetitions
    assert cpu[-1] == "0.0045 [0.004–0.005]"


def test_plots_have_one_line_per_run_and_one_point_per_variant() -> None:
    specs = {s.name: s for s in experiment_plot_specs(_experiment()["status"])}
    assert specs["replicas"].labels == ["cpu r0", "gpu r0", "cpu r1", "gpu r1"]
    assert specs["replicas"].lines[0].points == [(0, 2), (20, 4), (45, 6), (60, 6)]
    assert specs["replicas"].lines[3].points == [(0, 1), (60, 1)]  # no change: still drawn
    assert all(line.steps for line in specs["replicas"].lines)
    scatter = specs["p95-cost"]
    assert [ln.label for ln in scatter.lines] == ["cpu", "gpu"]
    ((cpu_cost, cpu_p95),), ((gpu_cost, gpu_p95),) = (ln.points for ln in scatter.lines)
    assert cpu_cost == pytest.approx(0.0045)
    assert gpu_cost == pytest.approx(0.011)
    assert (cpu_p95, gpu_p95) == (620.0, 125.0)
    assert scatter.xlabel == "cost per 1k requests"
    assert drawn_labels(scatter) == ["cpu", "gpu"]


def test_html_embeds_both_plots() -> None:
    page = render_experiment(_experiment(), "html")
    imgs = re.findall(r'<img id="plot-([a-z0-9-]+)"[^>]*src="data:image/png;base64,([^"]+)"', page)
    assert [name for name, _ in imgs] == ["replicas", "p95-cost"]
    assert "Recommendation:</strong> cpu: passes the SLO" in page
    assert "<script" not in page


def test_markdown_and_json() -> None:
    md = render_experiment(_experiment(), "md")
    assert md.startswith("# ScalingExperiment alice-pools")
    assert "| cpu | pass |" in md
    assert '"recommendation": "cpu: passes the SLO' in render_experiment(_experiment(), "json")


def test_no_comparison_yet_is_a_clear_error() -> None:
    with pytest.raises(ReportError, match="has no comparison yet"):
        render_experiment({"metadata": {"name": "x"}, "status": {"phase": "Running"}}, "md")
