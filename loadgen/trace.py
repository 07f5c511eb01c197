"""A trace's rate curve, pure: from inline points, a CSV text or a Prometheus matrix to the
points the plan carries, and from those to the schedule's segments.

Every reader checks what it reads and raises TraceError naming the field, the line or the
sample time, and the fix: a rate that is negative, NaN or missing (a gap), times out of
order, too many points, an empty query result. The I/O (a ConfigMap read, a Prometheus
query) is surge.loadgen.trace_resolve's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import median
from typing import Any, Literal, TypeVar

from surge.api.bounds import MAX_RATE
from surge.api.durations import format_duration
from surge.api.loadtest import Load
from surge.api.results.trace import MAX_STORED, TraceSection
from surge.api.trace import MAX_POINTS, MAX_TRACE_SECONDS, Trace, TracePoint, TraceQuery
from surge.loadgen import schedule

_N = TypeVar("_N", int, float)

GAP_FACTOR = 5.0
"""In sampled data (a CSV), an interval over this many times the median spacing is a gap."""


class TraceError(ValueError):
    """A curve that cannot be replayed; `field` names where (e.g. spec.load.trace.prometheus)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def scaled_points(trace: Trace) -> list[tuple[float, float]]:
    """The curve on the load's clock: times from 0, divided by timeScale; rates × rateScale."""
    if trace.points is None:
        raise ValueError("resolve load.trace into points first (surge.loadgen.trace_resolve)")
    t0 = trace.points[0].t_seconds
    return [((p.t_seconds - t0) / trace.time_scale, p.rps * trace.rate_scale) for p in trace.points]


def load_segments(load: Load) -> list[schedule.Segment]:
    """The load's rate curve: its trace's, or its stages'."""
    if load.trace is not None:
        return schedule.curve_segments(scaled_points(load.trace), load.trace.interpolation)
    return schedule.segments(load.stages, load.start_target)


def per_second(segs: list[schedule.Segment], duration_s: float) -> list[float]:
    """Expected arrivals in each second [i, min(i + 1, duration_s)) of the curve: the same
    numbers as schedule.expected_arrivals for each second, in one pass over the segments
    (O(seconds + segments); per second it walks every segment: 3600 s of a 10,000-point
    trace is 36 million steps, seconds of the operator's CPU)."""
    seconds = math.ceil(duration_s)
    marks = schedule.cumulative_marks(segs, [min(float(i), duration_s) for i in range(seconds + 1)])
    return [marks[i + 1] - marks[i] for i in range(seconds)]


def arrivals_model(load: Load) -> Literal["constant", "poisson"]:
    """How an open-loop load spaces its arrivals (a trace says so in load.trace.arrivals)."""
    if load.trace is not None:
        return load.trace.arrivals
    assert load.model in ("constant", "poisson"), load.model
    return load.model


def check_points(points: list[TracePoint], where: str) -> list[TracePoint]:
    """At least 2 and at most MAX_POINTS points, with a rate above 0 somewhere."""
    if len(points) < 2:
        raise TraceError(where, f"{len(points)} point(s); a curve needs at least 2")
    if len(points) > MAX_POINTS:
        raise TraceError(
            where, f"{len(points):,} points, over {MAX_POINTS:,}; use a coarser resolution"
        )
    if max(p.rps for p in points) <= 0:
        raise TraceError(where, "every rate is 0: nothing would be sent")
    return points


class CsvProblem(ValueError):
    """A `t_seconds,rps` text that is not a trace; the message names the line and the fix."""


@dataclass(frozen=True, slots=True)
class Samples:
    times: list[float]
    rates: list[float]


