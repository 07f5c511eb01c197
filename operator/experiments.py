"""The ScalingExperiment state machine: variants one after another, the original always restored.

Each run moves through Apply -> RollOut -> Test -> Restore -> Cooldown (order and objects:
operator/experiment_runs.py). The original Deployment and HPA specs are snapshotted once
into a ConfigMap before anything is changed, and every restore writes them back; the step
lives in status (ScalingExperimentStatus.step), so a restarted operator carries on from it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from surge.api.experiment import ScalingExperimentSpec
from surge.api.experiment_status import ExperimentStep, PlanEntry, RunRow, ScalingExperimentStatus
from surge.api.manifests import ManifestError, parse_spec
from surge.api.status import TERMINAL_PHASES, Phase
from surge.operator import builders
from surge.operator.conditions import now_rfc3339, parse_time
from surge.operator.context import Ctx, Step
from surge.operator.experiment_runs import (
    LABEL_EXPERIMENT,
    child_loadtest,
    child_name,
    over_budget,
    read_snapshot,
    rollout_done,
    run_row,
    runs_of,
    sample_replicas,
    snapshot_configmap,
    snapshot_name,
)
from surge.operator.kube import Kube
from surge.operator.settings import Settings
from surge.operator.variants import (
    aggregate,
    apply_hpa,
    apply_variant,
    price_per_replica_hour,
    rank,
    recommendation,
)

Exp = Ctx[ScalingExperimentStatus]


def reconcile_experiment(
    body: dict[str, Any], kube: Kube, settings: Settings, now: datetime
) -> Step:
    ctx: Exp = Ctx(body, kube, settings, now, ScalingExperimentStatus)
    phase = ctx.status.phase
    if phase in TERMINAL_PHASES:
        return ctx.step()
    try:
        spec: ScalingExperimentSpec = parse_spec("ScalingExperiment", body.get("spec") or {})
    except ManifestError as exc:
        ctx.condition("Ready", "False", "InvalidSpec", str(exc))
        ctx.status.completion_time = ctx.stamp
        ctx.goto(Phase.FAILED, "InvalidSpec", str(exc))
        return ctx.step()
    if phase is None or phase == Phase.PENDING:
        _start(ctx, spec)
        return ctx.step()
    started = parse_time(ctx.status.start_time) or now
    if now - started > timedelta(seconds=spec.timeout):
        _stop_current_child(ctx, spec)
        _restore(ctx, spec)
        _end(
            ctx,
            Phase.FAILED,
            "ExperimentTimeout",
            f"the experiment ran past spec.timeout ({spec.timeout:g}s); originals restored",
        )
        return ctx.step()
    if phase == Phase.ANALYZING:
        _analyse(ctx, spec)
        return ctx.step()
    step = ctx.status.step
    if step is None:  # Running without a step: a status from before the run was entered
        _enter(ctx, spec, 0, "Apply")
        step = ctx.status.step
        assert step is not None
    STAGES[step.stage](ctx, spec, step)
    return ctx.step()


def _start(ctx: Exp, spec: ScalingExperimentSpec) -> None:
    target = spec.target_ref.deployment
    for other in ctx.kube.experiments(ctx.namespace):
        busy = (other.get("status") or {}).get("phase") in (
            Phase.RUNNING.value,
            Phase.ANALYZING.value,
        )
        same = ((other.get("spec") or {}).get("targetRef") or {}).get("deployment") == target
        if busy and same and other["metadata"]["name"] != ctx.name:
            ctx.condition(
                "Queued",
                "True",
                "TargetBusy",
                f"ScalingExperiment {other['metadata']['name']} holds {target}",
            )
            ctx.status.phase = Phase.PENDING
            return
    dep = ctx.kube.deployment(ctx.namespace, target)
    if dep is None:
        ctx.condition("Ready", "False", "TargetNotReady", f"Deployment {target} not found")
        ctx.status.completion_time = ctx.stamp
        ctx.goto(Phase.FAILED, "TargetNotReady", f"Deployment {target} not found")
        return
    hpa = ctx.kube.hpa(ctx.namespace, spec.target_ref.hpa) if spec.target_ref.hpa else None
    dep_spec, hpa_spec = dep["spec"], (hpa or {}).get("spec")
    st = ctx.status
    st.start_time, st.observed_generation, st.runs, st.comparison = (
        ctx.stamp,
        ctx.generation,
        [],
        [],
    )
    if spec.dry_run:
        st.plan = [
            PlanEntry(
                variant=v.name,
                deployment=apply_variant(dep_spec, v),
                hpa=apply_hpa(hpa_spec, v.hpa, target) or hpa_spec,
            )
            for v in spec.variants
        ]
        ctx.condition("Ready", "True", "Accepted", "dry run: nothing applied")
        st.completion_time = ctx.stamp
        ctx.goto(
            Phase.SUCCEEDED, "DryRun", "dry run: the plan is in status.plan; nothing was applied"
        )
        return
    # Never overwrite an existing snapshot: after a restart it is the only true original.
    ctx.kube.ensure(snapshot_configmap(ctx.body, dep_spec, hpa_spec))
    ctx.condition("Ready", "True", "Accepted", f"{len(runs_of(spec))} runs planned")
    ctx.goto(
        Phase.RUNNING, "RunStarted", f"original of {target} saved; starting {spec.variants[0].name}"
    )
    _enter(ctx, spec, 0, "Apply")


def _enter(ctx: Exp, spec: ScalingExperimentSpec, index: int, stage: Any, **extra: Any) -> None:
    variant, rep = runs_of(spec)[index]
    ctx.status.step = ExperimentStep(
        index=index, stage=stage, since=ctx.stamp, variant=variant.name, repetition=rep, **extra
    )
    ctx.status.current_variant = variant.name


def _snapshot(ctx: Exp) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    return read_snapshot(ctx.kube.configmap(ctx.namespace, snapshot_name(ctx.name)))


def _apply(ctx: Exp, spec: ScalingExperimentSpec, step: ExperimentStep) -> None:
    snap = _snapshot(ctx)
    if snap is None:
        _end(ctx, Phase.FAILED, "RunLost", "the snapshot ConfigMap disappeared; nothing restored")
        return
    dep_spec, hpa_spec = snap
    variant, _ = runs_of(spec)[step.index]
    target = spec.target_ref.deployment
    ctx.kube.replace_deployment_spec(ctx.namespace, target, apply_variant(dep_spec, variant))
    if spec.target_ref.hpa:
        desired = apply_hpa(hpa_spec, variant.hpa, target)
        ctx.kube.put_hpa_spec(
            ctx.namespace,
            spec.target_ref.hpa,
            desired if desired is not None else hpa_spec,
            {LABEL_EXPERIMENT: builders.fit_name(ctx.name)},
        )
    ctx.event("Normal", "VariantApplied", f"{variant.name}: applied to {target}")
    _enter(ctx, spec, step.index, "RollOut", pending_seconds=0.0)


def _pending_pods(ctx: Exp, dep: dict[str, Any]) -> str | None:
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    for pod in ctx.kube.pods(ctx.namespace, selector):
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return str(cond.get("message") or "unschedulable")
    return None


def _roll_out(ctx: Exp, spec: ScalingExperimentSpec, step: ExperimentStep) -> None:
    dep = ctx.kube.deployment(ctx.namespace, spec.target_ref.deployment)
    since = parse_time(step.since) or ctx.now
    last = parse_time(step.last_sample) or since
    pending = _pending_pods(ctx, dep) if dep else None
    step.pending_seconds = (step.pending_seconds or 0.0) + (
        (ctx.now - last).total_seconds() if pending else 0.0
    )
    step.last_sample = ctx.stamp
    if pending:
        step.pending_reason = pending
    if rollout_done(dep):
        _enter(
            ctx,
            spec,
            step.index,
            "Test",
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
        ctx.event("Warning", "RolloutTimeout", f"{variant.name}: {row.message}")
        _enter(ctx, spec, step.index, "Restore")


def _test(ctx: Exp, spec: ScalingExperimentSpec, step: ExperimentStep) -> None:
    variant, rep = runs_of(spec)[step.index]
    name = child_name(ctx.name, variant.name, rep)
    child = ctx.kube.loadtest(ctx.namespace, name)
    if child is None:
        ctx.kube.create_loadtest(child_loadtest(ctx.body, spec, variant, rep))
        hpa = ctx.kube.hpa(ctx.namespace, spec.target_ref.hpa) if spec.target_ref.hpa else None
        step.hpa_in_force = (hpa or {}).get("spec")
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
        row = run_row(variant, rep, name, status, step, price_per_replica_hour(variant, spec.cost))
        ctx.status.runs = [*ctx.status.runs, row]
        ctx.event(
            "Normal",
            "VariantMeasured",
            f"{variant.name} r{rep}: {status.get('phase')}, p95 {row.p95_ms} ms",
        )
        if over_budget(spec, ctx.status.runs):
            _restore(ctx, spec)
            _end(ctx, Phase.ABORTED, "BudgetExhausted", "spec.budget spent; originals restored")
            return
        _enter(ctx, spec, step.index, "Restore")


def _stop_current_child(ctx: Exp, spec: ScalingExperimentSpec) -> None:
    """An experiment ending early must not leave its current load running."""
    step = ctx.status.step
    if step is not None and step.stage == "Test":
        variant, rep = runs_of(spec)[step.index]
        ctx.kube.suspend_loadtest(ctx.namespace, child_name(ctx.name, variant.name, rep))


def _restore(ctx: Exp, spec: ScalingExperimentSpec) -> None:
    snap = _snapshot(ctx)
    if snap is None:
        return
    dep_spec, hpa_spec = snap
    ctx.kube.replace_deployment_spec(ctx.namespace, spec.target_ref.deployment, dep_spec)
    if spec.target_ref.hpa:
        ctx.kube.put_hpa_spec(ctx.namespace, spec.target_ref.hpa, hpa_spec, {})


def _restore_step(ctx: Exp, spec: ScalingExperimentSpec, step: ExperimentStep) -> None:
    _restore(ctx, spec)
    ctx.event("Normal", "Restored", f"{spec.target_ref.deployment} restored after {step.variant}")
    if step.index + 1 < len(runs_of(spec)):
        _enter(ctx, spec, step.index, "Cooldown")
    else:
        ctx.status.step = None
        ctx.status.current_variant = None
        ctx.goto(Phase.ANALYZING, "Analyzing", "all variants ran; comparing")


def _cooldown(ctx: Exp, spec: ScalingExperimentSpec, step: ExperimentStep) -> None:
    since = parse_time(step.since) or ctx.now
    if ctx.now - since >= timedelta(seconds=spec.cooldown):
        _enter(ctx, spec, step.index + 1, "Apply")


STAGES: dict[str, Callable[[Exp, ScalingExperimentSpec, ExperimentStep], None]] = {
    "Apply": _apply,
    "RollOut": _roll_out,
    "Test": _test,
    "Restore": _restore_step,
    "Cooldown": _cooldown,
}


def _analyse(ctx: Exp, spec: ScalingExperimentSpec) -> None:
    runs = ctx.status.runs
    rows = [aggregate(v.name, [r for r in runs if r.name == v.name]) for v in spec.variants]
    ranked = rank(rows, spec.objective)
    ctx.status.comparison = ranked
    line = recommendation(ranked, spec.objective)
    ctx.status.recommendation = line
    _end(ctx, Phase.SUCCEEDED, "Recommended", line)


def _end(ctx: Exp, phase: Phase, reason: str, message: str) -> None:
    ctx.status.completion_time = now_rfc3339(ctx.now)
    ctx.status.current_variant = None
    ctx.goto(phase, reason, message)


def restore_on_delete(body: dict[str, Any], kube: Kube, settings: Settings, now: datetime) -> None:
    """The finalizer: put the originals back and stop the child LoadTests."""
    ctx: Exp = Ctx(body, kube, settings, now, ScalingExperimentStatus)
    try:
        spec: ScalingExperimentSpec = parse_spec("ScalingExperiment", body.get("spec") or {})
    except ManifestError:
        return
    kube.delete_loadtests(ctx.namespace, f"{LABEL_EXPERIMENT}={builders.fit_name(ctx.name)}")
    if not spec.dry_run:
        _restore(ctx, spec)
