"""The simulator's error per variant: its predicted replica timeline against the measured
one, second by second over each run's measured span (docs/metrics.md, "Simulator error").
Pure: status rows (as the API returns them, camelCase) in, numbers out."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Step = tuple[float, float]


@dataclass(frozen=True, slots=True)
class SimError:
    mean_abs: float
    """Σ |predicted − measured| replicas over the sampled seconds ÷ `seconds`."""
    exact_share: float
    """Sampled seconds where predicted == measured ÷ `seconds` (0 to 1)."""
    seconds: int
    """The denominator: sampled seconds, over every run of the variant."""


def _held(times: Sequence[float], steps: Sequence[Step], t: float) -> float:
    """The step function's value at t: the last change at or before t (the first value
    before the first change); `times` are the steps' times."""
    i = bisect.bisect_right(times, t) - 1
    return steps[max(i, 0)][1]


def measured_steps(run: Mapping[str, Any], warmup_s: float) -> list[Step]:
    """The run's replica changes on the load's clock: a series from Prometheus starts at the
    measured window (after the warm-up), the operator's own at the load's start."""
    offset = warmup_s if run.get("replicaSource") == "prometheus" else 0.0
    return [(float(t) + offset, float(v)) for t, v in run.get("replicaSeries") or []]


def measured_span(run: Mapping[str, Any], warmup_s: float) -> tuple[float, float] | None:
    """[start, end) of the run's measured series on the load's clock; None without one."""
    steps = measured_steps(run, warmup_s)
    if not steps:
        return None
    offset = warmup_s if run.get("replicaSource") == "prometheus" else 0.0
    end = run.get("replicaSeriesEndS")
    stop = float(end) + offset if end is not None else steps[-1][0]
    return offset, max(stop, steps[-1][0])


def predicted_steps(prediction: Mapping[str, Any]) -> list[Step]:
    return [(float(t), float(v)) for t, v in prediction.get("replicaSeries") or []]


def run_error(
    run: Mapping[str, Any], prediction: Mapping[str, Any], warmup_s: float
) -> tuple[float, int, int]:
    """(Σ |p − m|, seconds equal, seconds sampled) for one run: at t = start, start + 1, ...
    while t < the measured end and t < where the prediction is complete."""
    measured = measured_steps(run, warmup_s)
    predicted = predicted_steps(prediction)
    span = measured_span(run, warmup_s)
    if span is None or not predicted:
        return 0.0, 0, 0
    start, stop = span
    complete = prediction.get("replicaSeriesEndS")
    if complete is not None:
        stop = min(stop, float(complete))
    p_times, m_times = [s[0] for s in predicted], [s[0] for s in measured]
    total, equal, n = 0.0, 0, 0
    for k in range(max(0, math.ceil(stop - start))):
        t = start + k
        diff = abs(_held(p_times, predicted, t) - _held(m_times, measured, t))
        total += diff
        equal += diff == 0
        n += 1
    return total, equal, n


def variant_errors(status: Mapping[str, Any], warmup_s: float) -> dict[str, SimError]:
    """Per variant with a predicted timeline and at least one sampled second: its runs'
    seconds pooled (every repetition counts each of its seconds once)."""
    predictions = {
        str(p["variant"]): p for p in status.get("predictions") or [] if p.get("replicaSeries")
    }
    sums: dict[str, tuple[float, int, int]] = {}
    for run in status.get("runs") or []:
        p = predictions.get(str(run.get("name")))
        if p is None:
            continue
        total, equal, n = run_error(run, p, warmup_s)
        t0, e0, n0 = sums.get(str(run["name"]), (0.0, 0, 0))
        sums[str(run["name"])] = (t0 + total, e0 + equal, n0 + n)
    return {
        name: SimError(total / n, equal / n, n) for name, (total, equal, n) in sums.items() if n
    }
