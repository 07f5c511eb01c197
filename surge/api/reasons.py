"""The status vocabulary: every condition type and every reason, with its meaning.

docs/status.md renders the same table (tests/api/test_docs.py enumerates Reason). Code
passes a Reason, never a string, so mypy keeps the operator to this list.
"""

from __future__ import annotations

from enum import StrEnum

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


class Reason(StrEnum):
    """Every reason a condition, a phase change or an event gives (meanings: REASONS)."""

    INVALID_SPEC = "InvalidSpec"
    POLICY_VIOLATION = "PolicyViolation"
    TARGET_NOT_READY = "TargetNotReady"
    UNSCHEDULABLE = "Unschedulable"
    IMAGE_PULL_ERROR = "ImagePullError"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    WORKER_FAILED = "WorkerFailed"
    WORKER_MISSING_SUMMARY = "WorkerMissingSummary"
    GENERATOR_SATURATED = "GeneratorSaturated"
    ALL_REQUESTS_FAILED = "AllRequestsFailed"
    RUN_TIMEOUT = "RunTimeout"
    SUSPENDED = "Suspended"
    DELETED = "Deleted"
    THRESHOLD_FAILED = "ThresholdFailed"
    CAPACITY_FOUND = "CapacityFound"
    REPLICAS_CHANGED = "ReplicasChanged"
    ALL_THRESHOLDS_PASSED = "AllThresholdsPassed"
    NO_THRESHOLDS = "NoThresholds"
    NO_DATA = "NoData"
    ALL_QUERIES_RETURNED_DATA = "AllQueriesReturnedData"
    NO_PROMETHEUS = "NoPrometheus"
    TARGET_BUSY = "TargetBusy"
    TARGET_FREE = "TargetFree"
    ACCEPTED = "Accepted"
    RUN_STARTED = "RunStarted"
    WAITING = "Waiting"
    WAITING_FOR_TARGET = "WaitingForTarget"
    TARGET_READY = "TargetReady"
    WORKERS_CREATED = "WorkersCreated"
    WORKERS_NOT_READY = "WorkersNotReady"
    BARRIER_OPENED = "BarrierOpened"
    WORKERS_FINISHED = "WorkersFinished"
    ANALYZING = "Analyzing"
    SPEC_CHANGED = "SpecChanged"
    SPEC_DRIFTED = "SpecDrifted"
    RUN_LOST = "RunLost"
    VARIANT_APPLIED = "VariantApplied"
    VARIANT_MEASURED = "VariantMeasured"
    RESTORED = "Restored"
    ROLLOUT_TIMEOUT = "RolloutTimeout"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    EXPERIMENT_TIMEOUT = "ExperimentTimeout"
    RECOMMENDED = "Recommended"
    DRY_RUN = "DryRun"
    JOB_REJECTED = "JobRejected"
    PLAN_TOO_LARGE = "PlanTooLarge"
    INTERNAL_ERROR = "InternalError"
    FORBIDDEN = "Forbidden"
    API_REJECTED = "ApiRejected"
    TRANSIENT_ERROR = "TransientError"
    RECOVERED = "Recovered"
    QUEUE_TIMEOUT = "QueueTimeout"
    ANALYSIS_TIMEOUT = "AnalysisTimeout"
    WORKERS_TIMEOUT = "WorkersTimeout"
    RUN_ID_REUSED = "RunIdReused"
    OBJECT_NOT_OWNED = "ObjectNotOwned"
    RESUMED = "Resumed"
    FINISHED = "Finished"
    TARGET_MODIFIED = "TargetModified"
    TARGET_DELETED = "TargetDeleted"
    SNAPSHOT_LOST = "SnapshotLost"
    SIMULATED = "Simulated"
    SIMULATION_INVALID = "SimulationInvalid"
    SCALER_CONFLICT = "ScalerConflict"


