"""The stages of one ScalingExperiment run (Apply -> RollOut -> Test -> Restore -> Cooldown) and
the experiment's endings; operator/experiment/reconcile.py decides which one runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from surge.api.experiment import ScalingExperimentSpec
from surge.api.experiment_status import (
    ExperimentStage,
    ExperimentStep,
    RunRow,
    ScalingExperimentStatus,
)
from surge.api.status import TERMINAL_PHASES, Phase, Reason
from surge.operator.conditions import now_rfc3339, parse_time
from surge.operator.context import Ctx
from surge.operator.experiment import target as experiment_target
from surge.operator.experiment.runs import (
    LABEL_EXPERIMENT,
    child_loadtest,
    child_name,
    over_budget,
    rollout_done,
    run_row,
    runs_of,
    sample_replicas,
)
from surge.operator.experiment.scaled_object_target import ScaledObjectTaken
from surge.operator.experiment.scalers import live_scalers, scaler_conflicts
from surge.operator.experiment.target import Snapshot
from surge.operator.experiment.variants import price_per_replica_hour
from surge.operator.loadtest import builders

Exp = Ctx[ScalingExperimentStatus]


def enter(
    ctx: Exp, spec: ScalingExperimentSpec, index: int, stage: ExperimentStage, **extra: Any
) -> None:
    variant, rep = runs_of(spec)[index]
    old = ctx.status.step
    carried: dict[str, Any] = {}
    if old is not None and old.index == index and stage != ExperimentStage.COOLDOWN:
        # What the variant wrote stays known until it is restored.
        carried = {
            "written": old.written,
            "rest_digest": old.rest_digest,
            "hpa_written": old.hpa_written,
            "scaled_object_written": old.scaled_object_written,
            "scaled_object_uid": old.scaled_object_uid,
        }
    ctx.status.step = ExperimentStep(
        index=index,
        stage=stage,
        since=ctx.stamp,
        variant=variant.name,
        repetition=rep,
        **{**carried, **extra},
    )
    ctx.status.current_variant = variant.name


def apply(ctx: Exp, snap: Snapshot, step: ExperimentStep) -> None:
    spec = snap.spec
    variant, _ = runs_of(spec)[step.index]
    if any(v.hpa is not None or v.scaled_object is not None for v in spec.variants):
        conflicts = scaler_conflicts(spec, *live_scalers(ctx.kube, ctx.namespace))
        if conflicts:
            # Before any write of this variant: the target is as its owner left it.
            done = f"{len(ctx.status.runs)} runs done" if ctx.status.runs else "nothing applied"
            end(ctx, Phase.FAILED, Reason.SCALER_CONFLICT, f"{'; '.join(conflicts)}; {done}")
            return
    labels = {LABEL_EXPERIMENT: builders.fit_name(ctx.name)}
    try:
        w = experiment_target.apply(ctx.kube, ctx.namespace, snap, variant, labels)
    except (ScaledObjectTaken, experiment_target.HpaTaken) as exc:
        # Its HPA or ScaledObject is checked first: nothing of the variant is written.
        done = f"{len(ctx.status.runs)} runs done" if ctx.status.runs else "nothing applied"
        message = f"the target was changed by someone else ({exc}); their object is kept"
        end(ctx, Phase.ABORTED, Reason.TARGET_MODIFIED, f"{message}; {done}")
        return
    ctx.event(
        "Normal", Reason.VARIANT_APPLIED, f"{variant.name}: applied to {spec.target_ref.deployment}"
    )
    enter(
        ctx,
        spec,
        step.index,
        ExperimentStage.ROLL_OUT,
        pending_seconds=0.0,
        written=w.fields,
        rest_digest=w.rest_digest,
        hpa_written=w.hpa,
        scaled_object_written=w.scaled_object,
        scaled_object_uid=w.scaled_object_uid,
    )


def pending_pods(ctx: Exp, dep: dict[str, Any]) -> str | None:
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    for pod in ctx.kube.pods(ctx.namespace, selector):
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return str(cond.get("message") or "unschedulable")
    return None


def roll_out(ctx: Exp, snap: Snapshot, step: ExperimentStep) -> None:
    spec = snap.spec
    dep = ctx.kube.deployment(ctx.namespace, spec.target_ref.deployment)
    since = parse_time(step.since) or ctx.now
    last = parse_time(step.last_sample) or since
    pending = pending_pods(ctx, dep) if dep else None
    step.pending_seconds = (step.pending_seconds or 0.0) + (
        (ctx.now - last).total_seconds() if pending else 0.0
    )
    step.last_sample = ctx.stamp
    if pending:
        step.pending_reason = pending
    if rollout_done(dep):
        enter(
            ctx,
            spec,
            step.index,
            ExperimentStage.TEST,
            rollout_seconds=(ctx.now - since).total_seconds(),
            pending_seconds=step.pending_seconds,
        )
        return
    if ctx.now - since > timedelta(seconds=spec.rollout_timeout):
        variant, rep = runs_of(spec)[step.index]
        row = RunRow(
            name=variant.name,
            repetition=rep,
            phase=Phase.FAILED.value,
            passed=False,
            reason="RolloutTimeout",
            message=f"not rolled out after {spec.rollout_timeout:g}s"
            + (f": {pending}" if pending else ""),
            pending_seconds=step.pending_seconds,
        )
        ctx.status.runs = [*ctx.status.runs, row]
        ctx.event("Warning", Reason.ROLLOUT_TIMEOUT, f"{variant.name}: {row.message}")
        enter(ctx, spec, step.index, ExperimentStage.RESTORE)


def measure(ctx: Exp, snap: Snapshot, step: ExperimentStep) -> None:
    spec = snap.spec
    variant, rep = runs_of(spec)[step.index]
    name = child_name(ctx.name, variant.name, rep)
    child = ctx.kube.loadtest(ctx.namespace, name)
    if child is not None and not ctx.owns(child):
        # Names can meet (experiment web-api's variant cpu, web's api-cpu) and anyone may
        # create a LoadTest: another's results are never recorded as this variant's.
        kept = restore(ctx, snap)
        message = (
            f"LoadTest {ctx.namespace}/{name} exists and is not this experiment's; "
            f"nothing was adopted; {restored_message(kept)}"
        )
        end(ctx, Phase.FAILED, Reason.OBJECT_NOT_OWNED, message)
        return
    if child is None or step.last_sample is None:
        # Also when the tick that created the child lost its status write: record it now.
        if child is None:
            ctx.kube.create_loadtest(child_loadtest(ctx.body, spec, variant, rep))
        hpa = ctx.kube.hpa(ctx.namespace, spec.target_ref.hpa) if spec.target_ref.hpa else None
        step.hpa_in_force = (hpa or {}).get("spec")
        so = spec.target_ref.scaled_object
        step.scaled_object_in_force = (
            (ctx.kube.scaled_object(ctx.namespace, so) or {}).get("spec") if so else None
        )
        step.last_sample = ctx.stamp
        return
    status = child.get("status") or {}
    loading = status.get("phase") == Phase.RUNNING.value and bool(status.get("loadStartTime"))
    replicas = None
    if loading:
        dep = ctx.kube.deployment(ctx.namespace, spec.target_ref.deployment)
        replicas = int(((dep or {}).get("status") or {}).get("replicas") or 0)
    sample_replicas(step, replicas, ctx.now)
    if status.get("phase") in {p.value for p in TERMINAL_PHASES}:
        price = price_per_replica_hour(variant, spec.cost)
        planned = len(spec.variants) * spec.repetitions
        row = run_row(variant, rep, name, status, step, price, planned_runs=planned)
        ctx.status.runs = [*ctx.status.runs, row]
        ctx.event(
            "Normal",
            Reason.VARIANT_MEASURED,
            f"{variant.name} r{rep}: {status.get('phase')}, p95 {row.p95_ms} ms",
        )
        if over_budget(spec, ctx.status.runs):
            kept = restore(ctx, snap)
            end(
                ctx,
                Phase.ABORTED,
                Reason.BUDGET_EXHAUSTED,
                f"spec.budget spent; {restored_message(kept)}",
            )
            return
        enter(ctx, spec, step.index, ExperimentStage.RESTORE)


def stop_current_child(ctx: Exp, spec: ScalingExperimentSpec) -> None:
    """An experiment ending early must not leave its current load running."""
    step = ctx.status.step
    if step is not None and step.stage == ExperimentStage.TEST:
        variant, rep = runs_of(spec)[step.index]
        name = child_name(ctx.name, variant.name, rep)
        child = ctx.kube.loadtest(ctx.namespace, name)
        if child is not None and ctx.owns(child):  # never suspend another's
            ctx.kube.suspend_loadtest(ctx.namespace, name)


def restore(ctx: Exp, snap: Snapshot) -> list[str]:
    label = builders.fit_name(ctx.name)
    return experiment_target.restore(ctx.kube, ctx.namespace, snap, ctx.status.step, label)


def restored_message(kept: list[str]) -> str:
    if not kept:
        return "the variant's fields restored"
    return f"the variant's fields restored except {', '.join(kept)}, changed by someone else"


def modified(ctx: Exp, snap: Snapshot, edits: list[str]) -> None:
    """Someone else changed the target mid-run: stop, keep their values, put ours back."""
    stop_current_child(ctx, snap.spec)
    kept = restore(ctx, snap)
    fields = ", ".join(edits)
    message = f"the target was changed by someone else ({fields}); their values are kept"
    message += f"; {restored_message(kept)}"
    end(ctx, Phase.ABORTED, Reason.TARGET_MODIFIED, message)


def restore_step(ctx: Exp, snap: Snapshot, step: ExperimentStep) -> None:
    spec = snap.spec
    kept = restore(ctx, snap)
    target = spec.target_ref.deployment
    ctx.event("Normal", Reason.RESTORED, f"{target} after {step.variant}: {restored_message(kept)}")
    if step.index + 1 < len(runs_of(spec)):
        enter(ctx, spec, step.index, ExperimentStage.COOLDOWN)
    else:
        ctx.status.step = None
        ctx.status.current_variant = None
        ctx.goto(Phase.ANALYZING, Reason.ANALYZING, "all variants ran; comparing")


def cooldown(ctx: Exp, snap: Snapshot, step: ExperimentStep) -> None:
    since = parse_time(step.since) or ctx.now
    if ctx.now - since >= timedelta(seconds=snap.spec.cooldown):
        enter(ctx, snap.spec, step.index + 1, ExperimentStage.APPLY)


STAGES: dict[ExperimentStage, Callable[[Exp, Snapshot, ExperimentStep], None]] = {
    ExperimentStage.APPLY: apply,
    ExperimentStage.ROLL_OUT: roll_out,
    ExperimentStage.TEST: measure,
    ExperimentStage.RESTORE: restore_step,
    ExperimentStage.COOLDOWN: cooldown,
}


def end(ctx: Exp, phase: Phase, reason: Reason, message: str) -> None:
    ctx.status.completion_time = now_rfc3339(ctx.now)
    ctx.status.current_variant = None
    ctx.condition("Completed", "True", reason, message)
    ctx.goto(phase, reason, message)
