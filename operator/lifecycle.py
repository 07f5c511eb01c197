"""The LoadTest lifecycle, one reconcile step at a time.

Level-triggered: each step reads the run's state from the cluster (status, the
run's ConfigMap, Job and pods) and moves it on, so an operator restarted at any
point resumes where the cluster says the run is. Nothing lives only in memory.

Pending -> WaitingForTarget -> Running -> Analyzing -> Succeeded | Failed | Aborted
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from surge import readiness
from surge.api.loadtest import LoadTestSpec
from surge.api.manifests import FieldError, ManifestError, parse_spec
from surge.api.status import TERMINAL_PHASES, Phase
from surge.loadgen.plan import build_plan, parse_plan, plan_json, with_inline_rows
from surge.operator import builders, collect
from surge.operator.conditions import (
    checked_phase,
    condition_since,
    now_rfc3339,
    parse_time,
    set_condition,
)
from surge.operator.kube import Kube
from surge.operator.pods import diagnose
from surge.operator.settings import Settings
from surge.results import ClusterMetrics, collect_cluster_metrics

ACTIVE = {Phase.WAITING_FOR_TARGET.value, Phase.RUNNING.value, Phase.ANALYZING.value}


@dataclass
class Step:
    """What one reconcile decided: status fields to merge, and Events to post."""

    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Ctx:
    body: dict[str, Any]
    kube: Kube
    settings: Settings
    now: datetime
    step: Step = field(default_factory=Step)

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def generation(self) -> int | None:
        g = self.body["metadata"].get("generation")
        return int(g) if g is not None else None

    @property
    def status(self) -> dict[str, Any]:
        merged = dict(self.body.get("status") or {})
        merged.update(self.step.status)
        return merged

    @property
    def run_id(self) -> str:
        return str(self.status.get("runId") or (self.body.get("spec") or {}).get("runId", "1"))

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.status.get("conditions") or [])

    @property
    def stamp(self) -> str:
        return now_rfc3339(self.now)

    def condition(self, type_: str, status: str, reason: str, message: str) -> None:
        self.step.status["conditions"] = set_condition(
            self.conditions, type_, status, reason, message, self.stamp, self.generation
        )

    def event(self, type_: str, reason: str, message: str) -> None:
        self.step.events.append((type_, reason, message))

    def goto(self, phase: Phase, reason: str, message: str) -> None:
        self.step.status["phase"] = checked_phase(self.status.get("phase"), phase)
        self.step.status["message"] = message
        warn = phase in (Phase.FAILED, Phase.ABORTED)
        self.event("Warning" if warn else "Normal", reason, f"{phase.value}: {message}")


def reconcile(body: dict[str, Any], kube: Kube, settings: Settings, now: datetime) -> Step:
    ctx = Ctx(body, kube, settings, now)
    spec_raw = body.get("spec") or {}
    status = body.get("status") or {}
    wanted = str(spec_raw.get("runId", "1"))
    if status.get("runId") != wanted:
        start_run(ctx, wanted)
        return ctx.step
    phase = status.get("phase")
    if phase in {p.value for p in TERMINAL_PHASES}:
        return ctx.step
    if spec_raw.get("suspend"):
        abort(ctx, "Suspended", "spec.suspend is true")
        return ctx.step
    _note_drift(ctx)
    {
        Phase.PENDING.value: pending,
        Phase.WAITING_FOR_TARGET.value: waiting_for_target,
        Phase.RUNNING.value: running,
        Phase.ANALYZING.value: analyzing,
    }[str(phase)](ctx)
    return ctx.step


def _note_drift(ctx: Ctx) -> None:
    started_at = ctx.status.get("observedGeneration")
    drifted = ctx.generation is not None and started_at is not None and ctx.generation > started_at
    old = next((c for c in ctx.conditions if c["type"] == "SpecDrifted"), None)
    if drifted and (old is None or old["status"] != "True"):
        ctx.condition(
            "SpecDrifted",
            "True",
            "SpecChanged",
            "the spec changed during the run; it goes on with the spec it started "
            "with; bump spec.runId to run the new one",
        )
        ctx.event("Normal", "SpecDrifted", "spec changed mid-run; change ignored until next run")


def _snapshot(ctx: Ctx) -> LoadTestSpec | None:
    """The spec the run started with, from the run's ConfigMap."""
    cm = ctx.kube.configmap(ctx.namespace, builders.run_name(ctx.name, ctx.run_id))
    if cm is None or builders.PLAN_KEY not in (cm.get("data") or {}):
        fail(ctx, "RunLost", "the run's ConfigMap disappeared; bump spec.runId to run again")
        return None
    return parse_plan(cm["data"][builders.PLAN_KEY]).spec


