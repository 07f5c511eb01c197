"""The ScalingExperiment lifecycle: variants one after another, the original always restored.

Runs go variant by variant, repetition after repetition (a, b, a, b: drift in the
cluster spreads over all variants instead of favouring the first). Each run moves through
Apply -> RollOut -> Test -> Restore -> Cooldown. The original Deployment and HPA specs are
snapshotted once into a ConfigMap before anything is changed, and every restore writes
them back; the step lives in status, so a restarted operator carries on from it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from surge.api.experiment import ScalingExperimentSpec, Variant
from surge.api.loadtest import DeploymentRef
from surge.api.manifests import ManifestError, parse_spec
from surge.api.status import TERMINAL_PHASES, Phase
from surge.operator import builders
from surge.operator.conditions import now_rfc3339, parse_time
from surge.operator.kube import Kube
from surge.operator.lifecycle import Ctx, Step
from surge.operator.settings import Settings
from surge.operator.variants import (
    aggregate,
    apply_hpa,
    apply_variant,
    price_per_replica_hour,
    rank,
    recommendation,
    run_cost,
)

LABEL_EXPERIMENT = "surge.dev/experiment"
LABEL_VARIANT = "surge.dev/variant"
DEPLOYMENT_KEY, HPA_KEY = "deployment.json", "hpa.json"
MAX_SERIES_POINTS = 120


def snapshot_name(experiment: str) -> str:
    return builders.fit_name(f"{experiment}-snapshot")


def child_name(experiment: str, variant: str, repetition: int) -> str:
    return builders.fit_name(f"{experiment}-{variant}-r{repetition}", 40)


def runs_of(spec: ScalingExperimentSpec) -> list[tuple[Variant, int]]:
    return [(v, r) for r in range(spec.repetitions) for v in spec.variants]


def snapshot_configmap(
    owner: dict[str, Any], deployment_spec: dict[str, Any], hpa_spec: dict[str, Any] | None
) -> dict[str, Any]:
    name, ns = owner["metadata"]["name"], owner["metadata"]["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": snapshot_name(name),
            "namespace": ns,
            "labels": {LABEL_EXPERIMENT: builders.fit_name(name)},
            "ownerReferences": [builders.owner_reference(owner)],
        },
        "data": {
            DEPLOYMENT_KEY: json.dumps(deployment_spec, sort_keys=True),
            HPA_KEY: json.dumps(hpa_spec, sort_keys=True),
        },
    }


def child_loadtest(
    owner: dict[str, Any], spec: ScalingExperimentSpec, variant: Variant, repetition: int
) -> dict[str, Any]:
    """The LoadTest of one run: the template, pointed at the target Deployment."""
    name, ns = owner["metadata"]["name"], owner["metadata"]["namespace"]
    lt = spec.load_test.model_copy(deep=True)
    if lt.target.deployment_ref is None:
        lt.target.deployment_ref = DeploymentRef(name=spec.target_ref.deployment)
    return {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {
            "name": child_name(name, variant.name, repetition),
            "namespace": ns,
            "labels": {LABEL_EXPERIMENT: builders.fit_name(name), LABEL_VARIANT: variant.name},
            "ownerReferences": [builders.owner_reference(owner)],
        },
        "spec": lt.wire(),
    }


def rollout_done(dep: dict[str, Any] | None) -> bool:
    if dep is None:
        return False
    meta, spec, st = dep["metadata"], dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    return (
        int(st.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and int(st.get("updatedReplicas") or 0) == want
        and int(st.get("availableReplicas") or 0) >= want
        and int(st.get("replicas") or 0) == want
    )


def reconcile_experiment(
    body: dict[str, Any], kube: Kube, settings: Settings, now: datetime
) -> Step:
    ctx = Ctx(body, kube, settings, now)
    phase = (body.get("status") or {}).get("phase")
    if phase in {p.value for p in TERMINAL_PHASES}:
        return ctx.step
    try:
        spec: ScalingExperimentSpec = parse_spec("ScalingExperiment", body.get("spec") or {})
    except ManifestError as exc:
        ctx.condition("Ready", "False", "InvalidSpec", str(exc))
        ctx.step.status["completionTime"] = ctx.stamp
        ctx.goto(Phase.FAILED, "InvalidSpec", str(exc))
        return ctx.step
    if not phase or phase == Phase.PENDING.value:
        _start(ctx, spec)
        return ctx.step
    started = parse_time(ctx.status.get("startTime")) or now
    if now - started > timedelta(seconds=spec.timeout):
        _stop_current_child(ctx, spec)
        _restore(ctx, spec)
        _end(
            ctx,
            Phase.FAILED,
            "ExperimentTimeout",
            f"the experiment ran past spec.timeout ({spec.timeout:g}s); originals restored",
        )
        return ctx.step
    if phase == Phase.ANALYZING.value:
        _analyse(ctx, spec)
        return ctx.step
    step = dict(ctx.status.get("step") or {})
    {
        "Apply": _apply,
        "RollOut": _roll_out,
        "Test": _test,
        "Restore": _restore_step,
        "Cooldown": _cooldown,
    }[step.get("stage", "Apply")](ctx, spec, step)
    return ctx.step


def _start(ctx: Ctx, spec: ScalingExperimentSpec) -> None:
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
            ctx.step.status["phase"] = Phase.PENDING.value
            return
    dep = ctx.kube.deployment(ctx.namespace, target)
    if dep is None:
        ctx.condition("Ready", "False", "TargetNotReady", f"Deployment {target} not found")
        ctx.step.status["completionTime"] = ctx.stamp
        ctx.goto(Phase.FAILED, "TargetNotReady", f"Deployment {target} not found")
        return
    hpa = ctx.kube.hpa(ctx.namespace, spec.target_ref.hpa) if spec.target_ref.hpa else None
    dep_spec, hpa_spec = dep["spec"], (hpa or {}).get("spec")
    ctx.step.status.update(
        {"startTime": ctx.stamp, "observedGeneration": ctx.generation, "runs": [], "comparison": []}
    )
    if spec.dry_run:
        ctx.step.status["plan"] = [
            {
                "variant": v.name,
                "deployment": apply_variant(dep_spec, v),
                "hpa": apply_hpa(hpa_spec, v.hpa, target) or hpa_spec,
            }
            for v in spec.variants
        ]
        ctx.condition("Ready", "True", "Accepted", "dry run: nothing applied")
        ctx.step.status["completionTime"] = ctx.stamp
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


def _enter(ctx: Ctx, spec: ScalingExperimentSpec, index: int, stage: str, **extra: Any) -> None:
    variant, rep = runs_of(spec)[index]
    ctx.step.status["step"] = {
        "index": index,
        "stage": stage,
        "since": ctx.stamp,
        "variant": variant.name,
        "repetition": rep,
        **extra,
    }
    ctx.step.status["currentVariant"] = variant.name


def _snapshot(ctx: Ctx) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    cm = ctx.kube.configmap(ctx.namespace, snapshot_name(ctx.name))
    if cm is None:
        return None
    data = cm.get("data") or {}
    return json.loads(data[DEPLOYMENT_KEY]), json.loads(data.get(HPA_KEY, "null"))


def _apply(ctx: Ctx, spec: ScalingExperimentSpec, step: dict[str, Any]) -> None:
    snap = _snapshot(ctx)
    if snap is None:
        _end(ctx, Phase.FAILED, "RunLost", "the snapshot ConfigMap disappeared; nothing restored")
        return
    dep_spec, hpa_spec = snap
    variant, _ = runs_of(spec)[step["index"]]
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
    _enter(ctx, spec, step["index"], "RollOut", pendingSeconds=0.0)


def _pending_pods(ctx: Ctx, dep: dict[str, Any]) -> str | None:
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    for pod in ctx.kube.pods(ctx.namespace, selector):
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return str(cond.get("message") or "unschedulable")
    return None


def _roll_out(ctx: Ctx, spec: ScalingExperimentSpec, step: dict[str, Any]) -> None:
    dep = ctx.kube.deployment(ctx.namespace, spec.target_ref.deployment)
    since = parse_time(step.get("since")) or ctx.now
    last = parse_time(step.get("lastSample")) or since
    pending = _pending_pods(ctx, dep) if dep else None
    step["pendingSeconds"] = float(step.get("pendingSeconds", 0.0)) + (
        (ctx.now - last).total_seconds() if pending else 0.0
    )
    step["lastSample"] = ctx.stamp
    if pending:
        step["pendingReason"] = pending
    if rollout_done(dep):
        _enter(
            ctx,
            spec,
            step["index"],
            "Test",
            rolloutSeconds=(ctx.now - since).total_seconds(),
            pendingSeconds=step["pendingSeconds"],
        )
        return
    if ctx.now - since > timedelta(seconds=spec.rollout_timeout):
        variant, rep = runs_of(spec)[step["index"]]
        row = {
            "name": variant.name,
            "repetition": rep,
            "phase": Phase.FAILED.value,
            "passed": False,
            "reason": "RolloutTimeout",
            "message": f"not rolled out after {spec.rollout_timeout:g}s"
            + (f": {pending}" if pending else ""),
            "pendingSeconds": step["pendingSeconds"],
        }
        ctx.step.status["runs"] = [*(ctx.status.get("runs") or []), row]
        ctx.event("Warning", "RolloutTimeout", f"{variant.name}: {row['message']}")
        _enter(ctx, spec, step["index"], "Restore")
        return
    ctx.step.status["step"] = step


def _test(ctx: Ctx, spec: ScalingExperimentSpec, step: dict[str, Any]) -> None:
    variant, rep = runs_of(spec)[step["index"]]
    name = child_name(ctx.name, variant.name, rep)
    child = ctx.kube.loadtest(ctx.namespace, name)
    if child is None:
        ctx.kube.create_loadtest(child_loadtest(ctx.body, spec, variant, rep))
        hpa = ctx.kube.hpa(ctx.namespace, spec.target_ref.hpa) if spec.target_ref.hpa else None
        step["hpaInForce"] = (hpa or {}).get("spec")
        step["lastSample"] = ctx.stamp
        ctx.step.status["step"] = step
        return
    status = child.get("status") or {}
    _sample_replicas(
        ctx,
        spec,
        step,
        loading=status.get("phase") == Phase.RUNNING.value and bool(status.get("loadStartTime")),
    )
    if status.get("phase") in {p.value for p in TERMINAL_PHASES}:
        row = run_row(variant, rep, name, status, step, price_per_replica_hour(variant, spec.cost))
        ctx.step.status["runs"] = [*(ctx.status.get("runs") or []), row]
        ctx.event(
            "Normal",
            "VariantMeasured",
            f"{variant.name} r{rep}: {status.get('phase')}, p95 {row.get('p95Ms')} ms",
        )
        if _over_budget(spec, ctx.step.status["runs"]):
            _restore(ctx, spec)
            _end(ctx, Phase.ABORTED, "BudgetExhausted", "spec.budget spent; originals restored")
            return
        _enter(ctx, spec, step["index"], "Restore")
        return
    ctx.step.status["step"] = step


def _sample_replicas(
    ctx: Ctx, spec: ScalingExperimentSpec, step: dict[str, Any], loading: bool
) -> None:
    """Integrates the Deployment's replicas over the load, so cost needs no Prometheus."""
    last = parse_time(step.get("lastSample")) or ctx.now
    step["lastSample"] = ctx.stamp
    if not loading:
        return
    dep = ctx.kube.deployment(ctx.namespace, spec.target_ref.deployment)
    replicas = int(((dep or {}).get("status") or {}).get("replicas") or 0)
    dt = (ctx.now - last).total_seconds()
    step["replicaSeconds"] = float(step.get("replicaSeconds", 0.0)) + replicas * dt
    step["observedSeconds"] = float(step.get("observedSeconds", 0.0)) + dt
    step["replicasMin"] = min(replicas, step.get("replicasMin", replicas))
    step["replicasMax"] = max(replicas, step.get("replicasMax", replicas))
    # A step series of changes only, [seconds since the load began, replicas], bounded.
    series = list(step.get("replicaSeries") or [])
    if (not series or series[-1][1] != replicas) and len(series) < MAX_SERIES_POINTS:
        series.append([round(float(step["observedSeconds"]) - dt, 3), replicas])
    step["replicaSeries"] = series


