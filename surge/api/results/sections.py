"""The load generator's sections of a run's results: throughput, latency families, errors,
requests, goodput, tokens, window, spectrum, generator CPU and the per-second timeseries.

Every formula and denominator is in docs/metrics.md; times here are milliseconds unless a
field's name says seconds (…Seconds, …S), rates are per second, ratios 0..1, None is no data.
"""

from __future__ import annotations

from pydantic import Field

from surge.api.base import Model


class WorkerSet(Model):
    count: int = 1
    """Workers the run planned (load.workers)."""
    reported: list[int] = Field(default_factory=list)
    """Indexes of the workers whose summaries were merged."""


class LatencyStats(Model):
    """One timing family's percentiles over the measured window, in milliseconds."""

    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None


class Latency(LatencyStats):
    from_: str = Field("intended send", alias="from")
    """'intended send' (open loop: from the schedule's due time) or 'actual send'."""


class ScheduleLag(LatencyStats):
    min_ms: float | None = None
    """The exact, signed smallest lag (actual − intended send); negative if one left early."""
    early: int = 0
    """Window sends that left before their due time."""


class Throughput(Model):
    target_rps: float | None = None
    """What the schedule asked for over the planned window (open loop only)."""
    achieved_rps: float | None = None
    """ok responses ÷ the real span (window.measuredSeconds)."""
    sent_rps: float | None = None
    achieved_ratio: float | None = None
    """achievedRps ÷ targetRps."""
    denominator: str = "real span seconds (window.measuredSeconds)"


class ErrorReason(Model):
    """Failed requests of one reason (results.errors.reasons; docs/metrics.md)."""

    error_class: str
    """connect, timeout, http_3xx, http_4xx, http_5xx, protocol (or other: the rest)."""
    reason: str = ""
    count: int


class Errors(Model):
    rate: float | None = None
    """Failed requests ÷ sent; None when nothing was sent."""
    count: int = 0
    by_class: dict[str, int] = Field(default_factory=dict)
    """Failed requests by error class (surge.loadgen.outcome.ERROR_CLASSES)."""
    reasons: list[ErrorReason] = Field(default_factory=list)
    """Failed requests by reason, the most counted first (bounded: the rest under 'other')."""


class Requests(Model):
    sent: int = 0
    completed: int = 0
    """ok + failed."""
    ok: int = 0
    dropped: int = 0
    late: int = 0
    """Window sends that left after the window's planned end (the generator fell behind)."""
    late_max_seconds: float | None = None


class Goodput(Model):
    rps: float | None = None
    ratio: float | None = None
    """Good requests (ok and within every per-request SLO) ÷ attempted (sent + dropped)."""


class Tokens(Model):
    output: int = 0
    input: int | None = None
    """None without usage: input tokens are known only from usage."""
    output_rps: float | None = None
    input_rps: float | None = None
    from_usage: int = 0
    """Streams whose output tokens came from the server's usage."""
    from_chunks: int = 0
    """Streams whose output tokens were counted as content chunks (may undercount)."""
    exact: bool | None = None
    note: str | None = None


class Window(Model):
    """The measured window, epoch seconds and lengths in seconds."""

    start: float = 0.0
    end: float = 0.0
    measured_seconds: float = 0.0
    """The real span: the planned window, or up to the last late send when later."""
    planned_seconds: float = 0.0
    late_seconds: float = 0.0
    warmup_seconds: float = 0.0
    steps_measured_seconds: float | None = None
    """Capacity sweep: the steps' measured seconds added up (start..end spans every step)."""


class Spectrum(Model):
    count: int = 0
    points: list[list[float]] = Field(default_factory=list)
    """[percentile, seconds] pairs (surge.loadgen.hdr.percentile_spectrum)."""


class CpuRecord(Model):
    """One worker's CPU over its window (surge.loadgen.cpustat): seconds, shares 0..1."""

    worker: int = 0
    wall_s: float = 0.0
    process_s: float = 0.0
    loop_s: float = 0.0
    loop_wait_s: float | None = None
    periods: float | None = None
    throttled: float | None = None
    throttled_s: float | None = None
    quota_cores: float | None = None
    loop_share: float | None = None
    quota_share: float | None = None
    throttled_share: float | None = None
    saturated: str | None = None
    """Why the worker was CPU-bound, or None."""
    demand: float | None = None
    """The share of its capacity it used or wanted (at least 1 when throttled)."""


class Generator(Model):
    cpu: list[CpuRecord] = Field(default_factory=list)


class TimeseriesPoint(Model):
    """One second since the load began (from the workers' progress records)."""

    t: int
    measured: bool = False
    """Inside the measured window (after the warm-up)."""
    rps: int = 0
    """ok responses completed in that second."""
    errors: int = 0
    dropped: int = 0
    in_flight: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    target_rps: float | None = None
    """The schedule's mean rate over that second (open loop): the stage profile."""
