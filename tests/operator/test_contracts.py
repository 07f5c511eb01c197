"""The LoadTest controller's contracts, decided without a cluster (the e2e tests prove them
on the real API server): API errors, backoff and deadlines, GitOps re-runs, suspend,
persist-then-act, the start instant, ownership of children."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from surge.operator.kube.client import KubeError
from surge.operator.kube.failures import backoff_s, failure_reason
from surge.operator.loadtest import builders
from tests.operator.fake_kube import FakeKube
from tests.operator.test_lifecycle import (
    NAME,
    NS,
    T0,
    _body,
    _pod,
    _spec,
    _summary,
    _to,
    cond,
    kube,
    reasons,
    tick,
)

__all__ = ["kube"]  # the fixture, shared with test_lifecycle


@pytest.mark.parametrize(
    ("action", "status", "message", "reason"),
    [
        (
            "create Job team/lt-run-1",
            422,
            "spec.template.spec.tolerations[0]: Invalid",
            "JobRejected",
        ),
        (
            "create ConfigMap team/lt-run-1",
            422,
            "data: Too long: must have at most 1048576",
            "PlanTooLarge",
        ),
        ("read Secret team/prom", 403, 'secrets "prom" is forbidden', "Forbidden"),
        ("create ServiceAccount team/lt", 400, "bad request", "ApiRejected"),
    ],
)
def test_permanent_errors_have_named_reasons(
    action: str, status: int, message: str, reason: str
) -> None:
    err = KubeError(action, status, message)
    assert err.permanent
    assert failure_reason(err) == reason


@pytest.mark.parametrize("status", [None, 409, 429, 500, 503])
def test_transient_errors(status: int | None) -> None:
    assert not KubeError("read Job a/b", status, "x").permanent


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4, 7, 8, 20)] == [1, 2, 4, 8, 60, 60, 60]


def test_a_rejected_job_fails_the_run_with_the_servers_message(kube: FakeKube) -> None:
    body = _to(kube, "WaitingForTarget")
    kube.failures["ensure:Job"] = KubeError(
        "create Job team/lt-run-1", 422, 'Job.batch "lt-run-1" is invalid: tolerations'
    )
    step = tick(kube, body, T0)
    st = body["status"]
    assert st["phase"] == "Failed", st
    assert reasons(step) == ["JobRejected"]
    assert st["message"] == 'create Job team/lt-run-1: Job.batch "lt-run-1" is invalid: tolerations'
    assert st["summary"]["verdict"] == "Failed"
    assert cond(body, "Completed")["status"] == "True"
    assert cond(body, "Ready")["status"] == "False"


def test_a_transient_error_is_retried_with_backoff_then_recovers(kube: FakeKube) -> None:
    body = _to(kube, "WaitingForTarget")
    kube.failures["deployment"] = KubeError("read Deployment team/alice", 503, "unavailable")
    tick(kube, body, T0)
    st = body["status"]
    assert st["phase"] == "WaitingForTarget"
    assert st["retry"]["attempts"] == 1 and st["retry"]["after"] == "2026-11-29T12:00:01Z"
    assert cond(body, "Retrying")["status"] == "True"
    assert "unavailable" in cond(body, "Retrying")["message"]
    calls = len(kube.calls)
    tick(kube, body, T0)  # inside the backoff: nothing is tried
    assert len(kube.calls) == calls and body["status"]["retry"]["attempts"] == 1
    tick(kube, body, T0 + timedelta(seconds=2))
    assert body["status"]["phase"] == "Running"
    assert "retry" not in body["status"]
    assert cond(body, "Retrying")["reason"] == "Recovered"


def test_transient_errors_end_at_the_phases_deadline(kube: FakeKube) -> None:
    body = _to(kube, "WaitingForTarget")
    kube.put({**kube.objects[("Deployment", NS, "alice")], "status": {}})  # not ready
    tick(kube, body, T0)  # sets the deadline (readiness.timeout, 300 s)
    kube.failures["configmap"] = KubeError("read ConfigMap team/lt-run-1", 500, "etcd timeout")
    step = tick(kube, body, T0 + timedelta(seconds=301))
    assert body["status"]["phase"] == "Failed"
    assert reasons(step) == ["TargetNotReady"]
    assert "etcd timeout" in body["status"]["message"]


def test_a_run_id_seen_before_is_refused_and_history_kept(kube: FakeKube) -> None:
    body = _to(kube, "Pending")
    body["status"]["phase"] = "Succeeded"
    body["spec"]["runId"] = "2"
    tick(kube, body, T0)
    body["status"]["phase"] = "Succeeded"
    body["status"]["history"] = [
        {"runId": "2", "phase": "Succeeded", "message": "ok"},
        {"runId": "1", "phase": "Succeeded", "message": "first"},
    ]
    body["spec"]["runId"] = "1"  # git revert of the bump
    step = tick(kube, body, T0)
    st = body["status"]
    assert (st["phase"], st["runId"], reasons(step)) == ("Failed", "1", ["RunIdReused"])
    assert [h["runId"] for h in st["history"]] == ["2", "1"]
    assert st["history"][1]["message"] == "first"
    assert cond(body, "Completed")["reason"] == "RunIdReused"
    body["metadata"]["generation"] = 5  # other edits do not re-run a refused runId
    assert reasons(tick(kube, body, T0)) == []


def test_a_fixed_typo_runs_under_the_same_run_id(kube: FakeKube) -> None:
    body = _body(_spec(load={"model": "constant", "stages": []}))
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed"
    body["spec"] = _spec()
    body["metadata"]["generation"] = 2
    step = tick(kube, body, T0)
    st = body["status"]
    assert (st["phase"], st["runId"], st["runGeneration"]) == ("Pending", "1", 2)
    assert reasons(step) == ["RunStarted"]
    assert [h["runId"] for h in st["history"]] == []  # the refused attempt is replaced


def test_a_finished_run_is_not_readmitted_by_an_edit(kube: FakeKube) -> None:
    body = _to(kube, "Pending")
    body["status"].update(phase="Succeeded", loadStartTime="2026-11-29T12:00:00Z")
    body["metadata"]["generation"] = 2
    step = tick(kube, body, T0)
    assert step.events == [] and body["status"]["observedGeneration"] == 2


def test_observed_generation_follows_every_processed_edit(kube: FakeKube) -> None:
    body = _to(kube, "WaitingForTarget")
    body["metadata"]["generation"] = 3
    tick(kube, body, T0)
    assert body["status"]["observedGeneration"] == 3
    assert body["status"]["runGeneration"] == 1


def test_suspend_before_the_workers_holds_then_resumes(kube: FakeKube) -> None:
    body = _to(kube, "Pending")
    body["spec"]["suspend"] = True
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Pending" and reasons(step) == ["Suspended"]
    assert cond(body, "Suspended")["status"] == "True"
    tick(kube, body, T0 + timedelta(hours=5))  # held: no queue timeout while suspended
    assert body["status"]["phase"] == "Pending"
    body["spec"]["suspend"] = False
    tick(kube, body, T0 + timedelta(hours=5))
    assert body["status"]["phase"] == "WaitingForTarget"
    assert cond(body, "Suspended")["reason"] == "Resumed"


def test_the_start_instant_is_never_rewritten(kube: FakeKube) -> None:
    body = _to(kube, "Running")
    cm = kube.configmap(NS, builders.run_name(NAME, "1"))
    assert cm is not None
    cm["data"][builders.START_KEY] = f"{(T0 + timedelta(seconds=1)).timestamp():.3f}"
    kube.put(_pod(0, "Running"))
    kube.put(_pod(1, "Running"))
    tick(kube, body, T0 + timedelta(seconds=30))  # the barrier opened before a crash
    assert body["status"]["loadStartTime"] == "2026-11-29T12:00:01Z"


def test_a_plan_over_a_configmaps_size_fails_before_any_write(kube: FakeKube) -> None:
    rows = [{"q": "x" * 1000, "i": i} for i in range(1100)]
    spec = _spec(scenario={"path": "/", "dataset": {"inline": rows}})
    step = tick(kube, _body(spec), T0)
    assert step.status["phase"] == "Failed" and reasons(step) == ["PlanTooLarge"]
    assert not [c for c in kube.calls if c[0] == "ensure"]


def test_a_precreated_plan_is_not_adopted(kube: FakeKube) -> None:
    kube.put(
        {
            "kind": "ConfigMap",
            "metadata": {"name": builders.run_name(NAME, "1"), "namespace": NS},
            "data": {builders.PLAN_KEY: "{}"},
        }
    )
    step = tick(kube, _body(), T0)
    assert step.status["phase"] == "Failed" and reasons(step) == ["ObjectNotOwned"]
    assert "not owned" in step.status["message"]


def test_own_children_are_adopted_after_a_crash(kube: FakeKube) -> None:
    body = _to(kube, "WaitingForTarget")
    first: dict[str, Any] = dict(body["status"])
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Running"
    body["status"] = first  # the Running write was lost
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Running"  # the existing Job is ours: adopted


def test_an_experiments_child_shares_the_experiments_lease(kube: FakeKube) -> None:
    from surge.operator.kube import target_lease

    holder = target_lease.Holder("ScalingExperiment", NS, "sx", "u-sx")
    key = "service/team/alice:8080"  # what the runs load: the URL's Service (#25)
    lease = target_lease.lease_object(
        NS, target_lease.lease_name(key), key, holder, T0, duration_s=3600
    )
    assert kube.create_lease(lease)
    kube.put({"kind": "ScalingExperiment", "metadata": {"name": "sx", "namespace": NS,
              "uid": "u-sx"}, "spec": {"variants": [{"name": "cpu"}]},
              "status": {"phase": "Running"}})  # fmt: skip
    stranger = _to(kube, "Pending")
    tick(kube, stranger, T0)
    assert stranger["status"]["phase"] == "Pending"  # not the experiment's: waits
    # An ownerReference anyone can write does not make a LoadTest the experiment's child.
    forged = _body()
    forged["metadata"].update(
        name="mine",
        uid="u-forged",
        ownerReferences=[{"kind": "ScalingExperiment", "name": "sx", "uid": "u-sx"}],
    )
    forged = _to(kube, "Pending", forged)
    tick(kube, forged, T0)
    assert forged["status"]["phase"] == "Pending"
    child = _body()
    child["metadata"].update(
        name="sx-cpu-r0",
        uid="u-child",
        ownerReferences=[{"kind": "ScalingExperiment", "name": "sx", "uid": "u-sx"}],
    )
    _to(kube, "WaitingForTarget", child)


def test_a_forbidden_prometheus_secret_ends_analysis_without_cluster_metrics(
    kube: FakeKube,
) -> None:
    auth = {"bearerTokenSecretRef": {"name": "p", "key": "t"}}
    usable = {"surge.dev/usable": "true"}
    kube.put({"kind": "Secret", "metadata": {"name": "p", "namespace": "team", "labels": usable}})
    body = _to(kube, "Running", _body(_spec(prometheus={"url": "http://prom:9", "auth": auth})))
    kube.put(_pod(0, "Running"))
    kube.put(_pod(1, "Running"))
    tick(kube, body, T0)  # the barrier
    kube.put(_pod(0, "Succeeded", _summary(0, 0.1)))
    kube.put(_pod(1, "Succeeded", _summary(1, 0.1)))
    tick(kube, body, T0 + timedelta(seconds=15))
    assert body["status"]["phase"] == "Analyzing"
    kube.failures["secret_value"] = KubeError("read Secret team/p", 403, 'secrets "p" is forbidden')
    tick(kube, body, T0 + timedelta(seconds=16))
    st = body["status"]
    assert st["phase"] == "Succeeded", st["message"]  # the thresholds held; no cluster data
    metrics = cond(body, "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "NoData")
    assert "Prometheus auth unusable" in metrics["message"] and "forbidden" in metrics["message"]
