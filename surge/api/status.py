"""Status shapes shared by LoadTest and ScalingExperiment: phases, conditions, verdicts.

Every condition type and reason is listed here with its meaning (docs/status.md renders
the same table), so users and code read the same vocabulary.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field
from pydantic.config import JsonDict

from surge.api.base import Model


class Phase(StrEnum):
    PENDING = "Pending"
    WAITING_FOR_TARGET = "WaitingForTarget"
    RUNNING = "Running"
    ANALYZING = "Analyzing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ABORTED = "Aborted"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.ABORTED})
_ORDER = [Phase.PENDING, Phase.WAITING_FOR_TARGET, Phase.RUNNING, Phase.ANALYZING]


def can_transition(old: Phase | None, new: Phase) -> bool:
    """Phases only move forward within a run; a terminal phase is final until runId changes."""
    if old is None or old == new:
        return True
    if old.terminal:
        return False
    if new.terminal:
        return True
    return _ORDER.index(new) > _ORDER.index(old)


CONDITION_TYPES: dict[str, str] = {
    "Ready": "The current run is accepted and healthy (True), or it ended without succeeding "
    "(False, with the reason).",
    "TargetReady": "The target Deployment is available and its health URL answers.",
    "WorkersScheduled": "Every worker pod is Running and passed the start barrier.",
    "Completed": "The run ended, on every path (True in every terminal phase); the reason says "
    "how. `kubectl wait --for=condition=Completed` returns for any ending.",
    "ThresholdsPassed": "Every threshold held; False names the first that did not.",
    "SpecDrifted": "The spec changed during a run; the run goes on with the spec it started with.",
    "MetricsAvailable": "Every cluster query returned data for the measured window.",
    "Queued": "Another run holds the same target; this one waits.",
    "Retrying": "The last step hit a transient error (API server, network); it is retried with "
    "backoff until the phase's timeout. False once a step succeeds again.",
    "Suspended": "spec.suspend holds a run whose workers do not exist yet; it resumes when "
    "spec.suspend is false again.",
}

REASONS: dict[str, str] = {
    "InvalidSpec": "The spec failed validation; the message names the field and the fix.",
    "PolicyViolation": "The spec asks for what the cluster policy does not allow (an image, a "
    "target, placement, a Secret, a cap), or the run's plan ConfigMap holds a plan Surge did "
    "not write; the message names the field and the rule. Nothing was created.",
    "TargetNotReady": "The target was not ready within its timeout.",
    "Unschedulable": "A worker pod could not be scheduled within workersReady.",
    "ImagePullError": "A worker image could not be pulled.",
    "CrashLoopBackOff": "A worker container kept crashing.",
    "WorkerFailed": "A worker exited non-zero.",
    "WorkerMissingSummary": "A worker finished without a readable summary.",
    "GeneratorSaturated": "The load generator was the bottleneck (schedule lag p99, late or "
    "dropped sends; docs/metrics.md): the verdict is Inconclusive, and the message names "
    "the worker count or maxInFlight that would suffice.",
    "RunTimeout": "The load ran past its duration plus timeouts.runGrace.",
    "Suspended": "spec.suspend was set to true.",
    "Deleted": "The LoadTest was deleted during the run.",
    "ThresholdFailed": "At least one threshold did not hold.",
    "CapacityFound": "A capacity sweep found a rate at which every threshold held; the message "
    "gives the maximum sustainable rate (docs/metrics.md, Capacity sweep).",
    "ReplicasChanged": "The target's replica count changed during a capacity sweep (its "
    "autoscaler was not pinned), so no rate is per replica: the verdict is Inconclusive.",
    "AllRequestsFailed": "Every request of the measured window failed; status.summary.topErrors "
    "says why. Such a run never passes.",
    "AllThresholdsPassed": "Every threshold held.",
    "NoThresholds": "No thresholds were set; the run succeeds when the load completes.",
    "NoData": "A metric a threshold needs had no data; the threshold cannot pass.",
    "AllQueriesReturnedData": "Every cluster query returned data for the measured window.",
    "NoPrometheus": "No Prometheus is configured, so cluster metrics were not collected.",
    "TargetBusy": "Another LoadTest is running against the same target.",
    "TargetFree": "No other run holds the target.",
    "Accepted": "The spec is valid; the run's plan is stored in its ConfigMap.",
    "RunStarted": "A run began (first apply, or a new spec.runId).",
    "Waiting": "Still waiting; the message says for what.",
    "WaitingForTarget": "The run waits for its target to be ready.",
    "TargetReady": "The target answered its readiness checks.",
    "WorkersCreated": "The worker Job was created.",
    "WorkersNotReady": "Worker pods exist but are not all Running yet.",
    "BarrierOpened": "Every worker runs; the load starts at the given instant.",
    "WorkersFinished": "Every worker pod ended.",
    "Analyzing": "The workers finished; results are being merged.",
    "SpecChanged": "The spec changed during the run (SpecDrifted).",
    "SpecDrifted": "Event: the spec changed during the run; the change waits for the next run.",
    "RunLost": "The run's ConfigMap disappeared, so the run cannot go on.",
    "VariantApplied": "An experiment variant's Deployment and HPA specs were written.",
    "VariantMeasured": "A variant's child LoadTest ended; its row is in status.runs.",
    "Restored": "The target's original Deployment and HPA specs were written back.",
    "RolloutTimeout": "A variant did not roll out within rolloutTimeout (e.g. no GPU node free).",
    "BudgetExhausted": "The experiment's budget was spent; the originals were restored.",
    "ExperimentTimeout": "The experiment ran past spec.timeout; the originals were restored.",
    "Recommended": "Every variant ran; status.recommendation names the best.",
    "DryRun": "dryRun: the plan is in status.plan (or, when larger than 32 KiB, in the "
    "ConfigMap named by status.planConfigMap) and nothing was applied.",
    "JobRejected": "The API server refused the worker Job; the message is the server's.",
    "PlanTooLarge": "The run's plan (or a dry run's) does not fit a ConfigMap (1 MiB); use a "
    "smaller dataset, or dry-run fewer variants at a time.",
    "InternalError": "The operator failed on this object (a bug, or an object it cannot "
    "handle); the message names the error. What the run held is given back as on any failure; "
    "other objects are unaffected.",
    "Forbidden": "The operator is not allowed to do what the run needs (RBAC); the message "
    "names the request.",
    "ApiRejected": "The API server refused a request for good (4xx); the message is the server's.",
    "TransientError": "A request failed in a way that may pass (5xx, 429, no answer); retried.",
    "Recovered": "A step succeeded after transient errors.",
    "QueueTimeout": "Another run held the target for longer than timeouts.queued.",
    "AnalysisTimeout": "Results could not be collected within timeouts.analysis.",
    "WorkersTimeout": "The workers could not be created or observed within timeouts.workersReady.",
    "RunIdReused": "spec.runId names a run in status.history; runs are never repeated, choose "
    "a new runId.",
    "ObjectNotOwned": "An object the run would create exists already and is not owned by this "
    "resource; nothing was adopted.",
    "Resumed": "spec.suspend was set back to false before the workers were created.",
    "Finished": "The run ended; the phase and the Completed condition's reason say how.",
    "TargetModified": "Someone else changed the target during the experiment (a rollout, a "
    "revert of the variant): the experiment stopped, their values were kept, the variant's "
    "other fields restored.",
    "TargetDeleted": "The target Deployment was deleted (or replaced by another object of that "
    "name) during the experiment; nothing was written to it.",
    "SnapshotLost": "The snapshot of the originals is missing, altered or not the experiment's "
    "own; nothing was written from it.",
    "Simulated": "spec.simulation.liveTopK: every variant was simulated; the message names the "
    "ones that run live, and status.predictions holds every prediction.",
    "SimulationInvalid": "spec.simulation.liveTopK is set but the simulation cannot run (an "
    "unknown pool, a variant without an HPA, missing capacity); the message names the field. "
    "Nothing was applied.",
}


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


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


class ErrorReason(Model):
    """Failed requests of one reason (results.errors.reasons; docs/metrics.md)."""

    error_class: str
    """connect, timeout, http_3xx, http_4xx, http_5xx, protocol (or other: the rest)."""
    reason: str = ""
    count: int


class Summary(Model):
    """The few numbers the printer columns show."""

    target_rps: float | None = None
    achieved_rps: float | None = None
    p95_ms: float | None = None
    error_rate: float | None = None
    top_errors: list[ErrorReason] = Field(default_factory=list)
    """The most counted reasons requests failed, at most 3 (all: results.errors.reasons)."""
    verdict: Literal["Passed", "Failed", "Inconclusive"] | None = None
    max_sustainable_rps: float | None = None
    """Capacity sweep: the highest rate at which every threshold held."""
    max_sustainable_rps_per_replica: float | None = None
    """Capacity sweep: maxSustainableRps ÷ the target's (unchanged) replicas."""


