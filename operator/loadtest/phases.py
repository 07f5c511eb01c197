"""The phases of a LoadTest run and its endings; loadtest/lifecycle.py decides which one runs.

Each waiting phase has a deadline (status.deadline, set when the phase is entered or, after a
resume, on its first tick) and ends the run with its own reason when it passes: Pending
(timeouts.queued, QueueTimeout), WaitingForTarget (targetReady, TargetNotReady), Running
before the barrier (workersReady, the workers' problem), Running after it (duration +
runGrace, RunTimeout), Analyzing (timeouts.analysis, AnalysisTimeout).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from surge import readiness
from surge.api.loadtest import LoadTestSpec
from surge.api.status import LeaseRef, LoadTestStatus, Phase, Reason, WorkerCounts
from surge.loadgen.plan import parse_plan, plan_sha256
from surge.operator.conditions import condition_is, now_rfc3339, parse_time
from surge.operator.experiment.runs import is_child
from surge.operator.kube import target_lease
from surge.operator.loadtest import admission, builders, collect
from surge.operator.loadtest.endings import Run, fail, finish, run_id, stop_workers
from surge.operator.loadtest.pods import Workers, diagnose
from surge.operator.loadtest.prometheus_access import cluster_reader
from surge.operator.policy.facts import probe_checked


def admitted_spec(ctx: Run) -> LoadTestSpec | None:
    """The spec the run started with, from the run's ConfigMap (None: the run failed RunLost)."""
    cm = ctx.kube.configmap(ctx.namespace, builders.run_name(ctx.name, run_id(ctx)))
    if cm is None or builders.PLAN_KEY not in (cm.get("data") or {}):
        fail(ctx, Reason.RUN_LOST, "the run's ConfigMap disappeared; bump spec.runId to run again")
        return None
    text = cm["data"][builders.PLAN_KEY]
    stored = ctx.status.plan_sha256
    found = plan_sha256(text) if stored is not None else ""
    if stored is not None and found != stored:
        fail(
            ctx,
            Reason.POLICY_VIOLATION,
            f"ConfigMap {ctx.namespace}/{cm['metadata']['name']}: its plan was changed after "
            f"admission (SHA-256 {found[:12]}, admitted "
            f"{stored[:12]}); nothing more is run from it",
        )
        return None
    return parse_plan(text).spec


def set_deadline(ctx: Run, at: datetime, reason: Reason) -> None:
    ctx.status.deadline, ctx.status.deadline_reason = now_rfc3339(at), reason


def deadline(ctx: Run, timeout_s: float, reason: Reason) -> datetime:
    """The phase's deadline; set from now on the phase's first tick (or after a resume)."""
    at = parse_time(ctx.status.deadline)
    if at is None:
        at = ctx.now + timedelta(seconds=timeout_s)
        set_deadline(ctx, at, reason)
    return at


def _holder(ctx: Run) -> target_lease.Holder:
    return target_lease.Holder("LoadTest", ctx.namespace, ctx.name, ctx.uid, run_id(ctx))


def _owner_experiment_uid(ctx: Run) -> str | None:
    """The experiment whose target Lease this run shares: only a live ScalingExperiment of
    that uid whose child this LoadTest's name is (anyone can write an ownerReference)."""
    refs = ctx.body["metadata"].get("ownerReferences") or []
    for ref in [r for r in refs if r.get("kind") == "ScalingExperiment"]:
        sx = ctx.kube.experiment(ctx.namespace, str(ref.get("name")))
        if sx and is_child(ctx.name, ref, sx):
            return str(ref.get("uid"))
    return None


def _lease_seconds(spec: LoadTestSpec) -> int:
    t = spec.timeouts
    target = t.target_ready or spec.target.readiness.timeout
    total = target + t.workers_ready + spec.run_length_s + t.run_grace + t.analysis
    return int(total) + target_lease.LEASE_SLACK_S


