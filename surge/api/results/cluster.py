"""The cluster section of a run's results: what Prometheus said over the measured window
(surge.results.cluster builds it; series are [seconds from the window start, value])."""

from __future__ import annotations

from pydantic import Field

from surge.api.base import Model


class SeriesStats(Model):
    unit: str = ""
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    """Time-weighted over the window."""
    last: float | None = None
    series: list[list[float]] = Field(default_factory=list)
    """Downsampled to at most 120 points."""


class ReplicaSummary(SeriesStats):
    time_to_first_scale_up_s: float | None = None
    """Seconds from the window start; None when it never scaled up."""
    time_to_peak_s: float | None = None
    replica_seconds: float | None = None
    scale_events: int | None = None


class GpuSummary(SeriesStats):
    memory: SeriesStats | None = None


class ClusterWindow(Model):
    start: float
    end: float
    step_seconds: float


class ClusterSection(Model):
    window: ClusterWindow
    queries: dict[str, str] = Field(default_factory=dict)
    """Query name -> the PromQL sent."""
    replicas: ReplicaSummary | None = None
    hpa: dict[str, SeriesStats | None] = Field(default_factory=dict)
    cpu: SeriesStats | None = None
    memory: SeriesStats | None = None
    gpu: GpuSummary | None = None
    loadgen: dict[str, SeriesStats | None] = Field(default_factory=dict)
    extra: dict[str, SeriesStats | None] = Field(default_factory=dict)
    """User-defined queries."""
    no_data: list[str] = Field(default_factory=list)
    no_data_reasons: dict[str, str] = Field(default_factory=dict)
    skipped: dict[str, str] = Field(default_factory=dict)
    """Query name -> why it was not sent."""
