"""RunResults: one run's merged results, the same document in status.results, in
`surge run --out` files and behind every report (docs/results.md).

Built by one function (surge.loadgen.aggregate.compute_results) from the merged
histograms; the verdict and the judged thresholds are recorded in it
(surge.loadgen.analysis), so every reader shows the verdict the run got.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError

from surge.api.base import Model
from surge.api.reasons import Reason
from surge.api.results.cluster import ClusterSection
from surge.api.results.sections import (
    ErrorReason,
    Errors,
    Generator,
    Goodput,
    Latency,
    LatencyStats,
    Requests,
    ScheduleLag,
    Spectrum,
    Throughput,
    TimeseriesPoint,
    Tokens,
    Window,
    WorkerSet,
)
from surge.api.results.sweep import Capacity, SweepSection
from surge.api.results.trace import TraceSection

RESULTS_VERSION = 2
"""2: the verdict is one object (verdict: {outcome, reason, message}); 1 had verdict,
verdictReason and verdictMessage side by side (still read)."""
READABLE_VERSIONS = (1, 2)


class Verdict(StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


class RunVerdict(Model):
    """The verdict the run was given, with its reason and why."""

    outcome: Verdict
    reason: Reason
    message: str = ""


class ThresholdResult(Model):
    expression: str
    metric: str
    op: str
    limit: float
    """In the metric's base unit (seconds, ratio 0..1, per second, count)."""
    measured: float | None = None
    """None when the metric had no data; such a threshold fails."""
    passed: bool
    display: str = ""
    """Human form: 'latency.p95 = 412ms < 800ms ✓'."""


class Summary(Model):
    """The few numbers the printer columns show."""

    target_rps: float | None = None
    achieved_rps: float | None = None
    p95_ms: float | None = None
    error_rate: float | None = None
    top_errors: list[ErrorReason] = Field(default_factory=list)
    """The most counted reasons requests failed, at most 3 (all: results.errors.reasons)."""
    verdict: Verdict | None = None
    max_sustainable_rps: float | None = None
    """Capacity sweep: the highest rate at which every threshold held."""
    max_sustainable_rps_per_replica: float | None = None
    """Capacity sweep: maxSustainableRps ÷ the target's (unchanged) replicas."""


class ResultsError(ValueError):
    """A document that is not readable Surge results; the message says why and what to do."""


class RunResults(Model):
    """The merged results (docs/metrics.md), the same JSON that `surge run --out` writes."""

    version: int = RESULTS_VERSION
    loadtest: str = ""
    namespace: str = ""
    run_id: str = ""
    variant: str | None = None
    load_model: str = Field("constant", alias="model")
    """spec.load.model: constant, poisson, closed or sweep."""
    workers: WorkerSet = Field(default_factory=WorkerSet)
    interrupted: bool = False
    summary: Summary = Field(default_factory=Summary)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    """Flat metrics by the names thresholds use (surge.api.thresholds.METRICS), base units."""
    throughput: Throughput = Field(default_factory=Throughput)
    latency: Latency = Field(default_factory=Latency)
    service_time: LatencyStats = Field(default_factory=LatencyStats)
    ttft: LatencyStats = Field(default_factory=LatencyStats)
    ttft_content: LatencyStats = Field(default_factory=LatencyStats)
    tpot: LatencyStats = Field(default_factory=LatencyStats)
    itl: LatencyStats = Field(default_factory=LatencyStats)
    ntpot: LatencyStats = Field(default_factory=LatencyStats)
    schedule_lag: ScheduleLag = Field(default_factory=ScheduleLag)
    errors: Errors = Field(default_factory=Errors)
    requests: Requests = Field(default_factory=Requests)
    goodput: Goodput = Field(default_factory=Goodput)
    tokens: Tokens = Field(default_factory=Tokens)
    window: Window = Field(default_factory=Window)
    spectrum: dict[str, Spectrum] = Field(default_factory=dict)
    """Percentile spectra of latency, ttft and tpot (report plots)."""
    generator: Generator = Field(default_factory=Generator)
    timeseries: list[TimeseriesPoint] = Field(default_factory=list)
    cluster: ClusterSection | None = None
    """What Prometheus said over the measured window; None without Prometheus."""
    sweep: SweepSection | None = None
    capacity: Capacity | None = None
    trace: TraceSection | None = None
    """load.model trace: the replayed curve beside the achieved per-second counts."""
    thresholds: list[ThresholdResult] = Field(default_factory=list)
    """The thresholds as judged for the verdict (a sweep's: at its capacity step)."""
    verdict: RunVerdict | None = None
    """None only until the run is judged."""

    @property
    def open_loop(self) -> bool:
        return self.load_model != "closed"

    def to_json(self) -> dict[str, Any]:
        """The wire form (camelCase, every field, None as null)."""
        return self.model_dump(mode="json", by_alias=True)


def load_results(doc: Any, source: str = "results") -> RunResults:
    """RunResults from a document of any readable version; ResultsError naming the version
    (or the field) otherwise. Version 1's flat verdict keys become the verdict object."""
    if not isinstance(doc, dict):
        raise ResultsError(f"{source}: not a JSON object")
    version = doc.get("version")
    if version not in READABLE_VERSIONS:
        readable = ", ".join(map(str, READABLE_VERSIONS))
        raise ResultsError(
            f"{source}: results version {version!r} is not one this Surge reads ({readable}); "
            "use the Surge release that wrote it, or run the test again"
        )
    data = dict(doc)
    if version == 1:
        outcome = data.pop("verdict", None)
        reason, message = data.pop("verdictReason", ""), data.pop("verdictMessage", "")
        if outcome:
            data["verdict"] = {"outcome": outcome, "reason": reason or "", "message": message or ""}
        data["version"] = RESULTS_VERSION
    try:
        return RunResults.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ResultsError(
            f"{source}: results version {version}: {where}: {first['msg']} "
            f"({exc.error_count()} problem(s)); see docs/results.md"
        ) from None