# -- starting a run -------------------------------------------------------------------------


def start_run(ctx: Ctx, run_id: str) -> None:
    old = ctx.body.get("status") or {}
    history = list(old.get("history") or [])
    if old.get("runId") and old.get("phase") not in {p.value for p in TERMINAL_PHASES}:
        ctx.kube.delete_jobs(ctx.namespace, builders.selector(ctx.name, str(old["runId"])))
        history.insert(
            0,
            {
                "runId": old["runId"],
                "phase": Phase.ABORTED.value,
                "startTime": old.get("startTime"),
                "completionTime": ctx.stamp,
                "message": f"superseded by runId {run_id}",
            },
        )
    ctx.step.status = {
        "runId": run_id,
        "observedGeneration": ctx.generation,
        "startTime": ctx.stamp,
        "phase": None,
        "conditions": [],
        "message": "",
        "loadStartTime": None,
        "completionTime": None,
        "results": None,
        "thresholds": [],
        # A merge patch keeps keys absent from a dict: clear each one by name.
        "summary": dict.fromkeys(("targetRps", "achievedRps", "p95Ms", "errorRate", "verdict")),
        "workers": dict.fromkeys(
            ("expected", "running", "succeeded", "failed", "reported", "missing")
        ),
        "history": history[: ctx.settings.history_limit],
    }
    try:
        spec = _accepted_spec(ctx)
    except ManifestError as exc:
        ctx.condition("Ready", "False", "InvalidSpec", str(exc))
        ctx.step.status["completionTime"] = ctx.stamp
        ctx.goto(Phase.FAILED, "InvalidSpec", str(exc))
        return
    plan = build_plan(spec, name=ctx.name, namespace=ctx.namespace, run_id=run_id)
    ctx.kube.ensure(builders.plan_configmap(ctx.body, run_id, plan_json(plan)))
    ctx.step.status["workers"]["expected"] = spec.load.workers
    if spec.load.model != "closed":
        ctx.step.status["summary"]["targetRps"] = spec.load.peak
    ctx.condition("Ready", "True", "Accepted", f"run {run_id} accepted")
    ctx.goto(Phase.PENDING, "RunStarted", f"run {run_id} accepted")


def _accepted_spec(ctx: Ctx) -> LoadTestSpec:
    """The validated spec with the operator's own guards applied and the dataset inlined."""
    spec: LoadTestSpec = parse_spec("LoadTest", ctx.body.get("spec") or {})
    host = urlsplit(spec.target.url).hostname or ""
    if not ctx.settings.host_allowed(host):
        raise ManifestError(
            [
                FieldError(
                    "spec.target.url",
                    f"host {host!r} is not in the operator's allowed target hosts; ask your admin",
                )
            ]
        )
    cap = ctx.settings.max_rate
    if cap is not None and spec.load.model != "closed" and spec.load.peak > cap:
        raise ManifestError(
            [
                FieldError(
                    "spec.load.stages",
                    f"peak {spec.load.peak:g} req/s is above the operator's cap of {cap:g} req/s",
                )
            ]
        )
    ds = spec.scenario.dataset
    if ds is not None and ds.file is not None:
        raise ManifestError(
            [
                FieldError(
                    "spec.scenario.dataset.file",
                    "files are read on the "
                    "local machine only; in a cluster use configMapRef or "
                    "inline",
                )
            ]
        )
    if ds is not None and ds.config_map_ref is not None:
        ref = ds.config_map_ref
        cm = ctx.kube.configmap(ctx.namespace, ref.name)
        text = ((cm or {}).get("data") or {}).get(ref.key)
        if text is None:
            raise ManifestError(
                [
                    FieldError(
                        "spec.scenario.dataset.configMapRef",
                        f"ConfigMap {ref.name} has no key {ref.key!r}",
                    )
                ]
            )
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ManifestError(
                [FieldError("spec.scenario.dataset.configMapRef", f"line {exc.lineno}: not JSON")]
            ) from None
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise ManifestError(
                [
                    FieldError(
                        "spec.scenario.dataset.configMapRef",
                        "expected JSONL: one JSON object per line",
                    )
                ]
            )
        spec = with_inline_rows(spec, rows)
    return spec


# -- phases ---------------------------------------------------------------------------------