REASONS: dict[Reason, str] = {
    Reason.INVALID_SPEC: "The spec failed validation; the message names the field and the fix.",
    Reason.POLICY_VIOLATION: (
        "The spec asks for what the cluster policy does not allow (an image, a target, "
        "placement, a Secret, a cap), or the run's plan ConfigMap holds a plan Surge did not "
        "write; the message names the field and the rule. Nothing was created."
    ),
    Reason.TARGET_NOT_READY: "The target was not ready within its timeout.",
    Reason.UNSCHEDULABLE: "A worker pod could not be scheduled within workersReady.",
    Reason.IMAGE_PULL_ERROR: "A worker image could not be pulled.",
    Reason.CRASH_LOOP_BACK_OFF: "A worker container kept crashing.",
    Reason.WORKER_FAILED: "A worker exited non-zero.",
    Reason.WORKER_MISSING_SUMMARY: "A worker finished without a readable summary.",
    Reason.GENERATOR_SATURATED: (
        "The load generator was the bottleneck (schedule lag p99, late or dropped sends; "
        "docs/metrics.md): the verdict is Inconclusive, and the message names the worker "
        "count or maxInFlight that would suffice."
    ),
    Reason.ALL_REQUESTS_FAILED: (
        "Every request of the measured window failed; status.summary.topErrors says why. "
        "Such a run never passes."
    ),
    Reason.RUN_TIMEOUT: "The load ran past its duration plus timeouts.runGrace.",
    Reason.SUSPENDED: "spec.suspend was set to true.",
    Reason.DELETED: "The LoadTest was deleted during the run.",
    Reason.THRESHOLD_FAILED: "At least one threshold did not hold.",
    Reason.CAPACITY_FOUND: (
        "A capacity sweep found a rate at which every threshold held; the message gives the "
        "maximum sustainable rate (docs/metrics.md, Capacity sweep)."
    ),
    Reason.REPLICAS_CHANGED: (
        "The target's replica count changed during a capacity sweep (its autoscaler was not "
        "pinned), so no rate is per replica: the verdict is Inconclusive."
    ),
    Reason.ALL_THRESHOLDS_PASSED: "Every threshold held.",
    Reason.NO_THRESHOLDS: "No thresholds were set; the run succeeds when the load completes.",
    Reason.NO_DATA: "A metric a threshold needs had no data; the threshold cannot pass.",
    Reason.ALL_QUERIES_RETURNED_DATA: "Every cluster query returned data for the measured window.",
    Reason.NO_PROMETHEUS: "No Prometheus is configured, so cluster metrics were not collected.",
    Reason.TARGET_BUSY: "Another LoadTest is running against the same target.",
    Reason.TARGET_FREE: "No other run holds the target.",
    Reason.ACCEPTED: "The spec is valid; the run's plan is stored in its ConfigMap.",
    Reason.RUN_STARTED: "A run began (first apply, or a new spec.runId).",
    Reason.WAITING: "Still waiting; the message says for what.",
    Reason.WAITING_FOR_TARGET: "The run waits for its target to be ready.",
    Reason.TARGET_READY: "The target answered its readiness checks.",
    Reason.WORKERS_CREATED: "The worker Job was created.",
    Reason.WORKERS_NOT_READY: "Worker pods exist but are not all Running yet.",
    Reason.BARRIER_OPENED: "Every worker runs; the load starts at the given instant.",
    Reason.WORKERS_FINISHED: "Every worker pod ended.",
    Reason.ANALYZING: "The workers finished; results are being merged.",
    Reason.SPEC_CHANGED: "The spec changed during the run (SpecDrifted).",
    Reason.SPEC_DRIFTED: (
        "Event: the spec changed during the run; the change waits for the next run."
    ),
    Reason.RUN_LOST: "The run's ConfigMap disappeared, so the run cannot go on.",
    Reason.VARIANT_APPLIED: "An experiment variant's Deployment and HPA specs were written.",
    Reason.VARIANT_MEASURED: "A variant's child LoadTest ended; its row is in status.runs.",
    Reason.RESTORED: "The target's original Deployment and HPA specs were written back.",
    Reason.ROLLOUT_TIMEOUT: (
        "A variant did not roll out within rolloutTimeout (e.g. no GPU node free)."
    ),
    Reason.BUDGET_EXHAUSTED: "The experiment's budget was spent; the originals were restored.",
    Reason.EXPERIMENT_TIMEOUT: "The experiment ran past spec.timeout; the originals were restored.",
    Reason.RECOMMENDED: "Every variant ran; status.recommendation names the best.",
    Reason.DRY_RUN: (
        "dryRun: the plan is in status.plan (or, when larger than 32 KiB, in the ConfigMap "
        "named by status.planConfigMap) and nothing was applied."
    ),
    Reason.JOB_REJECTED: "The API server refused the worker Job; the message is the server's.",
    Reason.PLAN_TOO_LARGE: (
        "The run's plan (or a dry run's) does not fit a ConfigMap (1 MiB); use a smaller "
        "dataset, or dry-run fewer variants at a time."
    ),
    Reason.INTERNAL_ERROR: (
        "The operator failed on this object (a bug, or an object it cannot handle); the "
        "message names the error. What the run held is given back as on any failure; other "
        "objects are unaffected."
    ),
    Reason.FORBIDDEN: (
        "The operator is not allowed to do what the run needs (RBAC); the message names the "
        "request."
    ),
    Reason.API_REJECTED: (
        "The API server refused a request for good (4xx); the message is the server's."
    ),
    Reason.TRANSIENT_ERROR: (
        "A request failed in a way that may pass (5xx, 429, no answer); retried."
    ),
    Reason.RECOVERED: "A step succeeded after transient errors.",
    Reason.QUEUE_TIMEOUT: "Another run held the target for longer than timeouts.queued.",
    Reason.ANALYSIS_TIMEOUT: "Results could not be collected within timeouts.analysis.",
    Reason.WORKERS_TIMEOUT: (
        "The workers could not be created or observed within timeouts.workersReady."
    ),
    Reason.RUN_ID_REUSED: (
        "spec.runId names a run in status.history; runs are never repeated, choose a new runId."
    ),
    Reason.OBJECT_NOT_OWNED: (
        "An object the run would create exists already and is not owned by this resource; "
        "nothing was adopted."
    ),
    Reason.RESUMED: "spec.suspend was set back to false before the workers were created.",
    Reason.FINISHED: "The run ended; the phase and the Completed condition's reason say how.",
    Reason.TARGET_MODIFIED: (
        "Someone else changed the target during the experiment (a rollout, a revert of the "
        "variant): the experiment stopped, their values were kept, the variant's other fields"
        " restored."
    ),
    Reason.TARGET_DELETED: (
        "The target Deployment was deleted (or replaced by another object of that name) "
        "during the experiment; nothing was written to it."
    ),
    Reason.SNAPSHOT_LOST: (
        "The snapshot of the originals is missing, altered or not the experiment's own; "
        "nothing was written from it."
    ),
    Reason.SIMULATED: (
        "spec.simulation.liveTopK: every variant was simulated; the message names the ones "
        "that run live, and status.predictions holds every prediction."
    ),
    Reason.SIMULATION_INVALID: (
        "spec.simulation.liveTopK is set but the simulation cannot run (an unknown pool, a "
        "variant without an HPA, missing capacity); the message names the field. Nothing was "
        "applied."
    ),
    Reason.SCALER_CONFLICT: (
        "A variant would run under two scalers: a variant's ScaledObject beside a plain HPA of "
        "the Deployment, or a variant's HPA beside a ScaledObject (or KEDA's own HPA); the "
        "message names both objects. Checked before each variant is applied; nothing of that "
        "variant was."
    ),
}
"""What each Reason means (docs/status.md renders the same table)."""
