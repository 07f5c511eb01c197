"""What an object gets when its reconcile raises: Failed with reason InternalError, never a
dead operator or an object retried forever without a word.

A reconcile is not expected to raise (spec problems are InvalidSpec or PolicyViolation, API
errors are KubeError), so an exception here is a bug or an object the operator cannot
represent; either way retrying it helps no one. The API server being unreachable is the
exception to the rule: `TRANSIENT` errors are left to kopf, which retries the handler.
What a run holds is given back as on any failure: a LoadTest's workers and Lease once the
end is persisted, an experiment's variant restored where it still holds what it wrote.
"""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

import urllib3

from surge.api.experiment_status import ScalingExperimentStatus
from surge.api.reasons import Reason
from surge.api.status import TERMINAL_PHASES, LoadTestStatus, Phase
from surge.operator.context import Ctx, Decision, bounded
from surge.operator.experiment import simulation as experiment_simulation
from surge.operator.experiment import target as experiment_target
from surge.operator.experiment.runs import snapshot_name
from surge.operator.experiment.stages import end, restore, restored_message, stop_current_child
from surge.operator.kube.client import Kube
from surge.operator.loadtest import lifecycle
from surge.operator.loadtest.endings import fail, stop_workers
from surge.operator.settings import Settings

REASON = Reason.INTERNAL_ERROR
TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    urllib3.exceptions.HTTPError,
)
"""No answer from the API server (connection refused or reset, timed out, a name that does
not resolve yet): kopf retries. Not every OSError: a file the operator cannot read or a
permission it lacks would come back at every retry, so those fail the object."""
MESSAGE_CHARS = 300


def message(exc: BaseException) -> str:
    """One bounded line: what was raised, and that the others are unaffected."""
    text = " ".join(str(exc).split())[:MESSAGE_CHARS]
    return (
        f"the operator failed on this object ({type(exc).__name__}: {text}); it was stopped, "
        "other objects are unaffected; if the spec is valid, please report it"
    )


def crashed_loadtest(
    body: dict[str, Any], kube: Kube, settings: Settings, now: datetime, text: str
) -> Decision:
    ctx: Ctx[LoadTestStatus] = Ctx(body, kube, settings, now, LoadTestStatus)
    wanted = str((body.get("spec") or {}).get("runId", "1"))
    if ctx.status.run_id != wanted:
        # The crash came while a new runId was being started: that run fails, not the old
        # one (whose ending, if any, stands in the history).
        ctx.status = lifecycle.fresh_status(ctx, wanted, list(ctx.status.history))
    elif ctx.status.phase in TERMINAL_PHASES:
        return ctx.step()  # ended already: what failed was giving back what it held
    if ctx.status.phase in (Phase.RUNNING, Phase.ANALYZING):
        stop_workers(ctx)
    ctx.status.observed_generation = ctx.generation
    fail(ctx, REASON, text)
    return ctx.step()


def crashed_experiment(
    body: dict[str, Any], kube: Kube, settings: Settings, now: datetime, text: str
) -> Decision:
    ctx: Ctx[ScalingExperimentStatus] = Ctx(body, kube, settings, now, ScalingExperimentStatus)
    if ctx.status.phase in TERMINAL_PHASES:
        return ctx.step()
    ctx.status.observed_generation = ctx.generation
    kept: list[str] = []
    if ctx.status.snapshot_digest is not None:  # something may have been applied
        cm = kube.configmap(ctx.namespace, snapshot_name(ctx.name))
        snap = experiment_target.read_snapshot(cm, ctx.status.snapshot_digest)
        if snap is not None:
            spec = experiment_simulation.live_spec(snap.spec, ctx.status.predictions)
            stop_current_child(ctx, spec)
            kept = restore(ctx, snap)
        text = f"{text}; {restored_message(kept)}"
    end(ctx, Phase.FAILED, REASON, text)
    return ctx.step()


def fallback(text: str, model: type[LoadTestStatus | ScalingExperimentStatus]) -> Decision:
    """When even the failure cannot be built from the object: the phase and the message,
    through the object's status model, and nothing else (a merge patch of these two keys
    keeps its history and conditions)."""
    status = model(phase=Phase.FAILED, message=bounded(text))
    return Decision(status=status.model_dump(mode="json", by_alias=True, exclude_unset=True))
