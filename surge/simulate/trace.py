"""The load to replay, as requests per second for each second: from the LoadTest's load (its
stages or its trace, the curve a live run replays) or from a CSV of `t_seconds,rps`.

A CSV is checked line by line: times sorted, not negative, no gaps (an interval much longer
than the trace's usual spacing, or an empty or NaN rate), rates not negative. Its times are
shifted so the first sample is t = 0; between samples the rate is interpolated linearly.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import numpy as np

from surge.api.loadtest import Load, LoadTestSpec
from surge.api.manifests import ManifestError
from surge.loadgen.trace import load_segments, per_second
from surge.loadgen.trace_resolve import resolve_locally
from surge.simulate.errors import SimulationError

GAP_FACTOR = 5.0
"""An interval longer than this many times the median spacing is a gap."""


@dataclass(frozen=True, slots=True)
class Load1s:
    rates: list[float]
    """Mean offered requests per second over [i, i + 1)."""
    source: str


def from_stages(load: Load) -> Load1s:
    """The load's rate curve (its stages', or its trace's resolved points, scaled as the
    live run replays them), integrated exactly over each second."""
    if load.trace is not None and not load.trace.resolved:
        raise SimulationError(
            "spec.loadTest.load.trace: its curve is in a ConfigMap or Prometheus; `surge "
            "simulate` reads Prometheus itself, an operator simulation (liveTopK) needs the "
            "points inline"
        )
    rates = per_second(load_segments(load), load.duration_s)
    if load.trace is not None:
        source = f"spec.loadTest.load: {load.trace.source}"
    elif load.model == "closed":
        source = "spec.loadTest.load stages (closed model: users read as requests per second)"
    else:
        source = "spec.loadTest.load stages"
    return Load1s(rates, source)


def from_load(spec: LoadTestSpec, source: str = "") -> Load1s:
    """`surge simulate`: the LoadTest template's curve, a trace's read from Prometheus as
    `surge run` reads it (so the simulated and the live run replay one curve)."""
    try:
        spec = resolve_locally(spec, source)
    except ManifestError as exc:
        where = [(e.path.replace("spec.", "spec.loadTest.", 1), e.message) for e in exc.errors]
        raise SimulationError("; ".join(f"{p}: {m}" for p, m in where)) from None
    return from_stages(spec.load)


def read_csv(path: Path, max_gap_s: float | None = None) -> Load1s:
    """Parse and check a trace; SimulationError names the line and the fix."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SimulationError(f"{path}: cannot read the trace ({exc.strerror})") from None
    times: list[float] = []
    rps: list[float] = []
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
        where = f"{path}:{number}"
        if len(fields) != 2:
            raise SimulationError(f"{where}: expected 2 columns t_seconds,rps, found {len(fields)}")
        t, r = _number(fields[0], where, "t_seconds"), _number(fields[1], where, "rps")
        if t < 0:
            raise SimulationError(
                f"{where}: t_seconds is negative ({fields[0]}); times are seconds from the "
                "start of the trace, 0 or more"
            )
        if r < 0:
            raise SimulationError(f"{where}: rps is negative ({fields[1]}); a rate is 0 or more")
        if times and t <= times[-1]:
            raise SimulationError(
                f"{where}: t_seconds {fields[0]} is not after line {lines[-1]} "
                f"({times[-1]:g}); sort the file by time (sort -t, -k1,1 -g) and drop repeats"
            )
        times.append(t)
        rps.append(r)
        lines.append(number)
    if len(times) < 2:
        raise SimulationError(f"{path}: a trace needs at least 2 samples (t_seconds,rps lines)")
    _check_gaps(path, times, lines, max_gap_s)
    start = times[0]
    seconds = max(1, math.ceil(times[-1] - start))
    midpoints = np.arange(seconds, dtype=float) + 0.5
    rates = np.interp(midpoints, np.asarray(times) - start, np.asarray(rps))
    return Load1s([float(x) for x in rates], str(path))


def _check_gaps(path: Path, times: list[float], lines: list[int], max_gap_s: float | None) -> None:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    usual = median(gaps)
    limit = max_gap_s if max_gap_s is not None else GAP_FACTOR * usual
    for i, gap in enumerate(gaps):
        if gap > limit:
            raise SimulationError(
                f"{path}:{lines[i + 1]}: {gap:g}s since line {lines[i]}, where samples are "
                f"usually {usual:g}s apart: the trace has a gap; export it again with no "
                f"missing range, or pass --max-gap {math.ceil(gap)}s to interpolate across it"
            )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(text: str, where: str, column: str) -> float:
    if text == "" or text.lower() in ("nan", "null", "none"):
        raise SimulationError(
            f"{where}: {column} is empty ({text or 'nothing'}): the trace has a gap; fill it "
            "or drop the line"
        )
    try:
        value = float(text)
    except ValueError:
        raise SimulationError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SimulationError(f"{where}: {column} {text!r} is not a finite number")
    return value