def pending(ctx: Run) -> None:
    spec = admitted_spec(ctx)
    if spec is None:
        return
    key = admission.target_key(spec.wire(), ctx.namespace)
    got = target_lease.acquire(
        ctx.kube,
        target_key=key,
        run_namespace=ctx.namespace,
        holder=_holder(ctx),
        still_holds=lambda other: target_lease.holder_alive(ctx.kube, other),
        now=ctx.now,
        duration_s=_lease_seconds(spec),
        shared_with=_owner_experiment_uid(ctx),
    )
    if not got.held:
        who = got.by.describe() if got.by is not None else "another run"
        msg = f"{who} holds the target ({key})"
        if ctx.now > deadline(ctx, spec.timeouts.queued, Reason.QUEUE_TIMEOUT):
            fail(
                ctx,
                Reason.QUEUE_TIMEOUT,
                f"waited {spec.timeouts.queued:g}s (timeouts.queued): {msg}",
            )
            return
        if not condition_is(ctx.status.conditions, "Queued", "True"):
            ctx.event("Normal", Reason.TARGET_BUSY, msg)
        ctx.condition("Queued", "True", Reason.TARGET_BUSY, msg)
        return
    ctx.status.lease = LeaseRef(
        namespace=target_lease.lease_namespace(key, ctx.namespace),
        name=target_lease.lease_name(key),
        target=key,
    )
    ctx.condition("Queued", "False", Reason.TARGET_FREE, f"this run holds the target ({key})")
    ctx.condition("TargetReady", "False", Reason.WAITING, "waiting for the target")
    ctx.status.deadline = None
    ctx.goto(
        Phase.WAITING_FOR_TARGET, Reason.WAITING_FOR_TARGET, "waiting for the target to be ready"
    )


def waiting_for_target(ctx: Run) -> None:
    spec = admitted_spec(ctx)
    if spec is None:
        return
    timeout = spec.timeouts.target_ready or spec.target.readiness.timeout
    until = deadline(ctx, timeout, Reason.TARGET_NOT_READY)
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
        ready, note = probe_checked(url, check, ctx.namespace, ctx.settings.policy, ctx.kube)
        ok, notes = ok and ready, [*notes, note]
    message = "; ".join(notes) or "no readiness check configured"
    if ok:
        ctx.condition("TargetReady", "True", Reason.TARGET_READY, message)
        _launch_workers(ctx, spec)
        return
    if ctx.now > until:
        ctx.condition(
            "TargetReady",
            "False",
            Reason.TARGET_NOT_READY,
            f"not ready after {timeout:g}s: {message}",
        )
        fail(ctx, Reason.TARGET_NOT_READY, f"target not ready after {timeout:g}s: {message}")
        return
    ctx.condition("TargetReady", "False", Reason.WAITING, message)


def _launch_workers(ctx: Run, spec: LoadTestSpec) -> None:
    for obj in builders.worker_rbac(ctx.body, run_id(ctx)):
        ctx.create(obj)
    job = builders.worker_job(
        ctx.body,
        spec,
        run_id(ctx),
        image=spec.image or ctx.settings.loadgen_image,
        command=ctx.settings.worker_command,
        metrics_port=ctx.settings.worker_metrics_port,
        policy=ctx.settings.policy,
        # verifyPlanHash gates the workers' own check; the operator's is unconditional.
        plan_sha256=ctx.status.plan_sha256 if ctx.settings.policy.verify_plan_hash else None,
    )
    ctx.create(job)
    n = spec.load.workers
    ctx.condition("WorkersScheduled", "False", Reason.WAITING, f"waiting for {n} workers to run")
    set_deadline(
        ctx, ctx.now + timedelta(seconds=spec.timeouts.workers_ready), Reason.WORKERS_TIMEOUT
    )
    ctx.goto(
        Phase.RUNNING,
        Reason.WORKERS_CREATED,
        f"Job {job['metadata']['name']} created with {n} workers; waiting for all to run",
    )


def running(ctx: Run) -> None:
    spec = admitted_spec(ctx)
    if spec is None:
        return
    n = spec.load.workers
    w = diagnose(ctx.kube.pods(ctx.namespace, builders.selector(ctx.name, run_id(ctx))), n)
    ctx.status.workers = WorkerCounts(
        expected=n, running=w.running, succeeded=w.succeeded, failed=w.failed
    )
    started = parse_time(ctx.status.load_start_time)
    if started is None:
        _before_the_barrier(ctx, spec, w)
        return
    job = ctx.kube.job(ctx.namespace, builders.run_name(ctx.name, run_id(ctx)))
    job_ended = any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in ((job or {}).get("status") or {}).get("conditions") or []
    )
    if w.finished or job_ended:
        set_deadline(
            ctx, ctx.now + timedelta(seconds=spec.timeouts.analysis), Reason.ANALYSIS_TIMEOUT
        )
        ctx.goto(
            Phase.ANALYZING, Reason.ANALYZING, f"{w.succeeded} of {n} workers succeeded; merging"
        )
        return
    if ctx.now > deadline(ctx, spec.run_length_s + spec.timeouts.run_grace, Reason.RUN_TIMEOUT):
        stop_workers(ctx)
        fail(ctx, Reason.RUN_TIMEOUT, "the load ran past its duration plus timeouts.runGrace")