def run_row(
    variant: Variant,
    rep: int,
    loadtest: str,
    status: dict[str, Any],
    step: dict[str, Any],
    price: float | None,
) -> dict[str, Any]:
    """One run's row: the child's results, cluster replicas (Prometheus when it had them,
    else the operator's own samples), and cost."""
    results = status.get("results") or {}
    summary = status.get("summary") or {}
    replicas = (results.get("cluster") or {}).get("replicas") or {}
    observed = float(step.get("observedSeconds") or 0.0)
    from_prom = replicas.get("replicaSeconds") is not None
    replica_seconds = (
        replicas.get("replicaSeconds")
        if from_prom
        else (step.get("replicaSeconds") if observed else None)
    )
    requests = (results.get("requests") or {}).get("sent")
    return {
        "name": variant.name,
        "repetition": rep,
        "loadTest": loadtest,
        "phase": status.get("phase"),
        "passed": status.get("phase") == Phase.SUCCEEDED.value,
        "achievedRps": summary.get("achievedRps"),
        "p95Ms": summary.get("p95Ms"),
        "p99Ms": (results.get("latency") or {}).get("p99"),
        "ttftP95Ms": (results.get("ttft") or {}).get("p95"),
        "errorRate": summary.get("errorRate"),
        "requests": requests,
        "replicasMin": replicas.get("min", step.get("replicasMin")),
        "replicasMax": replicas.get("max", step.get("replicasMax")),
        "replicasMean": replicas.get(
            "mean",
            (replica_seconds / observed) if replica_seconds is not None and observed else None,
        ),
        "timeToScaleUpS": replicas.get("timeToFirstScaleUpS"),
        "scaleEvents": replicas.get("scaleEvents"),
        "replicaSeconds": replica_seconds,
        "replicaSource": "prometheus" if from_prom else "operator",
        "pricePerReplicaHour": price,
        **run_cost(replica_seconds, price, requests),
        "pendingSeconds": step.get("pendingSeconds"),
        "rolloutSeconds": step.get("rolloutSeconds"),
        "hpaInForce": step.get("hpaInForce"),
        "replicaSeries": replicas.get("series") if from_prom else step.get("replicaSeries"),
        "replicaSeriesEndS": (
            (results.get("window") or {}).get("measuredSeconds") if from_prom else observed or None
        ),
    }