def target_key(spec_raw: dict[str, Any], namespace: str) -> str:
    target = spec_raw.get("target") or {}
    ref = target.get("deploymentRef")
    if ref:
        return f"deployment/{ref.get('namespace') or namespace}/{ref.get('name')}"
    return f"url/{urlsplit(str(target.get('url', ''))).netloc}"


def pending(ctx: Ctx) -> None:
    mine = target_key(ctx.body.get("spec") or {}, ctx.namespace)
    for other in ctx.kube.loadtests(ctx.namespace):
        if other["metadata"]["name"] == ctx.name:
            continue
        busy = (other.get("status") or {}).get("phase") in ACTIVE
        if busy and target_key(other.get("spec") or {}, ctx.namespace) == mine:
            msg = f"LoadTest {other['metadata']['name']} is running against the same target"
            if not any(c["type"] == "Queued" and c["status"] == "True" for c in ctx.conditions):
                ctx.event("Normal", "TargetBusy", msg)
            ctx.condition("Queued", "True", "TargetBusy", msg)
            return
    ctx.condition("Queued", "False", "TargetFree", "no other run holds the target")
    ctx.condition("TargetReady", "False", "Waiting", "waiting for the target")
    ctx.goto(Phase.WAITING_FOR_TARGET, "WaitingForTarget", "waiting for the target to be ready")


def waiting_for_target(ctx: Ctx) -> None:
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
    since = condition_since(ctx.conditions, "TargetReady") or ctx.now
    if ctx.now - since > timedelta(seconds=timeout):
        ctx.condition(
            "TargetReady", "False", "TargetNotReady", f"not ready after {timeout:g}s: {message}"
        )
        fail(ctx, "TargetNotReady", f"target not ready after {timeout:g}s: {message}")
        return
    ctx.condition("TargetReady", "False", "Waiting", message)


def _launch_workers(ctx: Ctx, spec: LoadTestSpec) -> None:
    for obj in builders.worker_rbac(ctx.body, ctx.run_id):
        ctx.kube.ensure(obj)
    job = builders.worker_job(
        ctx.body,
        spec,
        ctx.run_id,
        image=spec.image or ctx.settings.loadgen_image,
        command=ctx.settings.worker_command,
    )
    ctx.kube.ensure(job)
    n = spec.load.workers
    ctx.condition("WorkersScheduled", "False", "Waiting", f"waiting for {n} workers to run")
    ctx.goto(
        Phase.RUNNING,
        "WorkersCreated",
        f"Job {job['metadata']['name']} created with {n} workers; waiting for all to run",
    )


def running(ctx: Ctx) -> None:
    spec = _snapshot(ctx)
    if spec is None:
        return
    n = spec.load.workers
    pods = ctx.kube.pods(ctx.namespace, builders.selector(ctx.name, ctx.run_id))
    w = diagnose(pods, n)
    ctx.step.status["workers"] = {
        "expected": n,
        "running": w.running,
        "succeeded": w.succeeded,
        "failed": w.failed,
    }
    started = parse_time(ctx.status.get("loadStartTime"))
    if started is None:
        if w.fatal is not None:
            ctx.condition("WorkersScheduled", "False", w.fatal.reason, w.fatal.message)
            _stop_workers(ctx)
            fail(ctx, w.fatal.reason, w.fatal.message)
            return
        if w.running == n:
            start = ctx.now + timedelta(seconds=ctx.settings.start_delay_s)
            ctx.kube.patch_configmap_data(
                ctx.namespace,
                builders.run_name(ctx.name, ctx.run_id),
                {builders.START_KEY: f"{start.timestamp():.3f}"},
            )
            ctx.step.status["loadStartTime"] = now_rfc3339(start)
            ctx.condition(
                "WorkersScheduled",
                "True",
                "BarrierOpened",
                f"all {n} workers running; load starts at {now_rfc3339(start)}",
            )
            ctx.event("Normal", "BarrierOpened", f"{n} workers start at {now_rfc3339(start)}")
            return
        since = condition_since(ctx.conditions, "WorkersScheduled") or ctx.now
        if ctx.now - since > timedelta(seconds=spec.timeouts.workers_ready):
            problem = w.waiting
            reason = problem.reason if problem else "WorkersNotReady"
            message = problem.message if problem else "workers did not start"
            ctx.condition("WorkersScheduled", "False", reason, message)
            _stop_workers(ctx)
            fail(
                ctx,
                reason,
                f"workers not running after {spec.timeouts.workers_ready:g}s: {message}",
            )
        return
    job = ctx.kube.job(ctx.namespace, builders.run_name(ctx.name, ctx.run_id))
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


