"""Timeline math on step functions, exact."""

from __future__ import annotations

import pytest

from surge.results.timeline import (
    Sample,
    Window,
    clip,
    downsample,
    first_rise,
    integral,
    measured_window,
    query_step,
    series_stats,
    time_to_peak,
    time_weighted_mean,
    value_changes,
)

# 1 -> 3 -> 5 -> 4 replicas: the window [0, 100]
STEPS: list[Sample] = [(0, 1), (10, 3), (30, 5), (70, 4)]


@pytest.mark.parametrize(
    ("samples", "end", "expected"),
    [
        (STEPS, 100, 1 * 10 + 3 * 20 + 5 * 40 + 4 * 30),
        ([(0, 2)], 50, 100),
        ([(10, 2), (20, 2)], 20, 20),  # the last sample sits at the end
        ([], 10, 0),
        ([(0, 1.5), (4, 0.5)], 6, 7.0),
    ],
)
def test_integral(samples: list[Sample], end: float, expected: float) -> None:
    assert integral(samples, end) == expected


@pytest.mark.parametrize(
    ("samples", "end", "expected"),
    [
        (STEPS, 100, 390 / 100),
        ([(0, 2)], 50, 2.0),
        ([(20, 2), (30, 4)], 40, 3.0),  # covered span only: 20..40
        ([(5, 7)], 5, 7.0),  # one sample at the end
        ([], 10, None),
    ],
)
def test_time_weighted_mean(samples: list[Sample], end: float, expected: float | None) -> None:
    assert time_weighted_mean(samples, end) == expected


@pytest.mark.parametrize(
    ("samples", "expected"),
    [(STEPS, 3), ([(0, 1), (1, 1), (2, 1)], 0), ([(0, 1), (1, 2), (2, 1), (3, 2)], 3), ([], 0)],
)
def test_value_changes(samples: list[Sample], expected: int) -> None:
    assert value_changes(samples) == expected


@pytest.mark.parametrize(
    ("samples", "start", "up", "peak"),
    [
        (STEPS, 0, 10, 30),
        (STEPS, -5, 15, 35),  # measured from the window start, not the first sample
        ([(0, 4), (10, 2), (20, 3)], 0, None, 0),  # a scale-down only: never rose above 4
        ([(0, 2), (10, 2), (20, 2)], 0, None, 0),
        ([(0, 1), (10, 5), (20, 5), (30, 5)], 0, 10, 10),  # the first time it peaks
        ([], 0, None, None),
    ],
)
def test_first_rise_and_peak(
    samples: list[Sample], start: float, up: float | None, peak: float | None
) -> None:
    assert first_rise(samples, start) == up
    assert time_to_peak(samples, start) == peak


def test_series_stats() -> None:
    stats = series_stats(STEPS, 100)
    assert stats is not None
    assert (stats.min, stats.max, stats.mean, stats.last) == (1, 5, 3.9, 4)
    assert series_stats([], 100) is None


@pytest.mark.parametrize(
    ("load_start", "warmup", "duration", "window"),
    [
        (1000.0, 30.0, 300.0, Window(1030.0, 1300.0)),
        (1000.0, 0.0, 60.0, Window(1000.0, 1060.0)),
    ],
)
def test_measured_window(load_start: float, warmup: float, duration: float, window: Window) -> None:
    assert measured_window(load_start, warmup, duration) == window
    assert window.seconds == duration - warmup


def test_measured_window_refuses_empty() -> None:
    with pytest.raises(ValueError, match="outlast"):
        measured_window(0, 60, 60)


def test_clip_keeps_the_window_inclusive() -> None:
    assert clip([(0, 9), (10, 1), (20, 2), (30, 12)], Window(10, 20)) == [(10, 1), (20, 2)]


@pytest.mark.parametrize(
    ("n", "cap", "indexes"),
    [
        (5, 10, [0, 1, 2, 3, 4]),
        (10, 10, list(range(10))),
        (11, 10, [0, 2, 4, 6, 8, 10]),
        (100, 10, [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]),
        (101, 10, [0, 12, 24, 36, 48, 60, 72, 84, 96, 100]),
        (1000, 2, [0, 999]),
    ],
)
def test_downsample(n: int, cap: int, indexes: list[int]) -> None:
    samples = [(float(i), float(i)) for i in range(n)]
    out = downsample(samples, cap)
    assert [int(t) for t, _ in out] == indexes
    assert len(out) <= cap


@pytest.mark.parametrize("n", range(2, 400, 7))
def test_downsample_bounds(n: int) -> None:
    samples = [(float(i), 0.0) for i in range(n)]
    for cap in (2, 3, 120):
        out = downsample(samples, cap)
        assert len(out) <= cap and out[0] == samples[0] and out[-1] == samples[-1]


@pytest.mark.parametrize(
    ("seconds", "step", "expected"),
    [(300, 15, 15), (3600, 1, 1), (86_400, 1, 8.0), (86_400 * 7, 15, 55.0)],
)
def test_query_step_stays_under_prometheus_limit(
    seconds: float, step: float, expected: float
) -> None:
    got = query_step(Window(0, seconds), step)
    assert got == expected
    assert seconds / got + 1 <= 11_000


def test_downsampling_a_step_series_keeps_every_change_exactly() -> None:
    # 400 samples a quarter-second apart; replicas 1 -> 3 at t=50.25 and a 1 s flap to 4.
    samples = [(t * 0.25, 3.0 if 201 <= t < 300 else 1.0) for t in range(400)]
    samples[250] = (62.5, 4.0)
    samples[251] = (62.75, 4.0)
    kept = downsample(samples, 120)
    assert kept[0] == samples[0]
    assert kept[-1] == samples[-1]
    changes = [(t, v) for (t, v), (_, b) in zip(kept[1:], kept[:-1], strict=True) if v != b]
    assert changes == [(50.25, 3.0), (62.5, 4.0), (63.0, 3.0), (75.0, 1.0)]
