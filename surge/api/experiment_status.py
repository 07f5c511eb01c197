"""What the operator writes into a ScalingExperiment's status: the step it is at, one row per
run, one comparison row per variant, the dry-run plan. The CRD's status schema is generated
from these models and the operator writes only through them (dumped by alias)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from surge.api.base import Model
from surge.api.bounds import MAX_VARIANTS
from surge.api.status import CONDITIONS_AS_MAP, Condition, LeaseRef, Phase


class ExperimentStage(StrEnum):
    """Where a variant's run is: its specs written, rolling out, under load, the originals
    written back, then the cooldown before the next variant."""

    APPLY = "Apply"
    ROLL_OUT = "RollOut"
    TEST = "Test"
    RESTORE = "Restore"
    COOLDOWN = "Cooldown"


class WrittenField(Model):
    """One field of the target the current variant wrote (experiment/owned_fields.py paths),
    with the value read back after the write."""

    path: list[str]
    value: Any = None


class ExperimentStep(Model):
    """Where the experiment is: run index, stage, since when, and the current run's samples."""

    index: int
    stage: ExperimentStage
    since: str
    variant: str
    repetition: int
    pending_seconds: float | None = None
    """RollOut: seconds the variant's pods sat unschedulable (a node pool scaling up)."""
    pending_reason: str | None = None
    rollout_seconds: float | None = None
    last_sample: str | None = None
    hpa_in_force: dict[str, Any] | None = None
    """The HPA spec read back when the run's load started."""
    replica_seconds: float | None = None
    observed_seconds: float | None = None
    replicas_min: int | None = None
    replicas_max: int | None = None
    replica_series: list[list[float]] | None = None
    """[seconds since the load began, replicas] at each change."""
    replica_series_cut_s: float | None = None
    """Where replicaSeries stopped recording changes (its cap): it holds until here only."""
    written: list[WrittenField] | None = None
    """The Deployment fields this variant wrote (only these are restored, three-way)."""
    rest_digest: str | None = None
    """A digest of the rest of the Deployment spec after the write: a change is an owner's edit."""
    hpa_written: dict[str, Any] | None = None
    """The HPA spec this variant wrote; None when the variant leaves the HPA alone."""
    scaled_object_written: list[WrittenField] | None = None
    """The ScaledObject fields this variant wrote (experiment/scaled_object_fields.py paths),
    as read back; None when the variant leaves the ScaledObject alone."""
    scaled_object_uid: str | None = None
    """The uid of the ScaledObject written: restores and deletes go only to that object."""
    scaled_object_in_force: dict[str, Any] | None = None
    """The ScaledObject spec read back when the run's load started."""


class HpaInForce(Model):
    """The HPA a run ran under, in brief: its bounds, and a digest of its whole spec (two runs
    with one digest ran under the same HPA)."""

    min_replicas: int | None = None
    max_replicas: int | None = None
    metrics: int = 0
    """How many metrics it scaled on."""
    digest: str = ""
    """SHA-256 (first 16 hex digits) of the spec as canonical JSON."""


class ScaledObjectInForce(Model):
    """The KEDA ScaledObject a run ran under, in brief: bounds, intervals, its triggers'
    types (the first 8) and a digest of its whole spec."""

    min_replica_count: int | None = None
    max_replica_count: int | None = None
    polling_interval: int | None = None
    cooldown_period: int | None = None
    triggers: list[str] = Field(default_factory=list, max_length=8)
    digest: str = ""
    """SHA-256 (first 16 hex digits) of the spec as canonical JSON."""


class RunRow(Model):
    """One run of one variant: the child LoadTest's numbers, replicas and cost."""

    name: str
    repetition: int
    load_test: str | None = None
    phase: str | None = None
    passed: bool = False
    reason: str | None = None
    message: str | None = None
    achieved_rps: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    ttft_p95_ms: float | None = None
    error_rate: float | None = None
    requests: int | None = None
    replicas_min: float | None = None
    replicas_max: float | None = None
    replicas_mean: float | None = None
    time_to_scale_up_s: float | None = None
    scale_events: float | None = None
    replica_seconds: float | None = None
    replica_source: Literal["prometheus", "operator"] | None = None
    price_per_replica_hour: float | None = None
    replica_hours: float | None = None
    cost: float | None = None
    cost_per1k_requests: float | None = Field(None, alias="costPer1kRequests")
    pending_seconds: float | None = None
    rollout_seconds: float | None = None
    hpa_in_force: HpaInForce | None = None
    """The HPA read back when the run's load started, in brief (the whole spec is in
    status.step while the run goes on): a row of every run must stay small."""
    scaled_object_in_force: ScaledObjectInForce | None = None
    """The ScaledObject read back when the run's load started, in brief, as hpaInForce."""
    replica_series: list[list[float]] | None = None
    """[seconds, replicas] at each change; rows share MAX_RUN_SERIES_TOTAL points, so a row
    of an experiment of many runs keeps every k-th change (and the last)."""
    replica_series_end_s: float | None = None


Range = list[float] | None


