"""A prediction's replica timeline: change points only, bounded, on the load's clock, from
the same curve the live runs replay (an inline trace included)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from surge.api.experiment_status import MAX_PREDICTED_POINTS, Prediction, ScalingExperimentStatus
from surge.operator.experiment import simulation as sim
from surge.simulate.errors import SimulationError
from surge.simulate.run import Point
from tests.operator.test_experiment_simulation import _parsed


def _timeline(replicas: list[int], sync_s: int = 15) -> list[Point]:
    return [Point(i * sync_s, n, n, 0.0, 0.0, 0.0) for i, n in enumerate(replicas)]


def test_only_changes_are_kept_the_first_point_always() -> None:
    series, end = sim.predicted_series(_timeline([2, 2, 3, 3, 3, 5, 2, 2]), 120.0)
    assert series == [[0.0, 2.0], [30.0, 3.0], [75.0, 5.0], [90.0, 2.0]]
    assert end == 120.0  # complete: up to the load's end
    assert sim.predicted_series(_timeline([4, 4, 4]), 45.0) == ([[0.0, 4.0]], 45.0)


def test_a_series_over_the_cap_ends_where_the_first_left_out_change_was() -> None:
    flapping = [1 + i % 2 for i in range(10)]  # a change at every sync
    series, end = sim.predicted_series(_timeline(flapping, 1), 10.0, cap=4)
    assert series == [[0.0, 1.0], [1.0, 2.0], [2.0, 1.0], [3.0, 2.0]]
    assert end == 4.0  # the change at t=4 is not kept: the series is complete up to 4 s only
    # Exactly at the cap: nothing left out, complete to the end.
    assert sim.predicted_series(_timeline([1, 2, 1, 2], 1), 10.0, cap=4)[1] == 10.0


def _trace_load(**trace: Any) -> dict[str, Any]:
    return {
        "target": {"url": "http://alice.team:8080"},
        "load": {"model": "trace", "trace": trace},
        "thresholds": ["latency.p95 < 1s"],
    }


def test_an_inline_trace_is_what_the_prediction_replays() -> None:
    # 10 req/s for 20 min, a 20-minute climb to 160 req/s, then held for 20 min; replayed 4×
    # faster (15 min), rates doubled: every HPA that can scale ends above where it began.
    points = [
        {"tSeconds": 0, "rps": 10},
        {"tSeconds": 1200, "rps": 10},
        {"tSeconds": 2400, "rps": 160},
        {"tSeconds": 3600, "rps": 160},
    ]
    spec = _parsed(loadTest=_trace_load(points=points, timeScale=4, rateScale=2))
    by_name = {p.variant: p for p in sim.predict(spec)}
    for p in by_name.values():
        assert p.replica_series_end_s == 900.0  # 3600 s / timeScale 4
        series = p.replica_series or []
        assert series[0][0] == 0.0
        assert all(a[0] < b[0] and a[1] != b[1] for a, b in itertools.pairwise(series))
        assert all(t <= 900.0 for t, _ in series)
    right = by_name["right"].replica_series or []
    assert right[0][1] == 2.0 and right[-1][1] == 4.0  # up to maxReplicas under 320 req/s
    # Nothing scales before the climb starts at 300 s on the load's clock.
    assert all(t >= 300.0 for t, _ in right[1:])
    # Stored through the status model, by alias, it stays within the cap.
    st = ScalingExperimentStatus(predictions=list(by_name.values()))
    dumped = st.model_dump(mode="json", by_alias=True)["predictions"]
    assert all(len(p["replicaSeries"]) <= MAX_PREDICTED_POINTS for p in dumped)
    assert Prediction.model_validate(dumped[0]).replica_series == by_name["small"].replica_series


@pytest.mark.parametrize(
    ("trace", "field"),
    [
        ({"configMapRef": {"name": "curve", "key": "trace.csv"}}, "configMapRef"),
        ({"prometheus": {"query": "sum(rate(x[1m]))", "last": "1h"}}, "prometheus"),
    ],
)
def test_a_curve_read_at_run_time_is_refused_naming_the_field(
    trace: dict[str, Any], field: str
) -> None:
    spec = _parsed(loadTest=_trace_load(**trace))
    for call in (sim.check, sim.predict):
        with pytest.raises(SimulationError, match=rf"^spec\.loadTest\.load\.trace\.{field}: "):
            call(spec)
