"""Table tests for the small parsers: durations, thresholds, phase transitions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surge.api.durations import format_duration, parse_duration
from surge.api.status import Phase, can_transition
from surge.api.thresholds import Kind, format_value, parse_threshold

_UNITS = ["us", "ms", "s", "m", "h"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("1.5s", 1.5), ("250us", 250e-6)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "m5", "1h 30m", "-3s", "3sec"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration; use e\.g\. 5m or 300s"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0, 0.25, 1, 59.5, 90, 300, 3600, 5400, 1e-4])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "metric", "op", "limit", "kind"),
    [
        ("latency.p95 < 800ms", "latency.p95", "<", 0.8, Kind.TIME),
        ("ttft.p99<300ms", "ttft.p99", "<", 0.3, Kind.TIME),
        ("errors.rate < 1%", "errors.rate", "<", 0.01, Kind.RATIO),
        ("errors.rate <= 0.005", "errors.rate", "<=", 0.005, Kind.RATIO),
        ("throughput.achieved > 95%", "throughput.achieved", ">", 0.95, Kind.RATIO),
        ("throughput.rps >= 100rps", "throughput.rps", ">=", 100, Kind.RATE),
        ("latency.max < 2s", "latency.max", "<", 2.0, Kind.TIME),
        ("replicas.max <= 10", "replicas.max", "<=", 10, Kind.VALUE),
    ],
)
def test_parse_threshold(text: str, metric: str, op: str, limit: float, kind: Kind) -> None:
    t = parse_threshold(text)
    assert (t.metric, t.op, t.kind) == (metric, op, kind)
    assert t.limit == pytest.approx(limit)


def test_threshold_check_and_display() -> None:
    t = parse_threshold("latency.p95 < 800ms")
    assert t.check(0.412)
    assert not t.check(0.8)
    assert format_value(0.412, t.kind) == "412ms"
    assert format_value(0.0123, Kind.RATIO) == "1.23%"


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        (None, Phase.PENDING, True),
        (Phase.PENDING, Phase.RUNNING, True),
        (Phase.RUNNING, Phase.WAITING_FOR_TARGET, False),
        (Phase.ANALYZING, Phase.SUCCEEDED, True),
        (Phase.SUCCEEDED, Phase.RUNNING, False),
        (Phase.FAILED, Phase.SUCCEEDED, False),
        (Phase.RUNNING, Phase.ABORTED, True),
        (Phase.RUNNING, Phase.RUNNING, True),
    ],
)
def test_phases_only_move_forward(old: Phase | None, new: Phase, ok: bool) -> None:
    assert can_transition(old, new) is ok


@pytest.mark.parametrize(
    ("readiness", "expected"),
    [
        ({}, None),
        ({"http": {"path": "/readyz"}}, "http://alice:8080/v1/readyz"),
        ({"http": {"url": "http://alice:9000/healthz"}}, "http://alice:9000/healthz"),
    ],
)
def test_health_url_derives_from_the_target(
    readiness: dict[str, object], expected: str | None
) -> None:
    from surge.api.loadtest import Target

    target = Target.model_validate({"url": "http://alice:8080/v1/", "readiness": readiness})
    assert target.health_url() == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1000001, "1000001s"), (123456.7, "123456.7s"), (0.25, "250ms"), (300, "5m"), (7200, "2h")],
)
def test_format_duration_spells_large_and_fine_values_exactly(seconds: float, text: str) -> None:
    """`:g` wrote 1000001 s as '1e+06s' (no duration pattern reads an exponent) and
    123456.7 s as '123457s': a spec's durations pass through this on their way into
    the plan, the snapshot and child LoadTests."""
    assert format_duration(seconds) == text


@given(st.text(alphabet="0123456789", min_size=1, max_size=7), st.sampled_from(_UNITS))
def test_every_duration_reads_back_as_itself(digits: str, unit: str) -> None:
    for text in (f"{digits}{unit}", f"{digits[:3]}.{digits}{unit}"):
        seconds = parse_duration(text)
        assert parse_duration(format_duration(seconds)) == seconds, (text, seconds)


def test_a_duration_under_a_nanosecond_is_refused_by_name() -> None:
    """Go reads it as 0 and its exact spelling outgrows the 64 characters a duration has."""
    from pydantic import TypeAdapter, ValidationError

    from surge.api.durations import Duration

    with pytest.raises(ValidationError, match="under a nanosecond"):
        TypeAdapter(Duration).validate_python("0.0000000000000000000000000000000000000001us")
    assert TypeAdapter(Duration).validate_python("0.001us") == pytest.approx(1e-9)


def test_sub_nanosecond_parts_are_refused_as_go_reads_them() -> None:
    """Go truncates each part to whole nanoseconds: two half-nanoseconds are 0 ns to it."""
    from pydantic import TypeAdapter, ValidationError

    from surge.api.durations import Duration

    with pytest.raises(ValidationError, match="under a nanosecond"):
        TypeAdapter(Duration).validate_python("0.0005us0.0005us")
