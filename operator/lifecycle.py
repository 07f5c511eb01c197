"""The LoadTest state machine: Pending -> WaitingForTarget -> Running -> Analyzing -> Succeeded
| Failed | Aborted. Level-triggered: each step reads the run's state from the cluster (status,
the run's ConfigMap, Job and pods) and moves it on, so a restarted operator resumes where the
cluster says the run is. Status changes only through LoadTestStatus (operator/context.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from surge import readiness
from surge.api.loadtest import LoadTestSpec
from surge.api.manifests import ManifestError
from surge.api.status import TERMINAL_PHASES, LoadTestStatus, Phase, RunRecord, WorkerCounts
from surge.loadgen.plan import parse_plan
from surge.operator import admission, builders, collect
from surge.operator.cluster import cluster_reader
from surge.operator.conditions import condition_is, condition_since, now_rfc3339, parse_time
from surge.operator.context import Ctx, Step
from surge.operator.kube import Kube
from surge.operator.pods import diagnose
from surge.operator.settings import Settings

ACTIVE = {Phase.WAITING_FOR_TARGET.value, Phase.RUNNING.value, Phase.ANALYZING.value}

Run = Ctx[LoadTestStatus]


def reconcile(body: dict[str, Any], kube: Kube, settings: Settings, now: datetime) -> Step:
    ctx: Run = Ctx(body, kube, settings, now, LoadTestStatus)
    spec_raw = body.get("spec") or {}
    wanted = str(spec_raw.get("runId", "1"))
    if ctx.status.run_id != wanted:
        start_run(ctx, wanted)
        return ctx.step()
    phase = ctx.status.phase
    if phase in TERMINAL_PHASES:
        return ctx.step()
    if spec_raw.get("suspend"):
        abort(ctx, "Suspended", "spec.suspend is true")
        return ctx.step()
    _note_drift(ctx)
    PHASES[phase or Phase.PENDING](ctx)
    return ctx.step()


def _note_drift(ctx: Run) -> None:
    started_at = ctx.status.observed_generation
    drifted = ctx.generation is not None and started_at is not None and ctx.generation > started_at
    if drifted and not condition_is(ctx.status.conditions, "SpecDrifted", "True"):
        ctx.condition(
            "SpecDrifted",
            "True",
            "SpecChanged",
            "the spec changed during the run; it goes on with the spec it started "
            "with; bump spec.runId to run the new one",
        )
        ctx.event("Normal", "SpecDrifted", "spec changed mid-run; change ignored until next run")


def _snapshot(ctx: Run) -> LoadTestSpec | None:
    """The spec the run started with, from the run's ConfigMap."""
    cm = ctx.kube.configmap(ctx.namespace, builders.run_name(ctx.name, _run_id(ctx)))
    if cm is None or builders.PLAN_KEY not in (cm.get("data") or {}):
        fail(ctx, "RunLost", "the run's ConfigMap disappeared; bump spec.runId to run again")
        return None
    return parse_plan(cm["data"][builders.PLAN_KEY]).spec


def _run_id(ctx: Run) -> str:
    return ctx.status.run_id or "1"  # set by start_run before any phase runs


def start_run(ctx: Run, run_id: str) -> None:
    old = ctx.status
    history = list(old.history)
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
    ctx.status = LoadTestStatus(
        run_id=run_id,
        observed_generation=ctx.generation,
        start_time=ctx.stamp,
        history=history[: ctx.settings.history_limit],
    )
    try:
        spec = admission.accepted_spec(
            ctx.body.get("spec") or {}, ctx.namespace, ctx.kube, ctx.settings
        )
    except ManifestError as exc:
        ctx.condition("Ready", "False", "InvalidSpec", str(exc))
        ctx.status.completion_time = ctx.stamp
        ctx.goto(Phase.FAILED, "InvalidSpec", str(exc))
        return
    admission.store_plan(ctx.body, spec, run_id, ctx.kube)
    ctx.status.workers.expected = spec.load.workers
    if spec.load.model != "closed":
        ctx.status.summary.target_rps = spec.load.peak
    ctx.condition("Ready", "True", "Accepted", f"run {run_id} accepted")
    ctx.goto(Phase.PENDING, "RunStarted", f"run {run_id} accepted")


