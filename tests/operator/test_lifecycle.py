"""Every transition of the LoadTest state machine, on the in-memory FakeKube.

Each test starts from a status the operator could have written, runs one reconcile (or a
few, applying each patch as the API server would), and checks the phase, the reason and
what was written to the cluster. The status each step writes is also checked against the
CRD's generated schema: nothing the operator writes would be pruned by the API server.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from surge.api.crd import loadtest_crd
from surge.api.policy import Caps, ClusterPolicy
from surge.api.status import LoadTestStatus
from surge.loadgen.summary import WorkerSummary, record_seconds, termination_message
from surge.operator.context import Decision
from surge.operator.loadtest import builders, lifecycle
from surge.operator.settings import Settings
from tests.operator.fake_kube import FakeKube, merge_patch
from tests.operator.schema import pruned

NS, NAME = "team", "lt"
T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
SETTINGS = Settings(
    worker_metrics_port=9464,
    start_delay_s=2.0,
    policy=ClusterPolicy(prometheus_urls=["http://prom:9"]),
)
SCHEMA = loadtest_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]


def _spec(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "runId": "1",
        "target": {
            "url": "http://alice.team:8080",
            "deploymentRef": {"name": "alice"},
        },
        "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}], "workers": 2},
        "thresholds": ["latency.p95 < 500ms"],
    }
    spec.update(over)
    return spec


def _body(spec: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {"name": NAME, "namespace": NS, "uid": "u-1", "generation": generation},
        "spec": spec or _spec(),
        "status": {},
    }


SERVICE = {
    "kind": "Service",
    "metadata": {"name": "alice", "namespace": NS},
    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]},
}


def _deployment(ready: bool) -> dict[str, Any]:
    status = {"readyReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]}
    return {
        "kind": "Deployment",
        "metadata": {"name": "alice", "namespace": NS, "generation": 1},
        "spec": {"replicas": 1},
        "status": status if ready else {"readyReplicas": 0},
    }


def _pod(idx: int, phase: str, message: str | None = None, run: str = "1") -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": 0 if phase == "Succeeded" else 1}
    if message is not None:
        term["message"] = message
    statuses = [{"state": {"terminated": term}}] if phase in ("Succeeded", "Failed") else []
    return {
        "kind": "Pod",
        "metadata": {
            "name": f"w-{idx}",
            "namespace": NS,
            "labels": builders.labels(NAME, run),
            "annotations": {"batch.kubernetes.io/job-completion-index": str(idx)},
        },
        "status": {"phase": phase, "containerStatuses": statuses},
    }


def _summary(idx: int, latency_s: float) -> str:
    s = WorkerSummary(loadtest=NAME, workers=[idx], worker_count=2, measured_s=10, expected=25)
    for _ in range(25):
        record_seconds(s.hists["latency"], latency_s)
    s.counts.update(sent=25, ok=25, good=25)
    return termination_message(s)


def tick(kube: FakeKube, body: dict[str, Any], now: datetime) -> Decision:
    """One reconcile; the patch lands in body["status"] as the API server would merge it."""
    step = lifecycle.reconcile(body, kube, SETTINGS, now)  # type: ignore[arg-type]
    assert pruned(step.status, SCHEMA["status"]) == []
    body["status"] = merge_patch(body.get("status") or {}, step.status)
    LoadTestStatus.model_validate(body["status"])  # what was written reads back
    return step


def reasons(step: Decision) -> list[str]:
    return [reason for _, reason, _ in step.events]


def cond(body: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in body["status"]["conditions"] if c["type"] == type_)


@pytest.fixture
def kube() -> FakeKube:
    k = FakeKube()
    k.put(_deployment(ready=True))
    k.put(SERVICE)  # the target: a Service of the run's namespace, as the policy allows
    return k


def _to(kube: FakeKube, phase: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A body advanced through the real transitions up to `phase`."""
    body = body or _body()
    for _ in range(4):
        if body["status"].get("phase") == phase:
            return body
        tick(kube, body, T0)
    assert body["status"].get("phase") == phase, body["status"]
    return body


# -- starting -------------------------------------------------------------------------------


def test_new_run_is_accepted_into_pending(kube: FakeKube) -> None:
    body = _body()
    step = tick(kube, body, T0)
    st = body["status"]
    assert (st["phase"], st["runId"], st["observedGeneration"]) == ("Pending", "1", 1)
    assert reasons(step) == ["RunStarted"]
    assert cond(body, "Ready")["reason"] == "Accepted"
    assert st["summary"]["targetRps"] == 5 and st["workers"]["expected"] == 2
    assert kube.configmap(NS, builders.run_name(NAME, "1")) is not None


