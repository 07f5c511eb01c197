"""Status shapes shared by LoadTest and ScalingExperiment: phases, conditions, verdicts.

Every condition type and reason is listed in surge.api.reasons with its meaning
(docs/status.md renders the same table), so users and code read the same vocabulary.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field
from pydantic.config import JsonDict

from surge.api.base import Model
from surge.api.reasons import CONDITION_TYPES as CONDITION_TYPES  # re-exported
from surge.api.reasons import REASONS as REASONS
from surge.api.reasons import Reason as Reason
from surge.api.results.run import RunResults
from surge.api.results.run import Summary as Summary  # re-exported: status holds them
from surge.api.results.run import ThresholdResult as ThresholdResult


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


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


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
    """The target key: service/<namespace>/<name>:<port>, url/<host>:<port>, or an
    experiment's deployment/<namespace>/<name>."""


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
    deadline_reason: Reason | None = None
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
    results: RunResults | None = None
    thresholds: list[ThresholdResult] = Field(default_factory=list)
    history: list[RunRecord] = Field(default_factory=list)
    """The last runs, newest first (at most 5)."""
