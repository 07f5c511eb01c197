"""The traffic trace a `load.model: trace` replays: its rate curve's source and scaling.

The curve comes from inline `points`, a ConfigMap holding `t_seconds,rps` CSV, or a PromQL
range query. The operator (at admission) and `surge run` resolve the last two into `points`
(surge.loadgen.trace_resolve) and record where they came from in `resolvedFrom`, so the
plan every worker runs, and its hash, carry the curve itself. The curve on the load's clock
is the points with their times shifted to start at 0 and divided by `timeScale`, their
rates multiplied by `rateScale` (surge.loadgen.trace.scaled_points).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from surge.api.base import Model
from surge.api.bounds import MAX_RATE
from surge.api.durations import Duration, format_duration
from surge.api.scenario import ConfigMapKeyRef

MAX_POINTS = 10_000
"""The most points a curve may have, whatever its source (the plan must fit a ConfigMap)."""
MAX_TRACE_SECONDS = 1e10
"""A point's time (a CSV's may be Unix times: 1e10 is the year 2286)."""


class TracePoint(Model):
    t_seconds: float = Field(ge=0, le=MAX_TRACE_SECONDS, allow_inf_nan=False)
    """Seconds from the trace's start (the first point's time is the curve's 0)."""
    rps: float = Field(ge=0, le=MAX_RATE, allow_inf_nan=False)
    """Requests per second at that time."""


class TraceQuery(Model):
    """A PromQL range query over a past window, against spec.prometheus.url (or the
    operator's --prometheus-url); the policy's prometheusUrls and allowCustomQueries apply."""

    query: str = Field(min_length=1, max_length=4000)
    """One series of requests per second, e.g.
    sum(rate(http_requests_total{service="alice"}[1m]))."""
    start: datetime | None = Field(None, json_schema_extra={"maxLength": 64})
    """The window's start (RFC 3339); with `end`, or use `last`."""
    end: datetime | None = Field(None, json_schema_extra={"maxLength": 64})
    """The window's end (RFC 3339)."""
    last: Duration | None = None
    """The window that ends when the run is admitted, e.g. 24h (its end is rounded down to
    a whole step, so the samples sit on the step grid)."""
    step: Duration = 15.0
    """The query's resolution: one point per step."""

    @model_validator(mode="after")
    def _window(self) -> TraceQuery:
        pinned = self.start is not None or self.end is not None
        if self.last is not None and pinned:
            raise ValueError("set either last or start and end, not both")
        if self.last is None and (self.start is None or self.end is None):
            raise ValueError("the window needs start and end (RFC 3339), or last (e.g. 24h)")
        if self.start is not None and self.end is not None:
            if self.start.tzinfo is None or self.end.tzinfo is None:
                raise ValueError("start and end need a time zone, e.g. 2026-12-06T01:00:00Z")
            if self.end <= self.start:
                raise ValueError(f"end ({self.end.isoformat()}) must be after start")
        if self.step < 1.0:
            raise ValueError(f"step: {format_duration(self.step)} is under 1s; use 1s or more")
        n = math.floor(self.window_s / self.step) + 1
        if n > MAX_POINTS:
            least = format_duration(math.ceil(self.window_s / (MAX_POINTS - 1)))
            raise ValueError(
                f"step: the window ({format_duration(self.window_s)}) at step "
                f"{format_duration(self.step)} gives {n:,} points, over {MAX_POINTS:,}; "
                f"use step {least} or more"
            )
        return self

    @property
    def window_s(self) -> float:
        if self.last is not None:
            return self.last
        assert self.start is not None and self.end is not None
        return (self.end - self.start).total_seconds()


class Trace(Model):
    points: list[TracePoint] | None = Field(None, min_length=2, max_length=MAX_POINTS)
    """The curve itself (at least 2 points, times increasing)."""
    config_map_ref: ConfigMapKeyRef | None = None
    """A ConfigMap key holding `t_seconds,rps` CSV (a header line and # comments allowed);
    the ConfigMap needs the label surge.dev/usable: "true" where the policy asks for it."""
    prometheus: TraceQuery | None = None
    """A PromQL range query over a past window."""
    resolved_from: str | None = Field(None, max_length=2000)
    """Set by Surge when it resolves configMapRef or prometheus into points: the source,
    for status and results. Leave it unset."""
    arrivals: Literal["constant", "poisson"] = "poisson"
    """constant: evenly spaced at the curve's rate; poisson: random gaps at that rate."""
    interpolation: Literal["linear", "step"] = "linear"
    """Between two points the rate goes linearly to the next (linear) or holds (step)."""
    time_scale: float = Field(1.0, gt=0, le=100_000)
    """Divides the trace's time: 24 replays 24 h in 1 h (the rates stay as they were)."""
    rate_scale: float = Field(1.0, gt=0, le=100_000)
    """Multiplies every rate."""

    @field_validator("points")
    @classmethod
    def _increasing(cls, v: list[TracePoint] | None) -> list[TracePoint] | None:
        for i in range(1, len(v or [])):
            assert v is not None
            if v[i].t_seconds <= v[i - 1].t_seconds:
                raise ValueError(
                    f"[{i}].tSeconds ({v[i].t_seconds:g}) is not after [{i - 1}].tSeconds "
                    f"({v[i - 1].t_seconds:g}); sort the points by time and drop repeats"
                )
        return v

    @model_validator(mode="after")
    def _one_source(self) -> Trace:
        given = [
            name
            for name, value in (
                ("points", self.points),
                ("configMapRef", self.config_map_ref),
                ("prometheus", self.prometheus),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "set exactly one source of the curve: points, configMapRef or prometheus "
                f"(found {', '.join(given) or 'none'})"
            )
        if self.resolved_from is not None and self.points is None:
            raise ValueError("resolvedFrom is set by Surge with the resolved points; drop it")
        if self.points is not None and max(p.rps for p in self.points) <= 0:
            raise ValueError("points: every rate is 0: nothing would be sent")
        return self

    @property
    def resolved(self) -> bool:
        return self.points is not None

    @property
    def source(self) -> str:
        return self.resolved_from or f"trace from inline points, {len(self.points or [])} points"

    @property
    def duration_s(self) -> float | None:
        """The replay's length; None while a ConfigMap's curve is not read yet."""
        if self.points is not None:
            return (self.points[-1].t_seconds - self.points[0].t_seconds) / self.time_scale
        if self.prometheus is not None:
            return self.prometheus.window_s / self.time_scale
        return None

    @property
    def peak(self) -> float | None:
        """The highest rate of the replay; None until resolved."""
        if self.points is None:
            return None
        return max(p.rps for p in self.points) * self.rate_scale


def check_trace_load(load: Any) -> bool:
    """load.model trace and load.trace go together, without stages; True when the curve is
    not read yet (its length and peak are then unknown, and checked once it is)."""
    if (load.model == "trace") != (load.trace is not None):
        raise ValueError(
            "trace: model trace needs load.trace (its curve), and load.trace needs model trace"
        )
    if load.trace is None:
        return False
    if load.stages or load.start_target is not None:
        raise ValueError("stages: a trace's curve is load.trace; drop stages and startTarget")
    if load.think_time:
        raise ValueError("thinkTime applies to the closed model only")
    return not load.trace.resolved