def test_invalid_spec_fails_with_the_field(kube: FakeKube) -> None:
    body = _body(_spec(load={"model": "constant", "stages": []}))
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed"
    assert reasons(step) == ["InvalidSpec"]
    assert "spec.load.stages" in body["status"]["message"]
    assert kube.configmap(NS, builders.run_name(NAME, "1")) is None


def test_the_cluster_policy_refuses_at_admission_and_nothing_is_created(
    kube: FakeKube,
) -> None:
    strict = Settings(policy=ClusterPolicy(caps=Caps(max_rate=1.0)))
    body = _body()
    step = lifecycle.reconcile(body, kube, strict, T0)  # type: ignore[arg-type]
    body = merge_patch(body, {"status": step.status})
    st = body["status"]
    assert (st["phase"], cond(body, "Completed")["reason"]) == ("Failed", "PolicyViolation")
    assert "spec.load.stages" in st["message"] and "policy.caps.maxRate" in st["message"]
    assert kube.configmap(NS, builders.run_name(NAME, "1")) is None
    assert not [c for c in kube.calls if c[0] == "ensure"]


# -- Pending --------------------------------------------------------------------------------


def test_pending_moves_on_when_the_target_is_free(kube: FakeKube) -> None:
    body = _to(kube, "Pending")
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "WaitingForTarget"
    assert reasons(step) == ["WaitingForTarget"]
    assert cond(body, "Queued")["status"] == "False"


def _other(kube: FakeKube) -> dict[str, Any]:
    """Another LoadTest on the same target, holding its Lease (WaitingForTarget)."""
    other = _body()
    other["metadata"].update(name="other", uid="u-other")
    kube.put(other)
    _to(kube, "WaitingForTarget", other)
    assert other["status"]["lease"]
    return other


def test_pending_waits_while_another_run_holds_the_target(kube: FakeKube) -> None:
    other = _other(kube)
    body = _to(kube, "Pending")
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Pending"
    assert reasons(step) == ["TargetBusy"]
    assert "LoadTest team/other run 1" in cond(body, "Queued")["message"]
    assert reasons(tick(kube, body, T0)) == []  # said once, not every tick
    # The holder ends; once that is persisted its Lease goes, and this run moves on.
    other["status"]["phase"] = "Succeeded"
    tick(kube, other, T0)
    assert "lease" not in other["status"]
    tick(kube, body, T0)
    assert body["status"]["phase"] == "WaitingForTarget"


def test_a_holder_that_is_gone_loses_the_target(kube: FakeKube) -> None:
    _other(kube)
    del kube.objects[("LoadTest", NS, "other")]  # deleted with the operator down
    body = _to(kube, "Pending")
    tick(kube, body, T0)
    assert body["status"]["phase"] == "WaitingForTarget"


def test_the_queue_has_a_timeout(kube: FakeKube) -> None:
    _other(kube)
    body = _to(kube, "Pending", _body(_spec(timeouts={"queued": "60s"})))
    tick(kube, body, T0)
    step = tick(kube, body, T0 + timedelta(seconds=90))  # the holder's Lease is still valid
    assert (body["status"]["phase"], reasons(step)) == ("Failed", ["QueueTimeout"])
    assert cond(body, "Completed")["reason"] == "QueueTimeout"


# -- WaitingForTarget -----------------------------------------------------------------------


def test_ready_target_gets_workers_with_the_metrics_port(kube: FakeKube) -> None:
    body = _to(kube, "WaitingForTarget")
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Running"
    assert reasons(step) == ["WorkersCreated"]
    job = kube.job(NS, builders.run_name(NAME, "1"))
    assert job is not None
    container = job["spec"]["template"]["spec"]["containers"][0]
    # SURGE_WORKER_METRICS_PORT reaches the Job (the PodMonitor scrapes this port).
    assert container["args"][-2:] == ["--metrics-port", "9464"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9464}]


def test_target_not_ready_waits_then_fails_at_its_timeout(kube: FakeKube) -> None:
    kube.put(_deployment(ready=False))
    body = _to(kube, "WaitingForTarget")
    tick(kube, body, T0 + timedelta(seconds=5))
    assert body["status"]["phase"] == "WaitingForTarget"
    assert "not available" in cond(body, "TargetReady")["message"]
    step = tick(kube, body, T0 + timedelta(seconds=400))
    assert body["status"]["phase"] == "Failed"
    assert reasons(step) == ["TargetNotReady"]
    assert body["status"]["summary"]["verdict"] == "Failed"