def read_samples(
    text: str,
    at: Callable[[int], str],
    *,
    max_gap_s: float | None = None,
    gap_hint: str = "",
    most: int | None = MAX_POINTS,
) -> Samples:
    """`t_seconds,rps` lines (a header line, blank lines and # comments allowed), times
    increasing, rates 0 or more; an empty or NaN rate is a gap, and so is an interval over
    `max_gap_s` (default GAP_FACTOR × the median spacing). `at(n)` names line n in a
    message (`line 3`, `trace.csv:3`); `gap_hint` ends the message of a gap. CsvProblem
    for anything else. Shared by the trace load (points_from_csv) and `surge simulate`."""
    times: list[float] = []
    rates: list[float] = []
    lines: list[int] = []
    first = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if first and not _is_number(fields[0]):
            first = False
            continue  # a header such as t_seconds,rps
        first = False
        here = at(number)
        if len(fields) != 2:
            raise CsvProblem(f"{here}: expected 2 columns t_seconds,rps, found {len(fields)}")
        t, r = _number(fields[0], here, "t_seconds"), _number(fields[1], here, "rps")
        if t < 0:
            raise CsvProblem(
                f"{here}: t_seconds is negative ({fields[0]}); times are seconds from the "
                "start of the trace, 0 or more"
            )
        if r < 0:
            raise CsvProblem(f"{here}: rps is negative ({fields[1]}); a rate is 0 or more")
        if times and t <= times[-1]:
            raise CsvProblem(
                f"{here}: t_seconds {fields[0]} is not after line {lines[-1]} "
                f"({times[-1]:g}); sort the file by time (sort -t, -k1,1 -g) and drop repeats"
            )
        times.append(t)
        rates.append(r)
        lines.append(number)
        if most is not None and len(times) > most:
            raise CsvProblem(f"more than {most:,} lines; use a coarser resolution")
    if len(times) >= 2:
        gaps = [b - a for a, b in itertools.pairwise(times)]
        usual = median(gaps)
        limit = max_gap_s if max_gap_s is not None else GAP_FACTOR * usual
        for i, gap in enumerate(gaps):
            if gap > limit:
                raise CsvProblem(
                    f"{at(lines[i + 1])}: {gap:g}s since line {lines[i]}, where samples are "
                    f"usually {usual:g}s apart: the trace has a gap; fill the missing range"
                    + (f", {gap_hint.format(gap=math.ceil(gap))}" if gap_hint else "")
                )
    return Samples(times, rates)


def points_from_csv(text: str, where: str) -> list[TracePoint]:
    """A curve's points from a `t_seconds,rps` CSV (read_samples' rules); TraceError naming
    `where` and the line."""
    try:
        samples = read_samples(text, lambda n: f"line {n}")
    except CsvProblem as exc:
        raise TraceError(where, str(exc)) from None
    pairs = zip(samples.times, samples.rates, strict=True)
    return check_points([_point(t, r, where) for t, r in pairs], where)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _point(t: float, rps: float, where: str) -> TracePoint:
    """A point within the models' bounds (surge.api.trace), else TraceError naming it."""
    if t > MAX_TRACE_SECONDS:
        raise TraceError(where, f"t_seconds {t:g} is beyond {MAX_TRACE_SECONDS:g}")
    if rps > MAX_RATE:
        raise TraceError(where, f"rps {rps:g} at {t:g}s is above {MAX_RATE:g}, the most a rate is")
    return TracePoint(t_seconds=t, rps=rps)


