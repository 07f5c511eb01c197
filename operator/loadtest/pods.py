"""What the worker pods say about a run: how many run, which finished, and what went wrong.

Pods arrive as Kubernetes JSON dicts (camelCase), so the same functions read the
API's answers and the table tests' fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from surge.api.status import Reason

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"

# Waiting reasons that will not fix themselves: fail the run at once with the reason.
_FATAL_WAITING = {
    "ErrImagePull": Reason.IMAGE_PULL_ERROR,
    "ImagePullBackOff": Reason.IMAGE_PULL_ERROR,
    "InvalidImageName": Reason.IMAGE_PULL_ERROR,
    "CrashLoopBackOff": Reason.CRASH_LOOP_BACK_OFF,
    "CreateContainerConfigError": Reason.WORKER_FAILED,
    "CreateContainerError": Reason.WORKER_FAILED,
}


@dataclass(frozen=True, slots=True)
class Problem:
    reason: Reason
    message: str


@dataclass(slots=True)
class Workers:
    expected: int
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    fatal: Problem | None = None
    """A problem that ends the run now."""
    waiting: Problem | None = None
    """Why some worker is not running yet; it ends the run only at the barrier's timeout."""
    by_index: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return len(self.by_index) >= self.expected and all(
            _phase(p) in ("Succeeded", "Failed") for p in self.by_index.values()
        )


def _phase(pod: dict[str, Any]) -> str:
    return str(pod.get("status", {}).get("phase", "Pending"))


def pod_index(pod: dict[str, Any]) -> int | None:
    raw = (pod.get("metadata", {}).get("annotations") or {}).get(INDEX_ANNOTATION)
    return int(raw) if raw is not None and str(raw).isdigit() else None


def _container_problem(pod: dict[str, Any]) -> Problem | None:
    name = pod.get("metadata", {}).get("name", "?")
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in _FATAL_WAITING:
            detail = waiting.get("message") or reason
            return Problem(_FATAL_WAITING[reason], f"pod {name}: {reason}: {detail}")
    return None


def _unscheduled(pod: dict[str, Any]) -> Problem | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            name = pod.get("metadata", {}).get("name", "?")
            msg = cond.get("message") or cond.get("reason") or "not scheduled"
            return Problem(Reason.UNSCHEDULABLE, f"pod {name}: {msg}")
    return None


def diagnose(pods: list[dict[str, Any]], expected: int) -> Workers:
    """Summarise worker pods. The newest pod per completion index counts."""
    w = Workers(expected=expected)
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or ""):
        idx = pod_index(pod)
        if idx is not None:
            w.by_index[idx] = pod
    for pod in w.by_index.values():
        phase = _phase(pod)
        if phase == "Running":
            w.running += 1
        elif phase == "Succeeded":
            w.succeeded += 1
        elif phase == "Failed":
            w.failed += 1
            if w.fatal is None:
                w.fatal = Problem(Reason.WORKER_FAILED, _failure(pod))
        problem = _container_problem(pod)
        if problem and w.fatal is None:
            w.fatal = problem
        if phase == "Pending" and w.waiting is None:
            w.waiting = _unscheduled(pod) or Problem(
                Reason.WORKERS_NOT_READY, f"pod {pod['metadata'].get('name')} is Pending"
            )
    if len(w.by_index) < expected and w.waiting is None:
        w.waiting = Problem(
            Reason.WORKERS_NOT_READY, f"{len(w.by_index)} of {expected} worker pods exist"
        )
    return w


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term:
            return dict(term)
    return None


def _failure(pod: dict[str, Any]) -> str:
    name = pod.get("metadata", {}).get("name", "?")
    term = _terminated(pod) or {}
    why = term.get("message") or pod.get("status", {}).get("message") or term.get("reason") or ""
    tail = " ".join(str(why).split())[-300:]
    return f"pod {name} exited {term.get('exitCode', '?')}" + (f": {tail}" if tail else "")


def termination_message(pod: dict[str, Any]) -> str | None:
    term = _terminated(pod)
    return term.get("message") if term else None


def exit_code(pod: dict[str, Any]) -> int | None:
    term = _terminated(pod)
    return int(term["exitCode"]) if term and "exitCode" in term else None
