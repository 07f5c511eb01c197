"""The LoadTest state machine's entry: which step a reconcile takes, and what errors mean.

Level-triggered: each reconcile reads the run's state from the cluster and moves it one step
on (operator/loadtest/phases.py), so a restarted operator resumes where the cluster says the run is.
Around the phases:
- a new spec.runId starts a run (a runId in status.history is refused: RunIdReused); a run
  that never started is re-admitted when its spec changes (a fixed typo runs);
- a finished run is left alone, except what waits for its end to be persisted: deleting its
  workers and releasing the target's Lease;
- spec.suspend holds a run whose workers do not exist yet, and aborts one that has them;
- a permanent API error (4xx other than 409/429) ends the run with the server's message; a
  transient one is retried with capped backoff, shown in the Retrying condition, until the
  phase's deadline.
Status changes only through LoadTestStatus (operator/context.py makes the patch).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from surge.api.manifests import ManifestError
from surge.api.policy import PolicyViolation
from surge.api.results import Verdict
from surge.api.status import TERMINAL_PHASES, LoadTestStatus, Phase, Reason, Retry, RunRecord
from surge.operator.conditions import condition_is, get_condition, now_rfc3339, parse_time
from surge.operator.context import Ctx, Decision, NotOwned
from surge.operator.kube.client import Kube, KubeError
from surge.operator.kube.failures import MAX_ATTEMPTS_WITHOUT_DEADLINE, backoff_s, failure_reason
from surge.operator.loadtest import admission, builders
from surge.operator.loadtest.endings import Run, abort, fail
from surge.operator.loadtest.phases import (
    PHASES,
    after_the_end,
    needs_after_the_end,
    set_deadline,
)
from surge.operator.settings import Settings

HOLDABLE = (None, Phase.PENDING, Phase.WAITING_FOR_TARGET)
"""Phases in which no worker exists yet: spec.suspend holds the run instead of aborting it."""


def reconcile(body: dict[str, Any], kube: Kube, settings: Settings, now: datetime) -> Decision:
    ctx: Run = Ctx(body, kube, settings, now, LoadTestStatus)
    ctx.status.observed_generation = ctx.generation
    try:
        _step(ctx)
    except KubeError as err:
        _api_error(ctx, err)
    except NotOwned as err:
        fail(ctx, Reason.OBJECT_NOT_OWNED, str(err))
    return ctx.step()


def _step(ctx: Run) -> None:
    st = ctx.status
    spec_raw = ctx.body.get("spec") or {}
    wanted = str(spec_raw.get("runId", "1"))
    if st.run_id != wanted:
        start_run(ctx, wanted)
        return
    if st.phase in TERMINAL_PHASES:
        if _readmittable(ctx):
            start_run(ctx, wanted, readmit=True)
        elif needs_after_the_end(st):
            after_the_end(ctx)
        return
    retry_at = parse_time(st.retry.after) if st.retry else None
    if retry_at is not None and ctx.now < retry_at:
        return  # backing off after a transient error
    if spec_raw.get("suspend"):
        _suspend(ctx)
        return
    if condition_is(st.conditions, "Suspended", "True"):
        ctx.condition("Suspended", "False", Reason.RESUMED, "spec.suspend is false again")
        st.deadline = None  # the waiting phase's clock starts again
    _note_drift(ctx)
    PHASES[st.phase or Phase.PENDING](ctx)
    if st.retry is not None and st.phase not in TERMINAL_PHASES:
        st.retry = None
        ctx.condition("Retrying", "False", Reason.RECOVERED, "the last step succeeded")


def _readmittable(ctx: Run) -> bool:
    """A run that ended before its load started, whose spec changed since (not a refusal of
    its runId): the fixed spec gets a run under the same runId."""
    st = ctx.status
    changed = (
        ctx.generation is not None
        and st.run_generation is not None
        and ctx.generation > st.run_generation
    )
    ready = get_condition(st.conditions, "Ready")
    refused = ready is not None and ready.reason == "RunIdReused"
    return changed and st.load_start_time is None and not refused


def _suspend(ctx: Run) -> None:
    if ctx.status.phase in HOLDABLE:
        if not condition_is(ctx.status.conditions, "Suspended", "True"):
            ctx.event("Normal", Reason.SUSPENDED, "spec.suspend is true: held before its workers")
        ctx.condition("Suspended", "True", Reason.SUSPENDED, "spec.suspend is true")
        return
    abort(ctx, Reason.SUSPENDED, "spec.suspend is true")


def _note_drift(ctx: Run) -> None:
    started_with = ctx.status.run_generation
    drifted = (
        ctx.generation is not None and started_with is not None and ctx.generation > started_with
    )
    if drifted and not condition_is(ctx.status.conditions, "SpecDrifted", "True"):
        ctx.condition(
            "SpecDrifted",
            "True",
            Reason.SPEC_CHANGED,
            "the spec changed during the run; it goes on with the spec it started "
            "with; bump spec.runId to run the new one",
        )
        ctx.event(
            "Normal", Reason.SPEC_DRIFTED, "spec changed mid-run; change ignored until next run"
        )


def start_run(ctx: Run, run_id: str, *, readmit: bool = False) -> None:
    old = ctx.status
    history = list(old.history)
    if not readmit and run_id in {h.run_id for h in history}:
        _refuse_reused(ctx, run_id)
        return
    if old.run_id and old.phase not in TERMINAL_PHASES:
        ctx.kube.delete_jobs(ctx.namespace, builders.selector(ctx.name, old.run_id))
        history.insert(
            0,
            RunRecord(
                run_id=old.run_id,
                phase=Phase.ABORTED,
                start_time=old.start_time,
                completion_time=ctx.stamp,
                message=f"superseded by runId {run_id}",
            ),
        )
    if old.run_id and old.run_id != run_id:  # the old run's plan goes with it
        ctx.kube.delete_configmaps(ctx.namespace, builders.selector(ctx.name, old.run_id))
    if readmit:
        history = [h for h in history if h.run_id != run_id]
    ctx.status = fresh_status(ctx, run_id, history)
    try:
        admitted = admission.accepted_spec(ctx.body, ctx.kube, ctx.settings)
        spec = admitted.spec
        # The operator always checks its own reads of the plan against this digest: a
        # tenant who can edit ConfigMaps must not pick the Job's image or Prometheus URL.
        ctx.status.plan_sha256 = admission.store_plan(ctx, admitted, run_id)
    except ManifestError as exc:
        ctx.condition("Ready", "False", Reason.INVALID_SPEC, str(exc))
        fail(ctx, Reason.INVALID_SPEC, str(exc))
        return
    except PolicyViolation as exc:
        ctx.condition("Ready", "False", Reason.POLICY_VIOLATION, str(exc))
        fail(ctx, Reason.POLICY_VIOLATION, str(exc))
        return
    except admission.PlanTooLarge as exc:
        fail(ctx, Reason.PLAN_TOO_LARGE, str(exc))
        return
    except KubeError as err:
        if not err.permanent:
            ctx.status = old  # nothing of the new run is written until it is stored
        raise
    ctx.status.workers.expected = spec.load.workers
    if spec.load.model != "closed":
        ctx.status.summary.target_rps = spec.load.peak
    set_deadline(ctx, ctx.now + timedelta(seconds=spec.timeouts.queued), Reason.QUEUE_TIMEOUT)
    # A trace names its curve's source (the query and window, or the ConfigMap) in status.
    trace = f"; load: {spec.load.trace.source}" if spec.load.trace is not None else ""
    if spec.load.trace is not None:
        ctx.status.load_source = spec.load.trace.source
    ctx.condition("Ready", "True", Reason.ACCEPTED, f"run {run_id} accepted{trace}")
    ctx.goto(Phase.PENDING, Reason.RUN_STARTED, f"run {run_id} accepted{trace}")


def fresh_status(ctx: Run, run_id: str, history: list[RunRecord]) -> LoadTestStatus:
    """A new run's status; the old run's Lease is kept, so it is released once this is
    persisted."""
    return LoadTestStatus(
        run_id=run_id,
        observed_generation=ctx.generation,
        run_generation=ctx.generation,
        start_time=ctx.stamp,
        history=history[: ctx.settings.history_limit],
        lease=ctx.status.lease,
    )


def _refuse_reused(ctx: Run, run_id: str) -> None:
    """A runId seen before (a `git revert` of a bump): refused, history untouched."""
    old = ctx.status
    message = (
        f"runId {run_id} was used by an earlier run (status.history); runs are never "
        "repeated: set a new spec.runId"
    )
    ctx.status = fresh_status(ctx, run_id, old.history)
    ctx.status.completion_time = ctx.stamp
    ctx.status.workers_to_delete = old.workers_to_delete
    ctx.status.summary.verdict = Verdict.FAILED
    ctx.condition("Ready", "False", Reason.RUN_ID_REUSED, message)
    ctx.condition("Completed", "True", Reason.RUN_ID_REUSED, message)
    ctx.goto(Phase.FAILED, Reason.RUN_ID_REUSED, message)


def _api_error(ctx: Run, err: KubeError) -> None:
    """A permanent error ends the run; a transient one is retried with backoff until the
    phase's deadline."""
    st = ctx.status
    if err.permanent:
        fail(ctx, failure_reason(err), str(err))
        return
    attempts = (st.retry.attempts if st.retry else 0) + 1
    until = parse_time(st.deadline)
    if (until is not None and ctx.now > until) or (
        until is None and attempts > MAX_ATTEMPTS_WITHOUT_DEADLINE
    ):
        reason = st.deadline_reason or Reason.TRANSIENT_ERROR
        fail(ctx, reason, f"{reason}: the phase's time ran out while retrying; last error: {err}")
        return
    delay = backoff_s(attempts)
    st.retry = Retry(
        attempts=attempts,
        after=now_rfc3339(ctx.now + timedelta(seconds=delay)),
        message=str(err)[:1024],
    )
    ctx.condition(
        "Retrying",
        "True",
        Reason.TRANSIENT_ERROR,
        f"attempt {attempts}, next in {delay:g}s: {err}"[:1024],
    )