def pending(ctx: Run) -> None:
    mine = admission.target_key(ctx.body.get("spec") or {}, ctx.namespace)
    for other in ctx.kube.loadtests(ctx.namespace):
        if other["metadata"]["name"] == ctx.name:
            continue
        busy = (other.get("status") or {}).get("phase") in ACTIVE
        if busy and admission.target_key(other.get("spec") or {}, ctx.namespace) == mine:
            msg = f"LoadTest {other['metadata']['name']} is running against the same target"
            if not condition_is(ctx.status.conditions, "Queued", "True"):
                ctx.event("Normal", "TargetBusy", msg)
            ctx.condition("Queued", "True", "TargetBusy", msg)
            return
    ctx.condition("Queued", "False", "TargetFree", "no other run holds the target")
    ctx.condition("TargetReady", "False", "Waiting", "waiting for the target")
    ctx.goto(Phase.WAITING_FOR_TARGET, "WaitingForTarget", "waiting for the target to be ready")


def waiting_for_target(ctx: Run) -> None:
    spec = _snapshot(ctx)
    if spec is None:
        return
    ok, notes = True, list[str]()
    ref = spec.target.deployment_ref
    if ref is not None and spec.target.readiness.deployment_available:
        ready, note = readiness.deployment_ready(
            ctx.kube.deployment(ref.namespace or ctx.namespace, ref.name), ref.name
        )
        ok, notes = ok and ready, [*notes, note]
    url = spec.target.health_url()
    if url is not None and ok:
        check = spec.target.readiness.http
        ready, note = readiness.http_ready(url, check.expect_status if check else 200)
        ok, notes = ok and ready, [*notes, note]
    message = "; ".join(notes) or "no readiness check configured"
    if ok:
        ctx.condition("TargetReady", "True", "TargetReady", message)
        _launch_workers(ctx, spec)
        return
    timeout = spec.timeouts.target_ready or spec.target.readiness.timeout
    since = condition_since(ctx.status.conditions, "TargetReady") or ctx.now
    if ctx.now - since > timedelta(seconds=timeout):
        ctx.condition(
            "TargetReady", "False", "TargetNotReady", f"not ready after {timeout:g}s: {message}"
        )
        fail(ctx, "TargetNotReady", f"target not ready after {timeout:g}s: {message}")
        return
    ctx.condition("TargetReady", "False", "Waiting", message)


def _launch_workers(ctx: Run, spec: LoadTestSpec) -> None:
    run_id = _run_id(ctx)
    for obj in builders.worker_rbac(ctx.body, run_id):
        ctx.kube.ensure(obj)
    job = builders.worker_job(
        ctx.body,
        spec,
        run_id,
        image=spec.image or ctx.settings.loadgen_image,
        command=ctx.settings.worker_command,
        metrics_port=ctx.settings.worker_metrics_port,
    )
    ctx.kube.ensure(job)
    n = spec.load.workers
    ctx.condition("WorkersScheduled", "False", "Waiting", f"waiting for {n} workers to run")
    ctx.goto(
        Phase.RUNNING,
        "WorkersCreated",
        f"Job {job['metadata']['name']} created with {n} workers; waiting for all to run",
    )


def running(ctx: Run) -> None:
    spec = _snapshot(ctx)
    if spec is None:
        return
    n = spec.load.workers
    pods = ctx.kube.pods(ctx.namespace, builders.selector(ctx.name, _run_id(ctx)))
    w = diagnose(pods, n)
    ctx.status.workers = WorkerCounts(
        expected=n, running=w.running, succeeded=w.succeeded, failed=w.failed
    )
    started = parse_time(ctx.status.load_start_time)
    if started is None:
        _before_the_barrier(ctx, spec, w)
        return
    job = ctx.kube.job(ctx.namespace, builders.run_name(ctx.name, _run_id(ctx)))
    job_ended = any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in ((job or {}).get("status") or {}).get("conditions") or []
    )
    if w.finished or job_ended:
        ctx.condition(
            "Completed", "True", "WorkersFinished", f"{w.succeeded} of {n} workers succeeded"
        )
        ctx.goto(Phase.ANALYZING, "Analyzing", "all workers finished; merging results")
        return
    deadline = started + timedelta(seconds=spec.load.duration_s + spec.timeouts.run_grace)
    if ctx.now > deadline:
        _stop_workers(ctx)
        ctx.condition(
            "Completed",
            "False",
            "RunTimeout",
            f"workers still running {spec.timeouts.run_grace:g}s after the load's end",
        )
        fail(ctx, "RunTimeout", "the load ran past its duration plus timeouts.runGrace")