class ComparisonRow(Model):
    """One variant over its repetitions: the mean of each metric and its [low, high]."""

    name: str
    repetitions: int
    passed: bool
    achieved_rps: float | None = None
    achieved_rps_range: Range = None
    p95_ms: float | None = None
    p95_ms_range: Range = None
    p99_ms: float | None = None
    p99_ms_range: Range = None
    ttft_p95_ms: float | None = None
    ttft_p95_ms_range: Range = None
    error_rate: float | None = None
    error_rate_range: Range = None
    replicas_min: float | None = None
    replicas_min_range: Range = None
    replicas_mean: float | None = None
    replicas_mean_range: Range = None
    replicas_max: float | None = None
    replicas_max_range: Range = None
    time_to_scale_up_s: float | None = None
    time_to_scale_up_s_range: Range = None
    replica_seconds: float | None = None
    replica_seconds_range: Range = None
    scale_events: float | None = None
    scale_events_range: Range = None
    cost: float | None = None
    cost_range: Range = None
    cost_per1k_requests: float | None = Field(None, alias="costPer1kRequests")
    cost_per1k_requests_range: Range = Field(None, alias="costPer1kRequestsRange")
    predicted_cost: float | None = None
    """spec.simulation.liveTopK: what the simulation predicted, next to the measured values."""
    predicted_cost_per1k_requests: float | None = Field(None, alias="predictedCostPer1kRequests")
    predicted_p95_ms: float | None = None
    predicted_slo_violation_seconds: int | None = None
    predicted_rank: int | None = None


COMPARED: tuple[str, ...] = (
    "achieved_rps",
    "p95_ms",
    "p99_ms",
    "ttft_p95_ms",
    "error_rate",
    "replicas_min",
    "replicas_mean",
    "replicas_max",
    "time_to_scale_up_s",
    "replica_seconds",
    "scale_events",
    "cost",
    "cost_per1k_requests",
)
"""The RunRow fields a ComparisonRow aggregates (each has a `<field>_range` beside it)."""


MAX_PREDICTED_POINTS = 200
"""The most change points a prediction's replica timeline keeps: 200 × 2 numbers per variant."""
MAX_PREDICTED_TOTAL = 4000
"""The most change points of all predictions together: 200 each up to 20 variants, fewer
each beyond (100 variants × 200 points made a 320 KB status)."""


class Prediction(Model):
    """spec.simulation.liveTopK: one variant as `surge simulate` predicts it under the
    experiment's load, ranked by the objective (docs/experiments.md, "Simulate, then confirm")."""

    variant: str
    rank: int
    """1 is the best by the objective."""
    live: bool
    """Whether it runs live; false: skipped, only predicted."""
    selection: Literal["TopK", "Baseline", "Skipped"]
    pool: str
    cost: float | None = None
    """Replica-hours × price; None without a price for the variant's pool."""
    cost_per1k_requests: float | None = Field(None, alias="costPer1kRequests")
    replica_seconds: float
    slo_violation_seconds: int
    p95_ms: float | None = None
    """The worst per-second p95 over the load; None when some second had no Ready pod."""
    sustainable_rps: float
    """maxReplicas × the rate one replica serves within the SLO."""
    replica_series: list[list[float]] | None = Field(None, max_length=MAX_PREDICTED_POINTS)
    """[seconds since the load began, replicas] at each predicted change (spec.replicas after
    an HPA sync), the first at 0; at most 200 points (MAX_PREDICTED_POINTS), and 4,000 over
    all the variants (MAX_PREDICTED_TOTAL): status stays small."""
    replica_series_end_s: float | None = None
    """Up to when the series is complete: the load's length, or the time of the first change
    left out when the series hit its cap (the simulator error stops there)."""


class PlanEntry(Model):
    """dryRun: the Deployment and HPA specs one variant would run with."""

    variant: str
    deployment: dict[str, Any]
    hpa: dict[str, Any] | None = None
    scaled_object: dict[str, Any] | None = None


class ScalingExperimentStatus(Model):
    phase: Phase | None = None
    observed_generation: int | None = None
    """The metadata.generation the operator last processed."""
    run_generation: int | None = None
    """The generation the experiment started with; its spec is frozen from then on."""
    target_uid: str | None = None
    """The uid of the Deployment the experiment started on; writes go only to that object."""
    snapshot_digest: str | None = None
    """Digest of the snapshot ConfigMap's data: a changed or missing snapshot stops the
    experiment (SnapshotLost) before anything is written from it."""
    message: str = ""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_AS_MAP)
    lease: LeaseRef | None = None
    """The Lease of the load's target, shared with the experiment's own LoadTests."""
    deployment_lease: LeaseRef | None = None
    """The Lease of spec.targetRef.deployment: one experiment changes a Deployment at a time,
    whichever URL its load goes to."""
    start_time: str | None = None
    completion_time: str | None = None
    current_variant: str | None = None
    step: ExperimentStep | None = None
    runs: list[RunRow] = Field(default_factory=list)
    """One row per variant and repetition, in the order they ran."""
    comparison: list[ComparisonRow] = Field(default_factory=list)
    """One row per variant (mean and range over repetitions), best first."""
    recommendation: str | None = None
    predictions: list[Prediction] = Field(default_factory=list)
    """spec.simulation.liveTopK: every variant's prediction, best first; those not run live
    are skipped."""
    plan: list[PlanEntry] = Field(default_factory=list, max_length=MAX_VARIANTS)
    """dryRun: the Deployment and HPA specs each variant would run with (when they fit 32 KiB;
    else they are in planConfigMap)."""
    plan_config_map: str | None = None
    """dryRun: the ConfigMap (key plan.json) holding a plan too large for status."""