def analyzing(ctx: Ctx) -> None:
    spec = _snapshot(ctx)
    if spec is None:
        return
    n = spec.load.workers
    pods = ctx.kube.pods(ctx.namespace, builders.selector(ctx.name, ctx.run_id))
    w = diagnose(pods, n)
    outcome = collect.analyse(
        spec,
        w,
        lambda pod: ctx.kube.pod_log(ctx.namespace, pod["metadata"]["name"]),
        _cluster_reader(ctx, spec),
    )
    ctx.step.status["results"] = outcome.results
    ctx.step.status["thresholds"] = outcome.thresholds
    ctx.step.status["summary"] = outcome.summary
    ctx.step.status["workers"] = {
        "expected": n,
        "running": 0,
        "succeeded": w.succeeded,
        "failed": w.failed,
        "reported": outcome.reported,
        "missing": outcome.missing,
    }
    mc = outcome.metrics_condition
    ctx.condition("MetricsAvailable", mc["status"], mc["reason"], mc["message"])
    if outcome.missing:
        ctx.condition(
            "Completed",
            "False",
            "WorkerMissingSummary",
            f"workers {', '.join(map(str, outcome.missing))} reported nothing",
        )
    ctx.condition("ThresholdsPassed", outcome.thresholds_status, outcome.reason, outcome.message)
    finished_ok = outcome.passed and not outcome.missing and w.failed == 0
    if w.failed and not outcome.missing:
        ctx.condition("Completed", "False", "WorkerFailed", f"{w.failed} workers failed")
    phase = Phase.SUCCEEDED if finished_ok else Phase.FAILED
    _finish(
        ctx,
        phase,
        outcome.reason if not outcome.missing else "WorkerMissingSummary",
        outcome.message,
    )
    policy = spec.cleanup.workers
    if policy == "Delete" or (policy == "DeleteOnSuccess" and finished_ok):
        _stop_workers(ctx)


def _cluster_reader(ctx: Ctx, spec: LoadTestSpec) -> collect.ClusterReader | None:
    url = spec.prometheus.url or ctx.settings.prometheus_url
    if url is None:
        return None
    headers = _prometheus_headers(ctx, spec)

    def read(results: dict[str, Any]) -> ClusterMetrics:
        window = results["window"]
        return collect_cluster_metrics(
            spec,
            namespace=ctx.namespace,
            loadtest=ctx.name,
            run_id=ctx.run_id,
            window_start=float(window["start"]),
            window_end=float(window["end"]),
            prometheus_url=url,
            headers=headers,
            settings_queries=ctx.settings.queries,
        )

    return read


def _prometheus_headers(ctx: Ctx, spec: LoadTestSpec) -> dict[str, str]:
    auth = spec.prometheus.auth
    if auth is None:
        return {}
    if auth.bearer_token_secret_ref is not None:
        ref = auth.bearer_token_secret_ref
        token = ctx.kube.secret_value(ctx.namespace, ref.name, ref.key)
        return {"Authorization": f"Bearer {token}"} if token else {}
    if auth.basic_auth_secret_ref is not None:
        ref = auth.basic_auth_secret_ref
        pair = ctx.kube.secret_value(ctx.namespace, ref.name, ref.key)
        if pair:
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    return {}


# -- endings --------------------------------------------------------------------------------


def _stop_workers(ctx: Ctx) -> None:
    ctx.kube.delete_jobs(ctx.namespace, builders.selector(ctx.name, ctx.run_id))


def _finish(ctx: Ctx, phase: Phase, reason: str, message: str) -> None:
    ctx.step.status["completionTime"] = ctx.stamp
    ctx.goto(phase, reason, message)
    status = ctx.status
    record = {
        "runId": ctx.run_id,
        "phase": phase.value,
        "startTime": status.get("startTime"),
        "completionTime": ctx.stamp,
        "summary": status.get("summary") or {},
        "thresholds": status.get("thresholds") or [],
        "message": message,
    }
    history = [h for h in status.get("history") or [] if h.get("runId") != ctx.run_id]
    ctx.step.status["history"] = [record, *history][: ctx.settings.history_limit]


def fail(ctx: Ctx, reason: str, message: str) -> None:
    summary = dict(ctx.status.get("summary") or {})
    summary["verdict"] = "Failed"
    ctx.step.status["summary"] = summary
    _finish(ctx, Phase.FAILED, reason, message)


def abort(ctx: Ctx, reason: str, message: str) -> None:
    _stop_workers(ctx)
    ctx.condition("Completed", "False", reason, message)
    _finish(ctx, Phase.ABORTED, reason, message)