class WorkerCounts(Model):
    expected: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    reported: int = 0
    missing: list[int] = Field(default_factory=list)
    """Indexes of workers that finished without a readable summary."""


class RunRecord(Model):
    """One finished run, kept in status.history (newest first)."""

    run_id: str
    phase: Phase
    start_time: str | None = None
    completion_time: str | None = None
    summary: Summary = Field(default_factory=Summary)
    thresholds: list[ThresholdResult] = Field(default_factory=list)
    message: str = ""


class Retry(Model):
    """A step that hit a transient error: how often, and not before when it is tried again."""

    attempts: int
    after: str
    message: str = ""


class LeaseRef(Model):
    """The target Lease this run holds (operator/kube/target_lease.py)."""

    namespace: str
    name: str
    target: str
    """The target key: deployment/<namespace>/<name>, or url/<host:port>."""


CONDITIONS_AS_MAP: JsonDict = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
"""Conditions are a map keyed by type (API conventions): one entry per type, merged by type."""


class LoadTestStatus(Model):
    phase: Phase | None = None
    """None until the operator accepts the run."""
    run_id: str | None = None
    observed_generation: int | None = None
    """The metadata.generation the operator last processed."""
    run_generation: int | None = None
    """The generation the current run started with (later edits set SpecDrifted)."""
    message: str = ""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_AS_MAP)
    deadline: str | None = None
    """When the current waiting phase times out (RFC 3339), with `deadlineReason`."""
    deadline_reason: str | None = None
    retry: Retry | None = None
    lease: LeaseRef | None = None
    plan_sha256: str | None = None
    """SHA-256 of the run's plan as admitted; the operator and every worker refuse a plan
    ConfigMap whose content has another (PolicyViolation)."""
    load_source: str | None = None
    """load.model trace: where the replayed curve came from, as admitted (its query and
    window, or its ConfigMap; its points and scaling)."""
    workers_to_delete: bool = False
    """The verdict is written; the worker Job is deleted once that write is read back."""
    start_time: str | None = None
    load_start_time: str | None = None
    """The start barrier: the instant every worker began sending (RFC 3339)."""
    completion_time: str | None = None
    workers: WorkerCounts = Field(default_factory=WorkerCounts)
    summary: Summary = Field(default_factory=Summary)
    results: dict[str, Any] | None = None
    """The merged results (docs/metrics.md), the same JSON that `surge run --out` writes."""
    thresholds: list[ThresholdResult] = Field(default_factory=list)
    history: list[RunRecord] = Field(default_factory=list)
    """The last runs, newest first (at most 5)."""
