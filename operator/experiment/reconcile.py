"""The ScalingExperiment state machine: variants one after another, the owner's work never undone.

Each run moves through Apply -> RollOut -> Test -> Restore -> Cooldown (order and objects:
operator/experiment/runs.py; writes to the target: operator/experiment/target.py). At start
the experiment takes the target's Lease and snapshots the originals, its own spec (frozen:
later edits set SpecDrifted) and the target's uid into a ConfigMap it owns. A variant writes
only the fields it sets and restores only those still holding what it wrote; an edit by
someone else during RollOut or Test stops the experiment (Aborted, TargetModified) with the
owner's values kept. The step lives in status, so a restarted operator carries on from it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from surge.api.experiment import ScalingExperimentSpec
from surge.api.experiment_status import ExperimentStage, ScalingExperimentStatus
from surge.api.manifests import ManifestError, parse_spec
from surge.api.policy import PolicyViolation, Violation
from surge.api.status import TERMINAL_PHASES, Phase, Reason
from surge.operator.conditions import condition_is, parse_time
from surge.operator.context import Ctx, Decision, NotOwned
from surge.operator.experiment import dry_run, leases
from surge.operator.experiment import simulation as experiment_simulation
from surge.operator.experiment import target as experiment_target
from surge.operator.experiment.runs import (
    LABEL_EXPERIMENT,
    runs_of,
    snapshot_name,
)
from surge.operator.experiment.stages import (
    STAGES,
    Exp,
    end,
    enter,
    modified,
    restore,
    restored_message,
    stop_current_child,
)
from surge.operator.experiment.target import Snapshot, TargetGone
from surge.operator.experiment.variants import aggregate, rank, recommendation
from surge.operator.kube import target_lease
from surge.operator.kube.client import Kube, KubeError
from surge.operator.kube.failures import failure_reason
from surge.operator.loadtest import builders
from surge.operator.policy.experiment import experiment_violations, secret_names
from surge.operator.policy.facts import gather
from surge.operator.policy.rules import Allowed, loadtest_violations
from surge.operator.settings import Settings


def reconcile_experiment(
    body: dict[str, Any], kube: Kube, settings: Settings, now: datetime
) -> Decision:
    ctx: Exp = Ctx(body, kube, settings, now, ScalingExperimentStatus)
    st = ctx.status
    st.observed_generation = ctx.generation
    if st.phase in TERMINAL_PHASES:  # the end is persisted: give the target back
        leases.give_back(kube, st, namespace=ctx.namespace, holder=_holder(ctx))
        return ctx.step()
    try:
        _step(ctx)
    except KubeError as err:
        _api_error(ctx, err)
    else:
        if condition_is(st.conditions, "Retrying", "True"):
            ctx.condition("Retrying", "False", Reason.RECOVERED, "the last step succeeded")
    return ctx.step()


def _step(ctx: Exp) -> None:
    st = ctx.status
    if st.phase is None or st.phase == Phase.PENDING:
        try:
            spec: ScalingExperimentSpec = parse_spec(
                "ScalingExperiment", ctx.body.get("spec") or {}
            )
        except ManifestError as exc:
            ctx.condition("Ready", "False", Reason.INVALID_SPEC, str(exc))
            end(ctx, Phase.FAILED, Reason.INVALID_SPEC, str(exc))
            return
        violations = _policy_violations(ctx, spec)
        if violations:
            message = str(PolicyViolation(violations))
            ctx.condition("Ready", "False", Reason.POLICY_VIOLATION, message)
            end(ctx, Phase.FAILED, Reason.POLICY_VIOLATION, message + "; nothing was applied")
            return
        try:
            _start(ctx, spec)
        except NotOwned as exc:
            end(ctx, Phase.FAILED, Reason.SNAPSHOT_LOST, str(exc))
        except PolicyViolation as exc:
            end(ctx, Phase.FAILED, Reason.POLICY_VIOLATION, f"{exc}; nothing was applied")
        except experiment_simulation.SimulationError as exc:
            ctx.condition("Ready", "False", Reason.SIMULATION_INVALID, str(exc))
            end(ctx, Phase.FAILED, Reason.SIMULATION_INVALID, f"{exc}; nothing was applied")
        return
    snap = _snapshot(ctx)
    if snap is None:
        end(
            ctx,
            Phase.FAILED,
            Reason.SNAPSHOT_LOST,
            "the snapshot of the originals is missing or "
            "altered; nothing was written from it, the target is as it is now",
        )
        return
    _note_drift(ctx)
    try:
        _advance(ctx, snap)
    except TargetGone as exc:
        stop_current_child(ctx, snap.spec)
        end(ctx, Phase.FAILED, Reason.TARGET_DELETED, f"{exc}; nothing was written to it")


def _api_error(ctx: Exp, err: KubeError) -> None:
    """A permanent API error ends the experiment (what the variant wrote is put back where it
    still can be); a transient one shows in Retrying and the next tick tries again, within
    spec.timeout."""
    if not err.permanent:
        ctx.condition("Retrying", "True", Reason.TRANSIENT_ERROR, str(err)[:1024])
        return
    kept: list[str] = []
    try:
        snap = _snapshot(ctx)
        if snap is not None:
            stop_current_child(ctx, snap.spec)
            kept = restore(ctx, snap)
    except (KubeError, TargetGone):
        pass  # nothing more can be done safely; the message says what failed
    end(ctx, Phase.FAILED, failure_reason(err), f"{err}; {restored_message(kept)}")


def _advance(ctx: Exp, snap: Snapshot) -> None:
    spec, st = snap.spec, ctx.status
    started = parse_time(st.start_time) or ctx.now
    if ctx.now - started > timedelta(seconds=spec.timeout):
        stop_current_child(ctx, spec)
        kept = restore(ctx, snap)
        message = f"the experiment ran past spec.timeout ({spec.timeout:g}s)"
        end(ctx, Phase.FAILED, Reason.EXPERIMENT_TIMEOUT, f"{message}; {restored_message(kept)}")
        return
    if st.phase == Phase.ANALYZING:
        _analyse(ctx, spec)
        return
    step = st.step
    if step is None:  # Running without a step: a status from before the run was entered
        enter(ctx, spec, 0, ExperimentStage.APPLY)
        step = st.step
        assert step is not None
    if step.stage in (ExperimentStage.ROLL_OUT, ExperimentStage.TEST):
        edits = experiment_target.edits_by_others(ctx.kube, ctx.namespace, snap, step)
        if edits:
            modified(ctx, snap, edits)
            return
    STAGES[step.stage](ctx, snap, step)


def _created(body: dict[str, Any]) -> datetime | None:
    text = body["metadata"].get("creationTimestamp")
    return parse_time(str(text)) if text else None


def _holder(ctx: Exp) -> target_lease.Holder:
    return target_lease.Holder("ScalingExperiment", ctx.namespace, ctx.name, ctx.uid)


def _snapshot(ctx: Exp) -> Snapshot | None:
    """The frozen snapshot, its spec narrowed to the variants that run live (liveTopK)."""
    cm = ctx.kube.configmap(ctx.namespace, snapshot_name(ctx.name))
    snap = experiment_target.read_snapshot(cm, ctx.status.snapshot_digest)
    if snap is None:
        return None
    return replace(snap, spec=experiment_simulation.live_spec(snap.spec, ctx.status.predictions))


def _note_drift(ctx: Exp) -> None:
    started = ctx.status.run_generation
    drifted = ctx.generation is not None and started is not None and ctx.generation > started
    if drifted and not condition_is(ctx.status.conditions, "SpecDrifted", "True"):
        ctx.condition(
            "SpecDrifted",
            "True",
            Reason.SPEC_CHANGED,
            "the spec changed during the experiment; it goes on with the spec it started with",
        )
        ctx.event("Normal", Reason.SPEC_DRIFTED, "spec changed mid-experiment; change ignored")


def _policy_violations(ctx: Exp, spec: ScalingExperimentSpec) -> list[Violation]:
    """The cluster policy, checked before the experiment takes anything: its loadTest meets
    the LoadTest rules (its runs count against the namespace's cap when they start), the
    target has opted in, the variants stay within the caps."""
    settings = ctx.settings
    lt = spec.load_test
    # Its runs count against the cap when they start, as LoadTests: nothing to count now.
    facts = gather(lt, ctx.body, settings.policy, ctx.kube, count_runs=False)
    allowed = Allowed(settings.allowed_images, settings.allowed_prometheus_urls)
    found = loadtest_violations(lt, ctx.namespace, settings.policy, allowed, facts)
    nested = [replace(v, field=v.field.replace("spec.", "spec.loadTest.", 1)) for v in found]
    dep = ctx.kube.deployment(ctx.namespace, spec.target_ref.deployment)
    hpa = ctx.kube.hpa(ctx.namespace, spec.target_ref.hpa) if spec.target_ref.hpa else None
    labels = {n: ctx.kube.secret_labels(ctx.namespace, n) for _, n in secret_names(spec)}
    so_name = spec.target_ref.scaled_object
    so = ctx.kube.scaled_object(ctx.namespace, so_name) if so_name else None
    extra = experiment_violations(
        spec,
        dep,
        settings.policy,
        hpa=hpa,
        secret_labels=labels,
        scaled_object=so,
        prometheus_urls=settings.allowed_prometheus_urls,
    )
    return nested + extra


def _start(ctx: Exp, spec: ScalingExperimentSpec) -> None:
    experiment_simulation.check(spec)  # before queueing: bad simulation input fails at once
    target = spec.target_ref.deployment
    got = leases.take(
        ctx.kube,
        ctx.status,
        spec,
        namespace=ctx.namespace,
        holder=_holder(ctx),
        now=ctx.now,
        still_holds=lambda other: target_lease.holder_alive(ctx.kube, other),
    )
    if not got.held:
        who = got.by.describe() if got.by is not None else "another run"
        # spec.timeout bounds the whole experiment, the wait for its target included.
        created = _created(ctx.body) or ctx.now
        if ctx.now - created > timedelta(seconds=spec.timeout):
            message = f"{who} held {target} for all of spec.timeout ({spec.timeout:g}s)"
            end(ctx, Phase.FAILED, Reason.EXPERIMENT_TIMEOUT, message + "; nothing was applied")
            return
        ctx.condition("Queued", "True", Reason.TARGET_BUSY, f"{who} holds {target}")
        ctx.status.phase = Phase.PENDING
        return
    st = ctx.status
    if condition_is(st.conditions, "Queued", "True"):
        ctx.condition("Queued", "False", Reason.TARGET_FREE, f"this experiment holds {target}")
    # Read again now the Lease is held (the policy check read it before): a previous
    # holder's restore is written before it lets go, so these are the originals.
    dep = ctx.kube.deployment(ctx.namespace, target)
    if dep is None:
        ctx.condition("Ready", "False", Reason.TARGET_NOT_READY, f"Deployment {target} not found")
        end(ctx, Phase.FAILED, Reason.TARGET_NOT_READY, f"Deployment {target} not found")
        return
    hpa = ctx.kube.hpa(ctx.namespace, spec.target_ref.hpa) if spec.target_ref.hpa else None
    dep_spec, hpa_spec = dep["spec"], (hpa or {}).get("spec")
    st.start_time, st.run_generation, st.runs, st.comparison = ctx.stamp, ctx.generation, [], []
    # Simulate, then confirm: rank every variant before anything is applied.
    st.predictions = experiment_simulation.select(spec)
    run_spec = experiment_simulation.live_spec(spec, st.predictions)
    simulated = experiment_simulation.summary(spec, st.predictions)
    if simulated:
        ctx.event("Normal", Reason.SIMULATED, simulated)
        simulated = f"; {simulated}"
    so_name = spec.target_ref.scaled_object
    so = ctx.kube.scaled_object(ctx.namespace, so_name) if so_name else None
    if spec.dry_run:
        entries = dry_run.plan_entries(run_spec, dep_spec, hpa_spec, (so or {}).get("spec"))
        try:
            where = dry_run.record_plan(ctx, entries)
        except dry_run.PlanTooLarge as exc:
            end(ctx, Phase.FAILED, Reason.PLAN_TOO_LARGE, f"{exc}; nothing was applied")
            return
        ctx.condition("Ready", "True", Reason.ACCEPTED, f"dry run: nothing applied{simulated}")
        end(ctx, Phase.SUCCEEDED, Reason.DRY_RUN, f"dry run: {where}; nothing was applied")
        return
    cm = experiment_target.snapshot_configmap(ctx.body, dep, hpa_spec, spec, so)
    # An existing one is used only if it is this experiment's own and holds what it would
    # write now (nothing was applied before the snapshot is in status, so the target is
    # still the original): a pre-created "snapshot" would have the originals restored from it.
    live = ctx.create(cm) or cm
    digest = experiment_target.snapshot_digest(dict(cm.get("data") or {}))
    if experiment_target.snapshot_digest(dict(live.get("data") or {})) != digest:
        where = f"ConfigMap {ctx.namespace}/{cm['metadata']['name']}"
        raise PolicyViolation(
            [Violation(where, "verifyPlanHash", "exists already with content Surge did not write")]
        )
    st.snapshot_digest = digest
    st.target_uid = str(dep["metadata"].get("uid"))
    ctx.condition(
        "Ready", "True", Reason.ACCEPTED, f"{len(runs_of(run_spec))} runs planned{simulated}"
    )
    ctx.goto(
        Phase.RUNNING,
        Reason.RUN_STARTED,
        f"original of {target} saved; starting {run_spec.variants[0].name}",
    )
    enter(ctx, run_spec, 0, ExperimentStage.APPLY)


def _analyse(ctx: Exp, spec: ScalingExperimentSpec) -> None:
    runs = ctx.status.runs
    rows = [aggregate(v.name, [r for r in runs if r.name == v.name]) for v in spec.variants]
    rows = experiment_simulation.with_predicted(rows, ctx.status.predictions)
    ranked = rank(rows, spec.objective)
    ctx.status.comparison = ranked
    line = recommendation(ranked, spec.objective)
    ctx.status.recommendation = line
    end(ctx, Phase.SUCCEEDED, Reason.RECOMMENDED, line)


def restore_on_delete(body: dict[str, Any], kube: Kube, settings: Settings, now: datetime) -> None:
    """The finalizer of an experiment in flight: put back the variant's fields that still
    hold what it wrote, and stop the child LoadTests. A finished experiment restored them
    already, and one whose snapshot or target is gone has nothing safe to write: neither
    writes anything."""
    ctx: Exp = Ctx(body, kube, settings, now, ScalingExperimentStatus)
    kube.delete_loadtests(ctx.namespace, f"{LABEL_EXPERIMENT}={builders.fit_name(ctx.name)}")
    if ctx.status.phase in TERMINAL_PHASES or ctx.status.phase in (None, Phase.PENDING):
        return
    snap = _snapshot(ctx)
    if snap is not None:
        label = builders.fit_name(ctx.name)
        experiment_target.restore(kube, ctx.namespace, snap, ctx.status.step, label)
