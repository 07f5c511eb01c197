"""A capacity sweep's sections of a run's results: its steps, what they found, and the
capacity per replica (docs/metrics.md, "Capacity sweep")."""

from __future__ import annotations

from pydantic import Field

from surge.api.base import Model
from surge.api.results.sections import Requests
from surge.api.sweep import Sweep


class StepLatency(Model):
    """Milliseconds."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


class StepWindow(Model):
    start: float
    end: float


class SweepStep(Model):
    """One step, computed by the worker as it ends (surge.loadgen.sweep_results.step_record);
    replicas, per-replica rates and CPU per request are filled once the cluster is known."""

    index: int = 0
    rate: float
    """The rate the step asked for, requests per second."""
    achieved_rps: float | None = None
    sent_rps: float | None = None
    latency: StepLatency = Field(default_factory=StepLatency)
    ttft: StepLatency | None = None
    error_rate: float | None = None
    requests: Requests = Field(default_factory=Requests)
    passed: bool = False
    saturated: str | None = None
    """Why the generator was the bottleneck in this step, or None."""
    interrupted: bool = False
    thresholds: list[str] = Field(default_factory=list)
    """Each threshold's display at this step."""
    window: StepWindow
    metrics: dict[str, float | None] = Field(default_factory=dict)
    """What the thresholds read, to judge them again at the capacity step."""
    replicas: int | None = None
    replicas_source: str | None = None
    replicas_changed: bool = False
    rate_per_replica: float | None = None
    achieved_rps_per_replica: float | None = None
    cpu_seconds_per_request: float | None = None


class SweepSection(Model):
    config: Sweep
    settle_seconds: float
    steps: list[SweepStep] = Field(default_factory=list)
    max_sustainable_rps: float | None = None
    first_failing_rps: float | None = None
    resolution_rps: float | None = None
    lower_bound: bool = False
    """Every step up to maxRate held: the capacity is at least maxSustainableRps."""
    stop: str = ""
    saturated: str | None = None
    """The first step's saturation message, when the generator was the bottleneck."""

    def capacity_step(self) -> SweepStep | None:
        """The step at the capacity (the highest passing rate below every failure), else
        the first step; None without steps. Its thresholds are the ones a sweep reports."""
        best = self.max_sustainable_rps
        at = next((s for s in self.steps if s.rate == best and s.passed), None)
        return at or (self.steps[0] if self.steps else None)


class Capacity(Model):
    max_sustainable_rps: float | None = None
    max_sustainable_rps_per_replica: float | None = None
    """None when the replicas changed during the sweep."""
    replicas: int | None = None
    replicas_seen: list[int] = Field(default_factory=list)
    cpu_seconds_per_request: float | None = None
    resolution_rps: float | None = None
    lower_bound: bool | None = None
    inconclusive: str | None = None
    """Why no rate is per replica (ReplicasChanged), or None."""
