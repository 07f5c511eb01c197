"""Schedule math: when each arrival is due and how many users are active. Pure functions.

The load is a piecewise-linear rate curve r(t) built from the stages: stage i ramps
linearly from the previous stage's target (the first from `startTarget`, or holds its
own target when that is unset); or, for a trace, from its points (`curve_segments`).
The expected number of arrivals by time t is the integral Λ(t) = ∫₀ᵗ r(u) du, and
every open-loop schedule is Λ⁻¹ applied to a sequence of "counts":

- constant: the k-th arrival of the whole test (k = 0, 1, 2, ...) is due at Λ⁻¹(k),
  so arrivals are evenly spaced at a steady rate and follow the ramp exactly.
  Worker i of N takes the global arrivals k ≡ i (mod N), so N workers interleave
  into exactly the single-process schedule.
- poisson: a unit-rate Poisson process E₁ < E₂ < ... (sums of Exp(1) gaps from a
  seeded RNG) mapped through Λ⁻¹ (time rescaling), which gives a non-homogeneous
  Poisson process with rate r(t). Worker i uses rate r(t)/N and its own seed
  derived from (seed, i); the superposition of N such processes is Poisson with r(t).

Closed loop: users(t) = floor(r(t)), split as integers over workers.

Processes inside a worker (load.processesPerWorker = P) split the worker's schedule the
same way, exactly: process p takes the worker's own arrivals j ≡ p (mod P), counted in
the worker's order (constant: global k = i + W·(p + P·m); poisson: every P-th of the
worker's seeded sequence, which each process draws whole: ~1 µs an arrival), so the P
processes' union is the one-process schedule. Users
and dataset rows split as slot s = i + p·W of W·P: the k ≡ s (mod W·P) union over p is
k ≡ i (mod W).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

_EPS = 1e-9


class StageLike(Protocol):
    @property
    def duration(self) -> float: ...
    @property
    def target(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Segment:
    """One stage on the timeline: the rate goes linearly from rate0 to rate1 (per second)."""

    start_s: float
    end_s: float
    rate0: float
    rate1: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def area(self) -> float:
        """Expected arrivals in the segment (or user-seconds for the closed model)."""
        return (self.rate0 + self.rate1) / 2.0 * self.duration_s

    def area_to(self, u: float) -> float:
        """Expected arrivals in the segment's first u seconds (0 ≤ u ≤ its duration)."""
        return self.rate0 * u + (self.rate1 - self.rate0) * u * u / (2.0 * self.duration_s)


def segments(stages: Sequence[StageLike], start_target: float | None) -> list[Segment]:
    """The rate curve of the stages, as consecutive segments starting at t = 0."""
    out: list[Segment] = []
    t = 0.0
    prev = start_target
    for stage in stages:
        r0 = stage.target if prev is None else prev
        out.append(Segment(t, t + stage.duration, float(r0), float(stage.target)))
        t += stage.duration
        prev = stage.target
    return out


def curve_segments(
    points: Sequence[tuple[float, float]], interpolation: Literal["linear", "step"]
) -> list[Segment]:
    """A trace's rate curve from its (t, rate) points (times increasing, the first at 0):
    linear goes from each point's rate to the next one's; step holds each point's rate
    until the next point. The curve ends at the last point."""
    out: list[Segment] = []
    for (t0, r0), (t1, r1) in itertools.pairwise(points):
        out.append(Segment(t0, t1, r0, r1 if interpolation == "linear" else r0))
    return out


def rate_at(segs: Sequence[Segment], t: float) -> float:
    """r(t); 0 outside the timeline."""
    for s in segs:
        if s.start_s <= t < s.end_s or (t == s.end_s and s is segs[-1]):
            return s.rate0 + (s.rate1 - s.rate0) * (t - s.start_s) / s.duration_s
    return 0.0


def cumulative(segs: Sequence[Segment], t: float) -> float:
    """Λ(t) = ∫₀ᵗ r(u) du, the expected arrivals by t."""
    total = 0.0
    for s in segs:
        if t >= s.end_s:
            total += s.area
            continue
        if t > s.start_s:
            total += s.area_to(t - s.start_s)
        break
    return total


