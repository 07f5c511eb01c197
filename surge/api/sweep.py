"""The capacity sweep (`load.model: sweep`): the rates a sweep may try and its timing.

Geometric steps startRate·factor^k (the last one clipped to maxRate), then `bisections`
steps between the last rate that held every threshold and the first that broke one.
Which rate comes next is surge.loadgen.sweep's (pure) decision; this is only the shape.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from surge.api.base import Model
from surge.api.bounds import MAX_RATE, MAX_SWEEP_STEPS
from surge.api.durations import Duration
from surge.api.thresholds import Threshold

DEFAULT_SETTLE_SHARE = 0.2
"""Without `settle`, the first 20 % of each step is excluded (connections, queues fill)."""


class Sweep(Model):
    start_rate: float = Field(ge=0.001, le=MAX_RATE)
    """The first step's rate, requests per second (the whole target, all its replicas)."""
    factor: float = Field(2.0, gt=1.0, le=10.0)
    """Each geometric step's rate is the previous one's times this."""
    max_rate: float = Field(ge=0.001, le=MAX_RATE)
    """The highest rate the sweep may send; the last geometric step is clipped to it."""
    step_duration: Duration
    """How long each step sends at its rate (settle included)."""
    bisections: int = Field(3, ge=0, le=10)
    """Steps between the last passing and the first failing rate once one failed; the
    capacity is then known within (first failing − last passing geometric rate) / 2^n."""
    settle: Duration | None = None
    """Time excluded at the start of each step; default 20 % of stepDuration."""

    @property
    def settle_s(self) -> float:
        return self.step_duration * DEFAULT_SETTLE_SHARE if self.settle is None else self.settle

    @property
    def geometric_steps(self) -> int:
        """How many geometric steps (maxRate's own included), by formula, never enumerated:
        1 + ceil(log(top / startRate) / log(factor)) with top just below maxRate."""
        return geometric_steps(self.start_rate, self.factor, self.max_rate)

    @property
    def geometric_rates(self) -> list[float]:
        """startRate·factor^k below maxRate, then maxRate itself. Only for a sweep within
        MAX_SWEEP_STEPS (validation refuses the others): ValueError otherwise."""
        n = self.geometric_steps
        if n > MAX_SWEEP_STEPS:
            raise ValueError(f"{n} geometric steps is more than {MAX_SWEEP_STEPS}")
        rates: list[float] = []
        rate, top = self.start_rate, self.max_rate * (1 - 1e-9)
        for _ in range(n - 1):
            if rate >= top:
                break
            rates.append(rate)
            rate *= self.factor
        rates.append(self.max_rate)
        return rates

    @property
    def max_steps(self) -> int:
        """The most steps a sweep can run: every geometric rate, then the bisections."""
        return self.geometric_steps + self.bisections

    @property
    def duration_s(self) -> float:
        """The longest the sweep's load can last (every step run; it usually stops sooner)."""
        return self.max_steps * self.step_duration

    @model_validator(mode="after")
    def _coherent(self) -> Sweep:
        if self.step_duration <= 0:
            raise ValueError("stepDuration must be more than 0s")
        if self.max_rate < self.start_rate:
            raise ValueError(
                f"maxRate ({self.max_rate:g}) is below startRate ({self.start_rate:g}); "
                "raise maxRate or lower startRate"
            )
        if self.max_steps > MAX_SWEEP_STEPS:
            raise ValueError(
                f"the sweep has {self.max_steps:,} steps (startRate to maxRate by factor "
                f"{self.factor!r}, plus bisections), more than {MAX_SWEEP_STEPS}; raise startRate "
                "or factor"
            )
        if self.settle_s >= self.step_duration:
            raise ValueError(
                f"settle ({self.settle_s:g}s) must be shorter than stepDuration "
                f"({self.step_duration:g}s), or no step measures anything"
            )
        return self


def geometric_steps(start_rate: float, factor: float, max_rate: float) -> int:
    """1 + the number of k >= 0 with startRate·factor^k below maxRate·(1 − 1e-9), by formula
    (capped at 10^12: a factor of 1.000000000001 asks for trillions, and is refused)."""
    top = max_rate * (1 - 1e-9)
    if start_rate >= top or factor <= 1.0:
        return 1
    below = math.log(top / start_rate) / math.log(factor)
    return 1 + math.ceil(min(below, 1e12))


_CLUSTER_FAMILIES = ("replicas", "cpu", "gpu")


def check_sweep_thresholds(thresholds: list[Threshold]) -> None:
    """A sweep's steps pass or fail on the thresholds, which the worker judges from its own
    measurements: cluster metrics (Prometheus, read after the run) cannot decide a step."""
    if not thresholds:
        raise ValueError(
            "thresholds: a sweep needs at least one (e.g. 'latency.p95 < 800ms', "
            "'errors.rate < 1%'): they decide which rates are sustainable"
        )
    for t in thresholds:
        if t.metric.split(".", 1)[0] in _CLUSTER_FAMILIES:
            raise ValueError(
                f"thresholds: {t.expression!r} is a cluster metric, known only after the run; "
                "a sweep's steps are judged on the generator's own metrics (latency, ttft, "
                "errors, throughput, goodput)"
            )


def check_sweep_load(load: Any) -> None:
    """The rest of a Load with model sweep (surge.api.loadtest.Load; Any: no import cycle)."""
    if load.sweep is None:
        raise ValueError("sweep: model sweep needs load.sweep (startRate, maxRate, stepDuration)")
    if load.stages or load.start_target is not None:
        raise ValueError(
            "stages: a sweep sets its own rates (load.sweep); drop stages and startTarget"
        )
    if load.warmup:
        raise ValueError("warmup: a sweep excludes load.sweep.settle at each step's start")
    if load.think_time:
        raise ValueError("thinkTime applies to the closed model only")
    if load.workers != 1:
        raise ValueError(
            "workers: a sweep runs in one worker (each step's rate depends on the whole "
            "previous step's result); set workers: 1"
        )