def _number(text: str, here: str, column: str) -> float:
    if text == "" or text.lower() in ("nan", "null", "none"):
        raise CsvProblem(
            f"{here}: {column} is empty ({text or 'nothing'}): the trace has a gap; fill it "
            "or drop the line"
        )
    try:
        value = float(text)
    except ValueError:
        raise CsvProblem(f"{here}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise CsvProblem(f"{here}: {column} {text!r} is not a finite number")
    return value


def query_window(q: TraceQuery, now: float) -> tuple[float, float]:
    """The query's [start, end] in epoch seconds: as given, or `last` ending at `now`
    rounded down to a whole step (so two resolutions within a step agree)."""
    if q.last is None:
        assert q.start is not None and q.end is not None
        return q.start.timestamp(), q.end.timestamp()
    end = math.floor(now / q.step) * q.step
    return end - q.last, end


def points_from_matrix(
    result: Any, start: float, end: float, step_s: float, where: str
) -> list[TracePoint]:
    """The points of a query_range `result` (a matrix of one series) sampled every step
    over [start, end]. No series, several, a NaN value or a missing step between two samples
    is an error; the curve runs from the first sample to the last."""
    span = f"[{_iso(start)}, {_iso(end)}] step {format_duration(step_s)}"
    if not isinstance(result, list) or not result:
        raise TraceError(
            where, f"the query returned no series over {span}; check the query and the window"
        )
    if len(result) > 1:
        raise TraceError(
            where,
            f"the query returned {len(result)} series, expected one; aggregate it, e.g. sum(...)",
        )
    values = result[0].get("values") or []
    samples: list[tuple[float, float]] = []
    for ts, raw in values:
        t, v = float(ts), float(raw)
        if not math.isfinite(v):
            raise TraceError(where, f"the value at {_iso(t)} is {raw}: a gap; fix the query")
        if v < 0:
            raise TraceError(
                where, f"the value at {_iso(t)} is negative ({raw}); a rate is 0 or more"
            )
        if samples and t - samples[-1][0] > 1.5 * step_s:
            raise TraceError(
                where,
                f"no sample from {_iso(samples[-1][0])} to {_iso(t)} (step "
                f"{format_duration(step_s)}): the series has a gap; pick a window without one",
            )
        samples.append((t, v))
    if len(samples) < 2:
        raise TraceError(where, f"{len(samples)} sample(s) over {span}; a curve needs at least 2")
    t0 = samples[0][0]
    return check_points([_point(t - t0, v, where) for t, v in samples], where)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(trace: Trace, origin: str, points: int) -> str:
    """What status and results say of a resolved curve: its origin, size and scaling."""
    return (
        f"trace from {origin}, {points} points, timeScale {trace.time_scale:g}, "
        f"rateScale {trace.rate_scale:g}, {trace.interpolation}, {trace.arrivals} arrivals"
    )


def prometheus_origin(q: TraceQuery, start: float, end: float) -> str:
    return f"Prometheus {q.query} [{_iso(start)}, {_iso(end)}] step {format_duration(q.step)}"


def resolved(trace: Trace, points: list[TracePoint], origin: str) -> Trace:
    """The trace with its curve inline: the source dropped, `resolvedFrom` naming it."""
    return trace.model_copy(
        update={
            "points": points,
            "config_map_ref": None,
            "prometheus": None,
            "resolved_from": describe(trace, origin, len(points)),
        }
    )


def pin_window(load: Load, now: float) -> Load:
    """A copy whose trace query's `last` is the fixed [start, end] it means at `now`, so
    every run made from this load (an experiment's variants) replays the same window."""
    q = load.trace.prometheus if load.trace is not None else None
    if load.trace is None or q is None or q.last is None:
        return load
    start, end = query_window(q, now)
    pinned = q.model_copy(
        update={
            "last": None,
            "start": datetime.fromtimestamp(start, UTC),
            "end": datetime.fromtimestamp(end, UTC),
        }
    )
    return load.model_copy(update={"trace": load.trace.model_copy(update={"prometheus": pinned})})


def trace_results(load: Load, series: dict[str, list[int]]) -> TraceSection | None:
    """results.trace: the replayed curve (its source and points on the load's clock), the
    expected arrivals of each second (the curve's integral over it) and the achieved count
    of each second (window requests that left in that second of the load, all workers);
    bounded to MAX_STORED entries a list (see surge.api.results.trace)."""
    if load.trace is None or load.trace.points is None:
        return None
    expected = per_second(load_segments(load), load.duration_s)
    seconds = len(expected)
    achieved = list(series.get("sent", []))
    if achieved:  # seconds that sent nothing get no entry (an empty series: none reported)
        achieved += [0] * (seconds - len(achieved))
    bucket = max(1, math.ceil(max(len(expected), len(achieved)) / MAX_STORED))
    points = scaled_points(load.trace)
    return TraceSection(
        source=load.trace.source or "",
        points=[[round(t, 6), round(r, 6)] for t, r in thinned(points, MAX_STORED)],
        points_total=len(points),
        bucket_seconds=bucket,
        expected_per_second=[round(sum(c), 3) for c in _chunks(expected, bucket)],
        achieved_per_second=[sum(c) for c in _chunks(achieved, bucket)],
    )


def thinned(points: list[tuple[float, float]], most: int) -> list[tuple[float, float]]:
    """At most `most` (≥ 2) of the points, evenly spaced by index, first and last kept."""
    if len(points) <= most:
        return points
    last = len(points) - 1
    picks = sorted({round(i * last / (most - 1)) for i in range(most)})
    return [points[i] for i in picks]


def _chunks(values: list[_N], size: int) -> list[list[_N]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