def cumulative_marks(segs: Sequence[Segment], times: Sequence[float]) -> list[float]:
    """cumulative() at each of `times` (non-decreasing), summed in the same order (so equal
    to the float), walking the segments once: O(times + segments), where calling
    cumulative() per time walks every segment each time."""
    out: list[float] = []
    total, i, n = 0.0, 0, len(segs)
    for t in times:
        while i < n and t >= segs[i].end_s:
            total += segs[i].area
            i += 1
        inside = i < n and t > segs[i].start_s
        out.append(total + segs[i].area_to(t - segs[i].start_s) if inside else total)
    return out


def _solve_in_segment(s: Segment, c: float) -> float:
    """u in [0, duration] with r0·u + (r1-r0)/(2d)·u² = c (c within the segment's area)."""
    if c <= 0.0:
        return 0.0
    a = (s.rate1 - s.rate0) / (2.0 * s.duration_s)
    b = s.rate0
    if abs(a) < 1e-15:
        return c / b if b > 0 else s.duration_s
    disc = max(b * b + 4.0 * a * c, 0.0)
    denom = b + math.sqrt(disc)
    # 2c / (b + sqrt(b² + 4ac)) is the stable root form; it also covers b = 0.
    u = 2.0 * c / denom if denom > 0 else s.duration_s
    return min(max(u, 0.0), s.duration_s)


class InverseCurve:
    """Λ⁻¹ for non-decreasing queries (walks the segments once; O(1) amortised per call)."""

    def __init__(self, segs: Sequence[Segment], scale: float = 1.0) -> None:
        self._segs = [Segment(s.start_s, s.end_s, s.rate0 * scale, s.rate1 * scale) for s in segs]
        self._areas = [s.area for s in self._segs]  # computed once: time_of is per arrival
        self._i = 0
        self._before = 0.0  # Λ at the start of segment _i

    def time_of(self, count: float) -> float | None:
        """The t where Λ(t) = count, or None when the timeline ends first."""
        segs, areas = self._segs, self._areas
        while self._i < len(segs):
            area = areas[self._i]
            if count <= self._before + area + _EPS * max(1.0, count) and area > 0:
                s = segs[self._i]
                c = min(max(count - self._before, 0.0), area)
                return s.start_s + _solve_in_segment(s, c)
            self._before += area
            self._i += 1
        return None


def worker_seed(seed: int | None, index: int) -> int | None:
    """Each worker's own seed: independent streams that are fixed by (seed, index)."""
    return None if seed is None else (seed * 1_000_003 + index * 7919 + 1) & 0xFFFFFFFF


def arrival_times(
    segs: Sequence[Segment],
    model: Literal["constant", "poisson"],
    *,
    index: int = 0,
    workers: int = 1,
    seed: int | None = None,
    part: int = 0,
    parts: int = 1,
) -> Iterator[float]:
    """Due times (seconds from the load start, increasing) of worker `index`'s arrivals,
    or of process `part` of its `parts` (every parts-th of them, from the part-th).

    Ends when the timeline does; an arrival due exactly at the end is not sent.
    """
    if not 0 <= index < workers:
        raise ValueError(f"index {index} is not in 0..{workers - 1}")
    if not 0 <= part < parts:
        raise ValueError(f"process {part} is not in 0..{parts - 1}")
    end = segs[-1].end_s if segs else 0.0
    if model == "constant":
        inv = InverseCurve(segs)
        k = index + part * workers
        step = workers * parts
        while True:
            t = inv.time_of(float(k))
            if t is None or t >= end:
                return
            yield t
            k += step
    else:
        rng = random.Random(worker_seed(seed, index))
        inv = InverseCurve(segs, scale=1.0 / workers)
        count = 0.0
        j = 0
        while True:
            count += rng.expovariate(1.0)
            t = inv.time_of(count)
            if t is None or t >= end:
                return
            if j % parts == part:
                yield t
            j += 1


def share_of_users(total: int, index: int, workers: int) -> int:
    """Worker `index`'s whole share of `total` users: the remainder goes to the lowest indexes."""
    base, extra = divmod(max(total, 0), workers)
    return base + (1 if index < extra else 0)


def users_at(segs: Sequence[Segment], t: float, *, index: int = 0, workers: int = 1) -> int:
    """Closed model: users worker `index` should run at t (floor of the ramp, split evenly)."""
    return share_of_users(math.floor(rate_at(segs, t) + _EPS), index, workers)


def expected_arrivals(segs: Sequence[Segment], start_s: float, end_s: float) -> float:
    """Expected arrivals (whole test, all workers) due in [start_s, end_s)."""
    return cumulative(segs, end_s) - cumulative(segs, start_s)