def _over_budget(spec: ScalingExperimentSpec, runs: list[dict[str, Any]]) -> bool:
    if spec.budget is None:
        return False
    hours = sum(r.get("replicaHours") or 0.0 for r in runs)
    gpu_variants = {
        v.name
        for v in spec.variants
        if "nvidia.com/gpu" in str((v.resources or {}).get("limits") or {})
    }
    gpu_hours = sum(r.get("replicaHours") or 0.0 for r in runs if r["name"] in gpu_variants)
    b = spec.budget
    return bool(
        (b.max_replica_hours is not None and hours > b.max_replica_hours)
        or (b.max_gpu_hours is not None and gpu_hours > b.max_gpu_hours)
    )


def _stop_current_child(ctx: Ctx, spec: ScalingExperimentSpec) -> None:
    """An experiment ending early must not leave its current load running."""
    step = ctx.status.get("step") or {}
    if step.get("stage") == "Test":
        variant, rep = runs_of(spec)[step["index"]]
        ctx.kube.suspend_loadtest(ctx.namespace, child_name(ctx.name, variant.name, rep))


def _restore(ctx: Ctx, spec: ScalingExperimentSpec) -> None:
    snap = _snapshot(ctx)
    if snap is None:
        return
    dep_spec, hpa_spec = snap
    ctx.kube.replace_deployment_spec(ctx.namespace, spec.target_ref.deployment, dep_spec)
    if spec.target_ref.hpa:
        ctx.kube.put_hpa_spec(ctx.namespace, spec.target_ref.hpa, hpa_spec, {})


