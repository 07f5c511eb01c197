"""Timeline math on sampled series. Pure.

A series is a list of (t, value) samples, t in epoch seconds, sorted by t. It is read
as a step function: each value holds from its sample until the next sample, and the
last one until the window's end. This is how a range query's points are meant (each
is "the value at t"), and it keeps replica-seconds exact for integer timelines.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

Sample = tuple[float, float]

MAX_POINTS_PER_QUERY = 11_000  # Prometheus refuses range queries above 11,000 points


@dataclass(frozen=True, slots=True)
class Window:
    """The measured window [start, end], epoch seconds."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def measured_window(load_start: float, warmup_s: float, duration_s: float) -> Window:
    """From the end of warm-up to the end of the load. Raises ValueError when empty."""
    if warmup_s < 0 or duration_s <= warmup_s:
        raise ValueError(
            f"no measured window: warm-up {warmup_s:g}s, load {duration_s:g}s; "
            "the load must outlast the warm-up"
        )
    return Window(load_start + warmup_s, load_start + duration_s)


def query_step(window: Window, step_s: float, max_points: int = MAX_POINTS_PER_QUERY) -> float:
    """The requested step, widened (to whole seconds) when the window would need more
    points than Prometheus serves in one range query."""
    if step_s <= 0:
        raise ValueError(f"step must be positive, not {step_s!r}s")
    if window.seconds / step_s + 1 <= max_points:
        return step_s
    return float(math.ceil(window.seconds / (max_points - 1)))


def clip(samples: Sequence[Sample], window: Window) -> list[Sample]:
    """Samples with start <= t <= end."""
    return [(t, v) for t, v in samples if window.start <= t <= window.end]


def downsample(samples: Sequence[Sample], max_points: int) -> list[Sample]:
    """At most `max_points` samples, always keeping the first and last, so a stored series
    still spans the whole window. Samples that repeat the previous value go first: read as
    steps, the series keeps every change at its exact time (a replica timeline loses
    nothing). Only when the changes alone are too many is every k-th one kept. Values are
    never averaged (a replica count stays a whole number)."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, not {max_points}")
    n = len(samples)
    if n <= max_points:
        return list(samples)
    samples = [s for i, s in enumerate(samples) if i in (0, n - 1) or s[1] != samples[i - 1][1]]
    n = len(samples)
    if n <= max_points:
        return samples
    k = math.ceil((n - 1) / (max_points - 1))
    picked = list(range(0, n, k))
    if picked[-1] != n - 1:
        picked.append(n - 1)
    return [samples[i] for i in picked]


def _spans(samples: Sequence[Sample], end: float) -> list[tuple[float, float]]:
    """(value, seconds held) for each sample; the last holds until `end`."""
    out: list[tuple[float, float]] = []
    for i, (t, v) in enumerate(samples):
        until = samples[i + 1][0] if i + 1 < len(samples) else max(end, t)
        out.append((v, until - t))
    return out


def integral(samples: Sequence[Sample], end: float) -> float:
    """∫ value dt over [first sample, end]: replica-seconds for a replica series."""
    return sum(v * dt for v, dt in _spans(samples, end))


def time_weighted_mean(samples: Sequence[Sample], end: float) -> float | None:
    """integral / covered seconds; the plain value when a single sample sits at `end`.
    None without samples."""
    if not samples:
        return None
    covered = max(end, samples[-1][0]) - samples[0][0]
    if covered <= 0:
        return sum(v for _, v in samples) / len(samples)
    return integral(samples, end) / covered


def value_changes(samples: Sequence[Sample]) -> int:
    """How many times the value differs from the sample before it (scale events)."""
    return sum(1 for a, b in itertools.pairwise(samples) if a[1] != b[1])


def first_rise(samples: Sequence[Sample], start: float) -> float | None:
    """Seconds from `start` to the first sample above the first sample's value
    (time to first scale-up); None when it never rises."""
    if not samples:
        return None
    base = samples[0][1]
    for t, v in samples:
        if v > base:
            return t - start
    return None


def time_to_peak(samples: Sequence[Sample], start: float) -> float | None:
    """Seconds from `start` to the first sample holding the maximum; None without samples."""
    if not samples:
        return None
    peak = max(v for _, v in samples)
    return next(t for t, v in samples if v == peak) - start


@dataclass(frozen=True, slots=True)
class SeriesStats:
    min: float
    max: float
    mean: float
    """Time-weighted over the samples' span up to the window end."""
    last: float


def series_stats(samples: Sequence[Sample], end: float) -> SeriesStats | None:
    """min, max, time-weighted mean and last value; None without samples."""
    mean = time_weighted_mean(samples, end)
    if mean is None:
        return None
    values = [v for _, v in samples]
    return SeriesStats(min(values), max(values), mean, values[-1])
