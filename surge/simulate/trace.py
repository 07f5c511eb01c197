"""The load to replay, as requests per second for each second: from the LoadTest's load (its
stages or its trace, the curve a live run replays) or from a CSV of `t_seconds,rps`.

A CSV is checked line by line: times sorted, not negative, no gaps (an interval much longer
than the trace's usual spacing, or an empty or NaN rate), rates not negative. Its times are
shifted so the first sample is t = 0; between samples the rate is interpolated linearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surge.api.loadtest import Load, LoadTestSpec
from surge.api.manifests import ManifestError
from surge.loadgen.trace import CsvProblem, load_segments, per_second, read_samples
from surge.loadgen.trace_resolve import resolve_locally
from surge.simulate.errors import SimulationError


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
    """Parse and check a trace (surge.loadgen.trace.read_samples, the trace load's reader,
    with no cap on lines); SimulationError names the line and the fix."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SimulationError(f"{path}: cannot read the trace ({exc.strerror})") from None
    try:
        samples = read_samples(
            text,
            lambda n: f"{path}:{n}",
            max_gap_s=max_gap_s,
            gap_hint="or pass --max-gap {gap}s to interpolate across it",
            most=None,
        )
    except CsvProblem as exc:
        raise SimulationError(str(exc)) from None
    times, rps = samples.times, samples.rates
    if len(times) < 2:
        raise SimulationError(f"{path}: a trace needs at least 2 samples (t_seconds,rps lines)")
    start = times[0]
    seconds = max(1, math.ceil(times[-1] - start))
    midpoints = np.arange(seconds, dtype=float) + 0.5
    rates = np.interp(midpoints, np.asarray(times) - start, np.asarray(rps))
    return Load1s([float(x) for x in rates], str(path))