def _before_the_barrier(ctx: Run, spec: LoadTestSpec, w: Workers) -> None:
    """Workers exist, the load has not started: open the barrier once all run."""
    n = spec.load.workers
    if w.fatal is not None:
        ctx.condition("WorkersScheduled", "False", w.fatal.reason, w.fatal.message)
        stop_workers(ctx)
        fail(ctx, w.fatal.reason, w.fatal.message)
        return
    if w.running == n:
        name = builders.run_name(ctx.name, run_id(ctx))
        cm = ctx.kube.configmap(ctx.namespace, name)
        written = ((cm or {}).get("data") or {}).get(builders.START_KEY)
        if written:  # a barrier opened before a crash: the start instant is never rewritten
            start = datetime.fromtimestamp(float(written), tz=ctx.now.tzinfo)
        else:
            start = ctx.now + timedelta(seconds=ctx.settings.start_delay_s)
            ctx.kube.patch_configmap_data(
                ctx.namespace, name, {builders.START_KEY: f"{start.timestamp():.3f}"}
            )
        ctx.status.load_start_time = now_rfc3339(start)
        limit = start + timedelta(seconds=spec.run_length_s + spec.timeouts.run_grace)
        set_deadline(ctx, limit, Reason.RUN_TIMEOUT)
        msg = f"all {n} workers running; load starts at {now_rfc3339(start)}"
        ctx.condition("WorkersScheduled", "True", Reason.BARRIER_OPENED, msg)
        ctx.event("Normal", Reason.BARRIER_OPENED, f"{n} workers start at {now_rfc3339(start)}")
        return
    if ctx.now > deadline(ctx, spec.timeouts.workers_ready, Reason.WORKERS_TIMEOUT):
        problem = w.waiting
        reason = problem.reason if problem else Reason.WORKERS_NOT_READY
        message = problem.message if problem else "workers did not start"
        ctx.condition("WorkersScheduled", "False", reason, message)
        stop_workers(ctx)
        fail(ctx, reason, f"workers not running after {spec.timeouts.workers_ready:g}s: {message}")


def analyzing(ctx: Run) -> None:
    spec = admitted_spec(ctx)
    if spec is None:
        return
    n, rid = spec.load.workers, run_id(ctx)
    w = diagnose(ctx.kube.pods(ctx.namespace, builders.selector(ctx.name, rid)), n)
    reader = cluster_reader(
        spec,
        namespace=ctx.namespace,
        loadtest=ctx.name,
        run_id=rid,
        kube=ctx.kube,
        settings=ctx.settings,
    )
    outcome = collect.analyse(
        spec,
        w,
        lambda pod: ctx.kube.pod_log(ctx.namespace, pod["metadata"]["name"]),
        reader,
        replicas=collect.sweep_replicas(spec, ctx.kube, ctx.namespace),
    )
    judged = outcome.judgement
    st = ctx.status
    st.results, st.thresholds, st.summary = outcome.results, judged.thresholds, outcome.summary
    st.workers = WorkerCounts(
        expected=n,
        succeeded=w.succeeded,
        failed=w.failed,
        reported=outcome.reported,
        missing=outcome.missing,
    )
    mc = outcome.metrics_condition
    ctx.condition("MetricsAvailable", mc["status"], Reason(mc["reason"]), mc["message"])
    held = "True" if outcome.thresholds_held else "False"
    ctx.condition("ThresholdsPassed", held, outcome.thresholds_reason, outcome.thresholds_message)
    policy = spec.cleanup.workers
    if policy == "Delete" or (policy == "DeleteOnSuccess" and judged.passed):
        stop_workers(ctx)  # once the verdict below is persisted
    finish(ctx, Phase.SUCCEEDED if judged.passed else Phase.FAILED, judged.reason, judged.message)


PHASES: dict[Phase, Callable[[Run], None]] = {
    Phase.PENDING: pending,
    Phase.WAITING_FOR_TARGET: waiting_for_target,
    Phase.RUNNING: running,
    Phase.ANALYZING: analyzing,
}


def after_the_end(ctx: Run) -> None:
    """The run's end is persisted (this body was read back with a terminal phase): now
    delete its workers and give the target back."""
    st = ctx.status
    if st.workers_to_delete:
        ctx.kube.delete_jobs(ctx.namespace, builders.selector(ctx.name, run_id(ctx)))
        st.workers_to_delete = False
    if st.lease is not None:
        target_lease.release(
            ctx.kube, target_key=st.lease.target, run_namespace=ctx.namespace, holder=_holder(ctx)
        )
        st.lease = None


def needs_after_the_end(st: LoadTestStatus) -> bool:
    return st.workers_to_delete or st.lease is not None
