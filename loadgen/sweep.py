"""The capacity sweep's decisions: which rate comes next, and what the steps found. Pure.

A step is one open-loop constant-rate window; it passes when every threshold holds on
its own window. The sweep goes up geometrically (surge.api.sweep.Sweep.geometric_rates)
while steps pass; once one fails, it bisects `bisections` times between the highest
passing rate below the lowest failing one (lo) and that failing rate (hi), each next rate
(lo + hi) / 2. It stops early: at a saturated step (the generator, not the target, was
the bottleneck: what that step and every rate above it would show is not the target's),
when the first step already fails (no rate is known to hold), or when the bisections are
spent. The maximum sustainable rate is lo, known within hi − lo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from surge.api.sweep import Sweep

StopReason = Literal[
    "Bisected", "ReachedMaxRate", "StartRateFailed", "GeneratorSaturated", "Interrupted"
]


@dataclass(frozen=True, slots=True)
class StepResult:
    rate: float
    passed: bool
    saturated: bool = False
    """The generator could not send this step's schedule: neither pass nor fail."""


@dataclass(frozen=True, slots=True)
class Bracket:
    lo: float | None
    """The highest passing rate below every failing one; None when none passed."""
    hi: float | None
    """The lowest failing rate; None when none failed."""


def bracket(steps: Sequence[StepResult]) -> Bracket:
    """(lo, hi) from the judged steps. A passing step above a failing one (noise near the
    knee) does not raise lo: the capacity is the rate below which everything held."""
    judged = [s for s in steps if not s.saturated]
    failing = [s.rate for s in judged if not s.passed]
    hi = min(failing) if failing else None
    passing = [s.rate for s in judged if s.passed and (hi is None or s.rate < hi)]
    return Bracket(max(passing) if passing else None, hi)


def next_rate(sweep: Sweep, steps: Sequence[StepResult]) -> float | None:
    """The rate of the next step, or None when the sweep is done."""
    if any(s.saturated for s in steps):
        return None
    b = bracket(steps)
    if b.hi is None:
        geo = sweep.geometric_rates
        return geo[len(steps)] if len(steps) < len(geo) else None
    if b.lo is None:
        return None
    first_fail = next(i for i, s in enumerate(steps) if not s.passed)
    if len(steps) - 1 - first_fail >= sweep.bisections:
        return None
    return (b.lo + b.hi) / 2.0


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    max_sustainable_rps: float | None
    """The highest rate at which every threshold held (below every failing rate)."""
    first_failing_rps: float | None
    resolution_rps: float | None
    """hi − lo: the capacity lies in [maxSustainable, maxSustainable + resolution)."""
    stop: StopReason
    lower_bound: bool
    """True when the capacity may be higher than maxSustainable by more than the
    resolution: the sweep hit maxRate or the generator saturated before a failure."""


def outcome(
    sweep: Sweep, steps: Sequence[StepResult], *, interrupted: bool = False
) -> SweepOutcome:
    """What the steps found (call once next_rate is None, or when the run was stopped)."""
    b = bracket(steps)
    resolution = b.hi - b.lo if b.hi is not None and b.lo is not None else None
    stop: StopReason
    if interrupted:
        stop = "Interrupted"
    elif any(s.saturated for s in steps):
        stop = "GeneratorSaturated"
    elif b.hi is None:
        stop = "ReachedMaxRate"
    elif b.lo is None:
        stop = "StartRateFailed"
    else:
        stop = "Bisected"
    lower = b.hi is None and b.lo is not None
    return SweepOutcome(b.lo, b.hi, resolution, stop, lower)