def _before_the_barrier(ctx: Run, spec: LoadTestSpec, w: Any) -> None:
    """Workers exist, the load has not started: open the barrier once all run."""
    n = spec.load.workers
    if w.fatal is not None:
        ctx.condition("WorkersScheduled", "False", w.fatal.reason, w.fatal.message)
        _stop_workers(ctx)
        fail(ctx, w.fatal.reason, w.fatal.message)
        return
    if w.running == n:
        start = ctx.now + timedelta(seconds=ctx.settings.start_delay_s)
        ctx.kube.patch_configmap_data(
            ctx.namespace,
            builders.run_name(ctx.name, _run_id(ctx)),
            {builders.START_KEY: f"{start.timestamp():.3f}"},
        )
        ctx.status.load_start_time = now_rfc3339(start)
        ctx.condition(
            "WorkersScheduled",
            "True",
            "BarrierOpened",
            f"all {n} workers running; load starts at {now_rfc3339(start)}",
        )
        ctx.event("Normal", "BarrierOpened", f"{n} workers start at {now_rfc3339(start)}")
        return
    since = condition_since(ctx.status.conditions, "WorkersScheduled") or ctx.now
    if ctx.now - since > timedelta(seconds=spec.timeouts.workers_ready):
        problem = w.waiting
        reason = problem.reason if problem else "WorkersNotReady"
        message = problem.message if problem else "workers did not start"
        ctx.condition("WorkersScheduled", "False", reason, message)
        _stop_workers(ctx)
        fail(ctx, reason, f"workers not running after {spec.timeouts.workers_ready:g}s: {message}")


def analyzing(ctx: Run) -> None:
    spec = _snapshot(ctx)
    if spec is None:
        return
    n = spec.load.workers
    run_id = _run_id(ctx)
    pods = ctx.kube.pods(ctx.namespace, builders.selector(ctx.name, run_id))
    w = diagnose(pods, n)
    outcome = collect.analyse(
        spec,
        w,
        lambda pod: ctx.kube.pod_log(ctx.namespace, pod["metadata"]["name"]),
        cluster_reader(
            spec,
            namespace=ctx.namespace,
            loadtest=ctx.name,
            run_id=run_id,
            kube=ctx.kube,
            settings=ctx.settings,
        ),
    )
    judged = outcome.judgement
    ctx.status.results = outcome.results
    ctx.status.thresholds = judged.thresholds
    ctx.status.summary = outcome.summary
    ctx.status.workers = WorkerCounts(
        expected=n,
        succeeded=w.succeeded,
        failed=w.failed,
        reported=outcome.reported,
        missing=outcome.missing,
    )
    mc = outcome.metrics_condition
    ctx.condition("MetricsAvailable", mc["status"], mc["reason"], mc["message"])
    if outcome.missing:
        missing = ", ".join(map(str, outcome.missing))
        ctx.condition(
            "Completed", "False", "WorkerMissingSummary", f"workers {missing} reported nothing"
        )
    elif w.failed:
        ctx.condition("Completed", "False", "WorkerFailed", f"{w.failed} workers failed")
    held = "True" if outcome.thresholds_held else "False"
    ctx.condition("ThresholdsPassed", held, outcome.thresholds_reason, outcome.thresholds_message)
    phase = Phase.SUCCEEDED if judged.passed else Phase.FAILED
    _finish(ctx, phase, judged.reason, judged.message)
    policy = spec.cleanup.workers
    if policy == "Delete" or (policy == "DeleteOnSuccess" and judged.passed):
        _stop_workers(ctx)


PHASES: dict[Phase, Callable[[Run], None]] = {
    Phase.PENDING: pending,
    Phase.WAITING_FOR_TARGET: waiting_for_target,
    Phase.RUNNING: running,
    Phase.ANALYZING: analyzing,
}


def _stop_workers(ctx: Run) -> None:
    ctx.kube.delete_jobs(ctx.namespace, builders.selector(ctx.name, _run_id(ctx)))


def _finish(ctx: Run, phase: Phase, reason: str, message: str) -> None:
    ctx.status.completion_time = ctx.stamp
    ctx.goto(phase, reason, message)
    st = ctx.status
    record = RunRecord(
        run_id=_run_id(ctx),
        phase=phase,
        start_time=st.start_time,
        completion_time=ctx.stamp,
        summary=st.summary.model_copy(),
        thresholds=list(st.thresholds),
        message=message,
    )
    history = [h for h in st.history if h.run_id != record.run_id]
    st.history = [record, *history][: ctx.settings.history_limit]


def fail(ctx: Run, reason: str, message: str) -> None:
    ctx.status.summary.verdict = "Failed"
    _finish(ctx, Phase.FAILED, reason, message)


def abort(ctx: Run, reason: str, message: str) -> None:
    _stop_workers(ctx)
    ctx.condition("Completed", "False", reason, message)
    _finish(ctx, Phase.ABORTED, reason, message)
