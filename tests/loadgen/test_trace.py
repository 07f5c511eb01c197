"""The trace's curve, pure: scaling and interpolation, the schedule that follows it, the CSV
and Prometheus-matrix readers with their errors, the query's window and step, results."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from surge.api.loadtest import Load, LoadTestSpec
from surge.api.trace import MAX_POINTS, Trace, TracePoint, TraceQuery
from surge.loadgen import schedule
from surge.loadgen.plan import build_plan
from surge.loadgen.trace import (
    TraceError,
    load_segments,
    pin_window,
    points_from_csv,
    points_from_matrix,
    query_window,
    scaled_points,
    trace_results,
)

WHERE = "spec.load.trace.configMapRef"


def _load(**trace: Any) -> Load:
    return Load.model_validate({"model": "trace", "trace": trace})


def _points(*pairs: tuple[float, float]) -> list[dict[str, float]]:
    return [{"tSeconds": t, "rps": r} for t, r in pairs]


def test_scaling_shifts_to_zero_and_divides_time_multiplies_rate() -> None:
    load = _load(points=_points((100, 10), (200, 30), (400, 0)), timeScale=10, rateScale=2)
    assert load.trace is not None
    assert scaled_points(load.trace) == [(0.0, 20.0), (10.0, 60.0), (30.0, 0.0)]
    assert load.duration_s == 30.0
    assert load.peak == 60.0


def test_linear_interpolation_integrates_the_trapezoids() -> None:
    load = _load(points=_points((0, 10), (10, 30), (20, 30)))
    segs = load_segments(load)
    assert schedule.rate_at(segs, 5.0) == pytest.approx(20.0)
    assert schedule.cumulative(segs, 10.0) == pytest.approx(200.0)  # (10 + 30) / 2 × 10
    assert schedule.cumulative(segs, 20.0) == pytest.approx(500.0)


def test_step_interpolation_holds_each_rate_until_the_next_point() -> None:
    load = _load(points=_points((0, 10), (10, 30), (20, 5)), interpolation="step")
    segs = load_segments(load)
    assert schedule.rate_at(segs, 9.99) == 10.0
    assert schedule.rate_at(segs, 10.0) == 30.0
    assert schedule.cumulative(segs, 20.0) == pytest.approx(10 * 10 + 30 * 10)


def test_constant_arrivals_follow_the_curve_second_by_second() -> None:
    """The k-th arrival is due at Λ⁻¹(k): each second holds its integral, give or take one."""
    load = _load(points=_points((0, 5), (60, 50), (120, 10)), timeScale=6, arrivals="constant")
    segs = load_segments(load)
    times = list(schedule.arrival_times(segs, "constant"))
    assert len(times) == math.ceil(schedule.cumulative(segs, 20.0))
    for sec in range(20):
        got = sum(1 for t in times if sec <= t < sec + 1)
        assert abs(got - schedule.expected_arrivals(segs, sec, sec + 1)) <= 1.0
    # Three workers interleave into exactly the single-process schedule.
    split = sorted(
        t for i in range(3) for t in schedule.arrival_times(segs, "constant", index=i, workers=3)
    )
    assert split == times


def test_poisson_arrivals_match_the_integral_within_noise() -> None:
    load = _load(points=_points((0, 20), (300, 200), (600, 40)), timeScale=10)
    segs = load_segments(load)
    expected = schedule.cumulative(segs, 60.0)
    times = [
        t
        for i in range(2)
        for t in schedule.arrival_times(segs, "poisson", index=i, workers=2, seed=7)
    ]
    assert abs(len(times) - expected) < 4 * math.sqrt(expected)
    again = list(schedule.arrival_times(segs, "poisson", index=1, workers=2, seed=7))
    assert again == list(schedule.arrival_times(segs, "poisson", index=1, workers=2, seed=7))


def test_the_plan_carries_the_curve_and_needs_it_resolved() -> None:
    spec = LoadTestSpec.model_validate(
        {
            "target": {"url": "http://127.0.0.1:9"},
            "load": {"model": "trace", "trace": {"points": _points((0, 1), (10, 2))}},
        }
    )
    plan = build_plan(spec, name="t", namespace="n", run_id="1")
    assert plan.segments == [schedule.Segment(0.0, 10.0, 1.0, 2.0)]
    cm = spec.model_copy(deep=True)
    assert cm.load.trace is not None
    cm.load.trace = Trace.model_validate({"configMapRef": {"name": "c", "key": "k"}})
    with pytest.raises(ValueError, match=r"resolve load\.trace"):
        build_plan(cm, name="t", namespace="n", run_id="1")


@pytest.mark.parametrize(
    ("trace", "message"),
    [
        ({"points": _points((0, 1), (10, 2)), "configMapRef": {"name": "c", "key": "k"}}, "one"),
        ({}, "found none"),
        ({"points": _points((0, 1))}, "at least 2"),
        ({"points": _points((0, 1), (0, 2))}, r"\[1\].tSeconds"),
        ({"points": _points((0, 1), (5, -1))}, "greater than or equal to 0"),
        ({"points": [{"tSeconds": 0, "rps": "NaN"}, {"tSeconds": 1, "rps": 1}]}, "finite"),
        ({"points": _points((0, 0), (5, 0))}, "every rate is 0"),
        ({"points": _points((0, 1), (5, 1)), "resolvedFrom": "x", "timeScale": 0}, "greater"),
        ({"configMapRef": {"name": "c", "key": "k"}, "resolvedFrom": "me"}, "resolvedFrom"),
    ],
)
def test_bad_curves_are_refused_naming_the_field(trace: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _load(**trace)


def test_an_unread_curve_skips_the_length_checks_until_resolved() -> None:
    load = _load(configMapRef={"name": "c", "key": "k"})
    assert load.duration_s == 0.0 and load.peak == 0.0
    prom = _load(prometheus={"query": "up", "last": "1h", "step": "1m"}, timeScale=4)
    assert prom.duration_s == 900.0  # known from the window before the query
    with pytest.raises(ValidationError, match=r"model trace needs load\.trace"):
        Load.model_validate({"model": "trace", "stages": [{"duration": "1s", "target": 1}]})
    with pytest.raises(ValidationError, match="drop stages"):
        Load.model_validate(
            {
                "model": "trace",
                "stages": [{"duration": "1s", "target": 1}],
                "trace": {"points": _points((0, 1), (1, 1))},
            }
        )


def test_csv_with_a_header_and_comments() -> None:
    text = "# exported\nt_seconds,rps\n0,1.5\n\n10,3\n20,0\n"
    points = points_from_csv(text, WHERE)
    assert [(p.t_seconds, p.rps) for p in points] == [(0, 1.5), (10, 3), (20, 0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,1\n10,-2\n", "line 2: rps is negative"),
        ("0,1\n10,NaN\n", "line 2: rps is empty"),
        ("0,1\n10,\n", "line 2: rps is empty"),
        ("0,1\n10,inf\n", "not a finite number"),
        ("0,1\n10,x\n", "'x' is not a number"),
        ("0,1\n10,2,3\n", "expected 2 columns"),
        ("10,1\n0,2\n", "line 2: t_seconds 0 is not after line 1"),
        ("0,1\n10,1\n20,1\n200,1\n", "line 4: 180s since line 3.*gap"),
        ("0,1\n", "a curve needs at least 2"),
        ("t,rps\n", "0 point"),
        ("0,0\n1,0\n", "every rate is 0"),
    ],
)
def test_csv_errors_name_the_field_and_line(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message) as err:
        points_from_csv(text, WHERE)
    assert err.value.field == WHERE


def test_csv_is_bounded() -> None:
    text = "".join(f"{i},1\n" for i in range(MAX_POINTS + 1))
    with pytest.raises(TraceError, match="more than 10,000"):
        points_from_csv(text, WHERE)


def _matrix(values: list[tuple[float, str]], series: int = 1) -> list[dict[str, Any]]:
    return [{"metric": {}, "values": [[t, v] for t, v in values]} for _ in range(series)]


T0 = 1_800_000_000.0
PROM = "spec.load.trace.prometheus"


def test_matrix_points_start_at_zero() -> None:
    got = points_from_matrix(
        _matrix([(T0, "1"), (T0 + 15, "2.5"), (T0 + 30, "0")]), T0, T0 + 30, 15.0, PROM
    )
    assert [(p.t_seconds, p.rps) for p in got] == [(0, 1), (15, 2.5), (30, 0)]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([], "no series over \\[2027-01-15T08:00:00Z, 2027-01-15T08:01:00Z\\] step 15s"),
        (_matrix([(T0, "1"), (T0 + 15, "1")], series=2), "2 series, expected one"),
        (_matrix([(T0, "1"), (T0 + 15, "NaN")]), "08:00:15Z is NaN: a gap"),
        (_matrix([(T0, "1"), (T0 + 15, "-1")]), "negative"),
        (_matrix([(T0, "1"), (T0 + 45, "1")]), "no sample from .*08:00:00Z to .*08:00:45Z"),
        (_matrix([(T0, "1")]), "1 sample"),
    ],
)
def test_matrix_errors(result: Any, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        points_from_matrix(result, T0, T0 + 60, 15.0, PROM)


def test_the_window_from_last_ends_on_the_step_grid() -> None:
    q = TraceQuery.model_validate({"query": "up", "last": "24h", "step": "1m"})
    assert query_window(q, 1_800_000_059.9) == (1_800_000_000.0 - 86_400, 1_800_000_000.0)
    fixed = TraceQuery.model_validate(
        {"query": "up", "start": "2026-12-06T00:00:00Z", "end": "2026-12-06T01:00:00Z"}
    )
    start = datetime(2026, 12, 6, tzinfo=UTC).timestamp()
    assert query_window(fixed, 0.0) == (start, start + 3600)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"last": "1h", "start": "2026-12-06T00:00:00Z"}, "either last or start"),
        ({"start": "2026-12-06T00:00:00Z"}, "needs start and end"),
        ({"start": "2026-12-06T01:00:00Z", "end": "2026-12-06T00:00:00Z"}, "after start"),
        ({"start": "2026-12-06T00:00:00", "end": "2026-12-06T01:00:00"}, "time zone"),
        ({"last": "1h", "step": "500ms"}, "under 1s"),
        ({"last": "24h", "step": "5s"}, "17,281 points, over 10,000; use step 9s"),
    ],
)
def test_query_window_errors(query: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TraceQuery.model_validate({"query": "up", **query})


def test_pinning_last_gives_every_run_the_same_window() -> None:
    load = _load(prometheus={"query": "up", "last": "10m", "step": "30s"})
    pinned = pin_window(load, 1_800_000_010.0)
    assert pinned.trace is not None and pinned.trace.prometheus is not None
    q = pinned.trace.prometheus
    assert q.last is None and q.start is not None and q.end is not None
    assert (q.start.timestamp(), q.end.timestamp()) == (1_799_999_400.0, 1_800_000_000.0)
    assert pin_window(pinned, 1_900_000_000.0) == pinned


def test_results_keep_the_curve_beside_the_achieved_rates() -> None:
    load = _load(points=_points((0, 10), (20, 30)), timeScale=10, arrivals="constant")
    out = trace_results(load, {"ok": [9, 28], "errors": [1, 0, 1], "sent": [10, 29]})
    assert out == {
        "source": "trace from inline points, 2 points",
        "points": [[0.0, 10.0], [2.0, 30.0]],
        "expectedPerSecond": [15.0, 25.0],
        "achievedPerSecond": [10, 29],
    }
    assert (
        trace_results(
            Load.model_validate({"model": "constant", "stages": [{"duration": "1s", "target": 1}]}),
            {},
        )
        is None
    )


def test_a_point_is_a_model() -> None:
    assert TracePoint(t_seconds=1, rps=2).model_dump(by_alias=True) == {"tSeconds": 1, "rps": 2}