def _restore_step(ctx: Ctx, spec: ScalingExperimentSpec, step: dict[str, Any]) -> None:
    _restore(ctx, spec)
    ctx.event(
        "Normal", "Restored", f"{spec.target_ref.deployment} restored after {step.get('variant')}"
    )
    if step["index"] + 1 < len(runs_of(spec)):
        _enter(ctx, spec, step["index"], "Cooldown")
    else:
        ctx.step.status["step"] = None
        ctx.step.status["currentVariant"] = None
        ctx.goto(Phase.ANALYZING, "Analyzing", "all variants ran; comparing")


def _cooldown(ctx: Ctx, spec: ScalingExperimentSpec, step: dict[str, Any]) -> None:
    since = parse_time(step.get("since")) or ctx.now
    if ctx.now - since >= timedelta(seconds=spec.cooldown):
        _enter(ctx, spec, step["index"] + 1, "Apply")


def _analyse(ctx: Ctx, spec: ScalingExperimentSpec) -> None:
    runs = list(ctx.status.get("runs") or [])
    rows = [aggregate(v.name, [r for r in runs if r["name"] == v.name]) for v in spec.variants]
    ranked = rank(rows, spec.objective)
    ctx.step.status["comparison"] = ranked
    line = recommendation(ranked, spec.objective)
    ctx.step.status["recommendation"] = line
    _end(ctx, Phase.SUCCEEDED, "Recommended", line)


def _end(ctx: Ctx, phase: Phase, reason: str, message: str) -> None:
    ctx.step.status["completionTime"] = now_rfc3339(ctx.now)
    ctx.step.status["currentVariant"] = None
    ctx.goto(phase, reason, message)


def restore_on_delete(body: dict[str, Any], kube: Kube, settings: Settings, now: datetime) -> None:
    """The finalizer: put the originals back and stop the child LoadTests."""
    ctx = Ctx(body, kube, settings, now)
    try:
        spec: ScalingExperimentSpec = parse_spec("ScalingExperiment", body.get("spec") or {})
    except ManifestError:
        return
    kube.delete_loadtests(ctx.namespace, f"{LABEL_EXPERIMENT}={builders.fit_name(ctx.name)}")
    if not spec.dry_run:
        _restore(ctx, spec)
