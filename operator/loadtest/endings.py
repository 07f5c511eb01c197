"""How a LoadTest run ends: the phase, Completed and Ready with the reason, the verdict of a
failure, and the run's record in status.history (loadtest/phases.py decides when)."""

from __future__ import annotations

from surge.api.results import Verdict
from surge.api.status import LoadTestStatus, Phase, Reason, RunRecord
from surge.operator.conditions import condition_is
from surge.operator.context import Ctx, bounded

Run = Ctx[LoadTestStatus]


def run_id(ctx: Run) -> str:
    return ctx.status.run_id or "1"  # set by start_run before any phase runs


def stop_workers(ctx: Run) -> None:
    """The Job goes once the run's end is persisted (`after_the_end`), never before."""
    ctx.status.workers_to_delete = True


def finish(ctx: Run, phase: Phase, reason: Reason, message: str) -> None:
    """Every ending: the phase, Completed=True with the reason, Ready, history."""
    st = ctx.status
    st.completion_time, st.deadline, st.deadline_reason, st.retry = ctx.stamp, None, None, None
    ctx.condition("Completed", "True", reason, message)
    if phase == Phase.SUCCEEDED:
        ctx.condition("Ready", "True", reason, message)
    else:
        ctx.condition("Ready", "False", reason, message)
    if condition_is(st.conditions, "Retrying", "True"):
        ctx.condition("Retrying", "False", Reason.FINISHED, "the run ended")
    ctx.goto(phase, reason, message)
    record = RunRecord(
        run_id=run_id(ctx),
        phase=phase,
        start_time=st.start_time,
        completion_time=ctx.stamp,
        summary=st.summary.model_copy(),
        thresholds=list(st.thresholds),
        message=bounded(message),
    )
    history = [h for h in st.history if h.run_id != record.run_id]
    st.history = [record, *history][: ctx.settings.history_limit]


def fail(ctx: Run, reason: Reason, message: str) -> None:
    ctx.status.summary.verdict = Verdict.FAILED
    finish(ctx, Phase.FAILED, reason, message)


def abort(ctx: Run, reason: Reason, message: str) -> None:
    stop_workers(ctx)
    finish(ctx, Phase.ABORTED, reason, message)