# -- Running --------------------------------------------------------------------------------


def test_all_workers_running_opens_the_barrier(kube: FakeKube) -> None:
    body = _to(kube, "Running")
    kube.put(_pod(0, "Running"))
    kube.put(_pod(1, "Running"))
    step = tick(kube, body, T0)
    assert reasons(step) == ["BarrierOpened"]
    assert body["status"]["loadStartTime"] == "2026-11-29T12:00:02Z"
    assert cond(body, "WorkersScheduled")["status"] == "True"
    cm = kube.configmap(NS, builders.run_name(NAME, "1"))
    assert cm is not None and builders.START_KEY in cm["data"]


def test_a_crashing_worker_fails_the_run_and_stops_the_job(kube: FakeKube) -> None:
    body = _to(kube, "Running")
    kube.put(_pod(0, "Running"))
    kube.put(_pod(1, "Failed"))
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed"
    assert reasons(step) == ["WorkerFailed"]
    # Persist, then act: the Job goes on the tick that reads the failure back.
    assert kube.job(NS, builders.run_name(NAME, "1")) is not None
    assert body["status"]["workersToDelete"] is True
    tick(kube, body, T0)
    assert kube.job(NS, builders.run_name(NAME, "1")) is None
    assert "lease" not in body["status"] and body["status"]["workersToDelete"] is False


def test_workers_not_running_in_time_fail_the_run(kube: FakeKube) -> None:
    body = _to(kube, "Running")
    kube.put(_pod(0, "Running"))
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Running"
    step = tick(kube, body, T0 + timedelta(seconds=3600))
    assert body["status"]["phase"] == "Failed"
    assert reasons(step) == ["WorkersNotReady"]


def _loading(kube: FakeKube) -> dict[str, Any]:
    body = _to(kube, "Running")
    kube.put(_pod(0, "Running"))
    kube.put(_pod(1, "Running"))
    tick(kube, body, T0)
    return body


def test_finished_workers_move_the_run_to_analyzing(kube: FakeKube) -> None:
    body = _loading(kube)
    kube.put(_pod(0, "Succeeded", _summary(0, 0.1)))
    kube.put(_pod(1, "Succeeded", _summary(1, 0.1)))
    step = tick(kube, body, T0 + timedelta(seconds=15))
    assert body["status"]["phase"] == "Analyzing"
    assert reasons(step) == ["Analyzing"]
    assert body["status"]["deadlineReason"] == "AnalysisTimeout"


def test_a_run_past_its_grace_times_out(kube: FakeKube) -> None:
    body = _loading(kube)
    step = tick(kube, body, T0 + timedelta(hours=2))
    assert body["status"]["phase"] == "Failed"
    assert reasons(step) == ["RunTimeout"]
    assert cond(body, "Completed")["reason"] == "RunTimeout"


# -- Analyzing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("latency_s", "phase", "reason", "verdict"),
    [
        (0.1, "Succeeded", "AllThresholdsPassed", "Passed"),
        (0.9, "Failed", "ThresholdFailed", "Failed"),
    ],
)
def test_analysis_writes_results_and_the_verdict(
    kube: FakeKube, latency_s: float, phase: str, reason: str, verdict: str
) -> None:
    body = _loading(kube)
    kube.put(_pod(0, "Succeeded", _summary(0, latency_s)))
    kube.put(_pod(1, "Succeeded", _summary(1, latency_s)))
    tick(kube, body, T0 + timedelta(seconds=15))
    step = tick(kube, body, T0 + timedelta(seconds=16))
    st = body["status"]
    assert (st["phase"], st["summary"]["verdict"]) == (phase, verdict)
    assert reasons(step) == [reason]
    assert st["results"]["requests"]["sent"] == 50
    assert st["workers"] == {
        "expected": 2,
        "running": 0,
        "succeeded": 2,
        "failed": 0,
        "reported": 2,
        "missing": [],
    }
    assert st["history"][0]["runId"] == "1" and st["history"][0]["phase"] == phase
    assert cond(body, "MetricsAvailable")["reason"] == "NoPrometheus"


def test_a_worker_without_summary_is_inconclusive_and_fails(kube: FakeKube) -> None:
    body = _loading(kube)
    kube.put(_pod(0, "Succeeded", _summary(0, 0.1)))
    kube.put(_pod(1, "Succeeded", None))
    tick(kube, body, T0 + timedelta(seconds=15))
    tick(kube, body, T0 + timedelta(seconds=16))
    st = body["status"]
    assert (st["phase"], st["summary"]["verdict"]) == ("Failed", "Inconclusive")
    assert st["workers"]["missing"] == [1]
    assert cond(body, "Completed")["reason"] == "WorkerMissingSummary"


# -- any phase ------------------------------------------------------------------------------


def test_suspend_aborts_and_stops_the_workers(kube: FakeKube) -> None:
    body = _loading(kube)
    body["spec"]["suspend"] = True
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Aborted"
    assert reasons(step) == ["Suspended"]
    assert cond(body, "Completed")["reason"] == "Suspended"
    tick(kube, body, T0)
    assert kube.job(NS, builders.run_name(NAME, "1")) is None


def test_a_new_run_id_supersedes_the_run_in_flight(kube: FakeKube) -> None:
    body = _loading(kube)
    body["spec"]["runId"] = "2"
    step = tick(kube, body, T0)
    st = body["status"]
    assert (st["phase"], st["runId"]) == ("Pending", "2")
    assert reasons(step) == ["RunStarted"]
    assert st["history"][0]["message"] == "superseded by runId 2"
    assert "loadStartTime" not in st  # the old run's fields are cleared
    assert kube.job(NS, builders.run_name(NAME, "1")) is None


def test_a_lost_plan_fails_the_run(kube: FakeKube) -> None:
    body = _to(kube, "WaitingForTarget")
    del kube.objects[("ConfigMap", NS, builders.run_name(NAME, "1"))]
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed"
    assert reasons(step) == ["RunLost"]


def test_a_spec_edit_mid_run_sets_spec_drifted_once(kube: FakeKube) -> None:
    body = _to(kube, "WaitingForTarget")
    body["metadata"]["generation"] = 2
    step = tick(kube, body, T0)
    assert "SpecDrifted" in reasons(step)
    assert cond(body, "SpecDrifted")["status"] == "True"
    assert "SpecDrifted" not in reasons(tick(kube, body, T0))


def test_a_finished_run_is_left_alone(kube: FakeKube) -> None:
    body = _to(kube, "Pending")
    body["status"]["phase"] = "Succeeded"
    calls = len(kube.calls)
    step = tick(kube, body, T0)
    assert step.status == {} and step.events == [] and len(kube.calls) == calls


def test_a_dataset_configmap_needs_the_label(kube: FakeKube) -> None:
    """Its rows go into the plan and to the target: any ConfigMap (an experiment's
    snapshot, another team's settings) would otherwise be readable through a LoadTest."""
    cm: dict[str, Any] = {
        "kind": "ConfigMap",
        "metadata": {"name": "rows", "namespace": NS},
        "data": {"rows.jsonl": '{"q": "hi"}\n'},
    }
    kube.put(cm)
    dataset = {"configMapRef": {"name": "rows", "key": "rows.jsonl"}}
    body = _body(_spec(scenario={"path": "/", "body": {"q": "{{q}}"}, "dataset": dataset}))
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["PolicyViolation"]
    assert "spec.scenario.dataset.configMapRef" in body["status"]["message"]
    cm["metadata"]["labels"] = {"surge.dev/usable": "true"}
    body = _body(_spec(scenario={"path": "/", "body": {"q": "{{q}}"}, "dataset": dataset}))
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Pending", body["status"]["message"]


def _lax() -> Settings:
    return dataclasses.replace(
        SETTINGS, policy=SETTINGS.policy.model_copy(update={"verify_plan_hash": False})
    )


def test_the_operator_refuses_an_edited_plan_even_with_verify_plan_hash_off(
    kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verifyPlanHash: false turns off the workers' check only. The operator builds the Job
    (image, placement) and queries Prometheus from the plan, so a tenant who can edit
    ConfigMaps must not get to choose them by editing it."""
    monkeypatch.setattr(sys.modules[__name__], "SETTINGS", _lax())
    body = _to(kube, "WaitingForTarget")
    assert body["status"]["planSha256"]
    cm = kube.objects[("ConfigMap", NS, builders.run_name(NAME, "1"))]
    plan = json.loads(cm["data"][builders.PLAN_KEY])
    plan["spec"]["image"] = "evil/miner:1"
    cm["data"][builders.PLAN_KEY] = json.dumps(plan)
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["PolicyViolation"]
    assert "changed after admission" in body["status"]["message"]
    assert not [o for o in kube.objects if o[0] == "Job"]


def test_with_verify_plan_hash_off_workers_get_no_digest(
    kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "SETTINGS", _lax())
    _to(kube, "Running")
    job = next(o for k, o in kube.objects.items() if k[0] == "Job")
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not [e for e in env if e["name"] == "SURGE_PLAN_SHA256"]
