"""Every transition of the ScalingExperiment state machine, on the in-memory FakeKube.

Stages: Apply -> RollOut -> Test -> Restore -> Cooldown per run, then Analyzing; plus the
start (snapshot, dry run, queue, missing target), the guardrails (rollout timeout, budget,
spec.timeout) and the finalizer. Each patch is checked against the CRD's generated schema.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from surge.api.crd import experiment_crd
from surge.api.experiment_status import ScalingExperimentStatus
from surge.operator.context import Decision
from surge.operator.experiment import reconcile as experiments
from surge.operator.experiment.runs import child_name, snapshot_name
from surge.operator.experiment.target import HpaTaken, check_hpa_ours
from surge.operator.settings import Settings
from tests.operator.fake_kube import FakeKube, merge_patch
from tests.operator.schema import pruned

NS, NAME = "team", "sx"
T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
SCHEMA = experiment_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
ORIGINAL = {
    "replicas": 1,
    "selector": {"matchLabels": {"app": "alice"}},
    "template": {"spec": {"containers": [{"name": "alice", "image": "alice:1"}]}},
}
HPA = {
    "minReplicas": 1,
    "maxReplicas": 4,
    "scaleTargetRef": {"kind": "Deployment", "name": "alice"},
}


def _spec(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"deployment": "alice", "hpa": "alice"},
        "loadTest": {
            "target": {"url": "http://alice.team:8080"},
            "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
        },
        "variants": [
            {"name": "cpu", "nodeSelector": {"surge.dev/pool": "cpu"}, "hpa": {"maxReplicas": 3}},
            {"name": "gpu", "nodeSelector": {"surge.dev/pool": "gpu"}},
        ],
        "cost": {"perPool": {"cpu": 0.1, "gpu": 2.0}},
        "cooldown": "30s",
        "rolloutTimeout": "60s",
    }
    spec.update(over)
    return spec


def _body(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "ScalingExperiment",
        "metadata": {"name": NAME, "namespace": NS, "uid": "u-sx", "generation": 1},
        "spec": spec or _spec(),
        "status": {},
    }


@pytest.fixture
def kube() -> FakeKube:
    return make_kube()


def make_kube() -> FakeKube:
    """The target Deployment (opted in to experiments), its HPA and its Service."""
    k = FakeKube()
    k.put(
        {
            "kind": "Deployment",
            "metadata": {
                "name": "alice",
                "namespace": NS,
                "generation": 1,
                "uid": "u-dep",
                "annotations": {"surge.dev/experiment-target": "true"},  # opted in
            },
            "spec": copy.deepcopy(ORIGINAL),
            "status": {},
        }
    )
    k.put(SERVICE)
    k.put(
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "alice", "namespace": NS},
            "spec": dict(HPA),
        }
    )
    return k


SERVICE = {
    "kind": "Service",
    "metadata": {"name": "alice", "namespace": NS},
    "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.10"]},
}


def tick(kube: FakeKube, body: dict[str, Any], now: datetime) -> Decision:
    step = experiments.reconcile_experiment(body, kube, Settings(), now)  # type: ignore[arg-type]
    assert pruned(step.status, SCHEMA["status"]) == []
    body["status"] = merge_patch(body.get("status") or {}, step.status)
    ScalingExperimentStatus.model_validate(body["status"])
    return step


def reasons(step: Decision) -> list[str]:
    return [reason for _, reason, _ in step.events]


def stage(body: dict[str, Any]) -> tuple[str, str | None, int | None]:
    st = body["status"]
    step = st.get("step") or {}
    return st["phase"], step.get("stage"), step.get("index")


def rolled_out(kube: FakeKube) -> None:
    dep = kube.deployment(NS, "alice")
    assert dep is not None
    n = dep["spec"].get("replicas", 1)
    dep["status"] = {
        "observedGeneration": dep["metadata"]["generation"],
        "updatedReplicas": n,
        "availableReplicas": n,
        "replicas": n,
    }


def child_ends(kube: FakeKube, index: int, phase: str = "Succeeded") -> None:
    variant = ["cpu", "gpu"][index % 2]
    child = kube.loadtest(NS, child_name(NAME, variant, index // 2))
    assert child is not None
    child["status"] = {
        "phase": phase,
        "summary": {"achievedRps": 5.0, "p95Ms": 120.0, "errorRate": 0.0},
        "results": {"version": 2, "requests": {"sent": 50}},
    }


def test_start_snapshots_the_original_and_enters_apply(kube: FakeKube) -> None:
    body = _body()
    step = tick(kube, body, T0)
    assert stage(body) == ("Running", "Apply", 0)
    assert reasons(step) == ["RunStarted"]
    assert body["status"]["currentVariant"] == "cpu"
    assert kube.configmap(NS, snapshot_name(NAME)) is not None


def test_dry_run_shows_each_variant_and_applies_nothing(kube: FakeKube) -> None:
    body = _body(_spec(dryRun=True))
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Succeeded" and reasons(step) == ["DryRun"]
    plan = body["status"]["plan"]
    assert [p["variant"] for p in plan] == ["cpu", "gpu"]
    assert plan[0]["hpa"]["maxReplicas"] == 3
    assert plan[1]["deployment"]["template"]["spec"]["nodeSelector"] == {"surge.dev/pool": "gpu"}
    assert not [c for c in kube.calls if c[0] in ("patch_deployment", "put_hpa_spec")]


def test_missing_target_fails(kube: FakeKube) -> None:
    del kube.objects[("Deployment", NS, "alice")]
    step = tick(kube, _body(), T0)
    assert step.status["phase"] == "Failed" and reasons(step) == ["TargetNotReady"]


def test_a_second_experiment_on_the_target_waits(kube: FakeKube) -> None:
    other = _body()
    other["metadata"].update(name="other", uid="u-other")
    tick(kube, other, T0)  # takes the target's Lease
    assert other["status"]["phase"] == "Running" and other["status"]["lease"]
    kube.put(other)
    body = _body()
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Pending"
    queued = body["status"]["conditions"][0]
    assert queued["reason"] == "TargetBusy" and "ScalingExperiment team/other" in queued["message"]
    # The other one ends; its persisted end releases the Lease, and this one starts.
    other["status"]["phase"] = "Succeeded"
    tick(kube, other, T0)
    assert "lease" not in other["status"]
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Running"


def test_invalid_spec_fails(kube: FakeKube) -> None:
    step = tick(kube, _body(_spec(variants=[])), T0)
    assert step.status["phase"] == "Failed" and reasons(step) == ["InvalidSpec"]


def _at(
    kube: FakeKube, want: tuple[str, str | None, int | None], spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A body driven through the real stages (rollouts complete, children succeed)."""
    body = _body(spec)
    now = T0
    for _ in range(40):
        now_at = stage(body) if body["status"] else (None, None, None)
        if now_at == want:
            return body
        _, st, index = now_at
        if st == "RollOut":
            rolled_out(kube)
        if st == "Test" and index is not None:
            name = child_name(NAME, ["cpu", "gpu"][index % 2], index // 2)
            if kube.loadtest(NS, name) is not None:
                child_ends(kube, index)
        now += timedelta(seconds=31)
        tick(kube, body, now)
    raise AssertionError(f"never reached {want}: {body['status']}")


def test_apply_writes_the_variant_and_its_hpa(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Apply", 0))
    step = tick(kube, body, T0)
    assert stage(body) == ("Running", "RollOut", 0)
    assert reasons(step) == ["VariantApplied"]
    dep, hpa = kube.deployment(NS, "alice"), kube.hpa(NS, "alice")
    assert dep is not None and hpa is not None
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"surge.dev/pool": "cpu"}
    assert hpa["spec"]["maxReplicas"] == 3


def test_apply_without_the_snapshot_fails(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Apply", 0))
    del kube.objects[("ConfigMap", NS, snapshot_name(NAME))]
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["SnapshotLost"]
    assert not [c for c in kube.calls if c[0] in ("patch_deployment", "put_hpa_spec")]


def test_rollout_done_moves_to_test(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "RollOut", 0))
    rolled_out(kube)
    tick(kube, body, T0 + timedelta(seconds=40))
    assert stage(body) == ("Running", "Test", 0)
    assert body["status"]["step"]["rolloutSeconds"] is not None


def test_rollout_timeout_records_a_failed_row_and_restores(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "RollOut", 0))
    step = tick(kube, body, T0 + timedelta(hours=1))
    assert stage(body) == ("Running", "Restore", 0)
    assert reasons(step) == ["RolloutTimeout"]
    row = body["status"]["runs"][0]
    assert (row["name"], row["passed"], row["reason"]) == ("cpu", False, "RolloutTimeout")


def test_test_creates_the_child_then_records_its_row(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Test", 0))
    tick(kube, body, T0 + timedelta(seconds=100))
    child = kube.loadtest(NS, child_name(NAME, "cpu", 0))
    assert child is not None and child["metadata"]["labels"]["surge.dev/variant"] == "cpu"
    assert body["status"]["step"]["hpaInForce"]["maxReplicas"] == 3
    child_ends(kube, 0)
    step = tick(kube, body, T0 + timedelta(seconds=110))
    assert stage(body) == ("Running", "Restore", 0)
    assert reasons(step) == ["VariantMeasured"]
    row = body["status"]["runs"][0]
    assert (row["name"], row["passed"], row["achievedRps"], row["requests"]) == (
        "cpu",
        True,
        5.0,
        50,
    )


def test_restore_writes_the_original_back_then_cools_down(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Restore", 0))
    step = tick(kube, body, T0 + timedelta(minutes=5))
    assert stage(body) == ("Running", "Cooldown", 0)
    assert reasons(step) == ["Restored"]
    dep, hpa = kube.deployment(NS, "alice"), kube.hpa(NS, "alice")
    assert dep is not None and dep["spec"] == ORIGINAL
    assert hpa is not None and hpa["spec"] == HPA


def test_cooldown_waits_then_applies_the_next_variant(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Cooldown", 0))
    since = datetime.strptime(body["status"]["step"]["since"], "%Y-%m-%dT%H:%M:%SZ")
    since = since.replace(tzinfo=UTC)
    tick(kube, body, since + timedelta(seconds=10))
    assert stage(body) == ("Running", "Cooldown", 0)
    tick(kube, body, since + timedelta(seconds=30))
    assert stage(body) == ("Running", "Apply", 1)
    assert body["status"]["currentVariant"] == "gpu"


def test_last_restore_goes_to_analysis_which_recommends(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Restore", 1))
    step = tick(kube, body, T0 + timedelta(minutes=10))
    assert body["status"]["phase"] == "Analyzing" and reasons(step) == ["Restored", "Analyzing"]
    step = tick(kube, body, T0 + timedelta(minutes=10))
    st = body["status"]
    assert st["phase"] == "Succeeded" and reasons(step) == ["Recommended"]
    assert [r["name"] for r in st["comparison"]] == ["cpu", "gpu"]
    assert st["recommendation"].startswith("cpu: passes the SLO")


def test_budget_spent_aborts_and_restores(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Test", 0), _spec(budget={"maxReplicaHours": 0.0001}))
    tick(kube, body, T0 + timedelta(seconds=100))  # creates the child
    child = kube.loadtest(NS, child_name(NAME, "cpu", 0))
    assert child is not None
    child["status"] = {"phase": "Running", "loadStartTime": "2026-11-29T12:00:00Z"}
    tick(kube, body, T0 + timedelta(seconds=200))  # samples 100 s of 1 replica
    child_ends(kube, 0)
    step = tick(kube, body, T0 + timedelta(seconds=210))
    assert body["status"]["phase"] == "Aborted"
    assert "BudgetExhausted" in reasons(step)
    dep = kube.deployment(NS, "alice")
    assert dep is not None and dep["spec"] == ORIGINAL


def test_spec_timeout_suspends_the_child_and_restores(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Test", 0))
    tick(kube, body, T0 + timedelta(seconds=100))
    step = tick(kube, body, T0 + timedelta(hours=5))
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["ExperimentTimeout"]
    assert ("suspend_loadtest", NS, child_name(NAME, "cpu", 0)) in kube.calls
    dep = kube.deployment(NS, "alice")
    assert dep is not None and dep["spec"] == ORIGINAL


def test_a_finished_experiment_is_left_alone(kube: FakeKube) -> None:
    body = _body()
    body["status"] = {"phase": "Succeeded", "observedGeneration": 1}
    step = tick(kube, body, T0)
    assert step.status == {} and step.events == [] and kube.calls == []


def test_delete_restores_and_removes_the_children(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Test", 0))
    tick(kube, body, T0 + timedelta(seconds=100))
    experiments.restore_on_delete(body, kube, Settings(), T0)  # type: ignore[arg-type]
    assert kube.loadtest(NS, child_name(NAME, "cpu", 0)) is None
    dep = kube.deployment(NS, "alice")
    assert dep is not None and dep["spec"] == ORIGINAL


# -- never undo the owner's work (docs/experiments.md, "Guarantees") -------------------------


def _container(kube: FakeKube) -> dict[str, Any]:
    dep = kube.deployment(NS, "alice")
    assert dep is not None
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


def _pod_spec(kube: FakeKube) -> dict[str, Any]:
    dep = kube.deployment(NS, "alice")
    assert dep is not None
    return dict(dep["spec"]["template"]["spec"])


def test_an_owner_rollout_mid_run_aborts_and_keeps_their_image(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Test", 0))
    _container(kube)  # the cpu variant is in place
    dep = kube.deployment(NS, "alice")
    assert dep is not None
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "alice:2"  # their rollout
    step = tick(kube, body, T0 + timedelta(seconds=100))
    assert body["status"]["phase"] == "Aborted"
    assert reasons(step) == ["TargetModified"]
    assert "spec.template.spec.containers[alice].image" in body["status"]["message"]
    assert _container(kube)["image"] == "alice:2"  # kept
    assert "nodeSelector" not in _pod_spec(kube)  # the variant's field is back to original
    hpa = kube.hpa(NS, "alice")
    assert hpa is not None and hpa["spec"] == HPA


def test_a_revert_of_the_variant_by_someone_else_is_detected(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "RollOut", 0))
    dep = kube.deployment(NS, "alice")
    assert dep is not None
    del dep["spec"]["template"]["spec"]["nodeSelector"]  # Argo CD self-heal
    tick(kube, body, T0 + timedelta(seconds=40))
    assert body["status"]["phase"] == "Aborted"
    assert "spec.template.spec.nodeSelector" in body["status"]["message"]
    hpa = kube.hpa(NS, "alice")
    assert hpa is not None and hpa["spec"] == HPA  # what was still ours went back


def test_deleting_a_finished_experiment_writes_nothing(kube: FakeKube) -> None:
    body = _at(kube, ("Analyzing", None, None))
    tick(kube, body, T0 + timedelta(minutes=20))
    assert body["status"]["phase"] == "Succeeded"
    dep = kube.deployment(NS, "alice")
    assert dep is not None
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "alice:3"  # weeks later
    before = len([c for c in kube.calls if c[0] in ("patch_deployment", "put_hpa_spec")])
    experiments.restore_on_delete(body, kube, Settings(), T0)  # type: ignore[arg-type]
    after = len([c for c in kube.calls if c[0] in ("patch_deployment", "put_hpa_spec")])
    assert after == before
    assert _container(kube)["image"] == "alice:3"


def test_a_precreated_snapshot_is_refused(kube: FakeKube) -> None:
    meta = {"name": snapshot_name(NAME), "namespace": NS}
    kube.put({"kind": "ConfigMap", "metadata": meta, "data": {"deployment.json": "{}"}})
    body = _body()
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["SnapshotLost"]
    assert not [c for c in kube.calls if c[0] in ("patch_deployment", "put_hpa_spec")]


def test_an_altered_snapshot_stops_the_experiment_without_writing(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Cooldown", 0))
    cm = kube.configmap(NS, snapshot_name(NAME))
    assert cm is not None
    cm["data"]["deployment.json"] = '{"template": {"spec": {"serviceAccountName": "root"}}}'
    writes = len([c for c in kube.calls if c[0] in ("patch_deployment", "put_hpa_spec")])
    step = tick(kube, body, T0 + timedelta(hours=1))
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["SnapshotLost"]
    assert len([c for c in kube.calls if c[0] in ("patch_deployment", "put_hpa_spec")]) == writes


def test_a_deleted_target_fails_and_deletion_never_blocks(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Test", 0))
    del kube.objects[("Deployment", NS, "alice")]
    step = tick(kube, body, T0 + timedelta(seconds=100))
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["TargetDeleted"]
    body["status"]["phase"] = "Running"  # deleted before the failure was written
    experiments.restore_on_delete(body, kube, Settings(), T0)  # type: ignore[arg-type]


def test_an_invalid_edit_mid_run_drifts_and_delete_still_restores(kube: FakeKube) -> None:
    body = _at(kube, ("Running", "Test", 0))
    body["spec"]["variants"] = []  # invalid
    body["metadata"]["generation"] = 2
    step = tick(kube, body, T0 + timedelta(seconds=100))
    assert body["status"]["phase"] == "Running" and "SpecDrifted" in reasons(step)
    assert _pod_spec(kube)["nodeSelector"] == {"surge.dev/pool": "cpu"}
    experiments.restore_on_delete(body, kube, Settings(), T0)  # type: ignore[arg-type]
    dep = kube.deployment(NS, "alice")
    assert dep is not None and dep["spec"] == ORIGINAL
    hpa = kube.hpa(NS, "alice")
    assert hpa is not None and hpa["spec"] == HPA


def test_a_variant_without_an_hpa_leaves_the_hpa_alone(kube: FakeKube) -> None:
    _at(kube, ("Running", "Test", 1))  # the gpu variant sets no HPA
    hpa = kube.hpa(NS, "alice")
    assert hpa is not None and hpa["spec"] == HPA
    puts = [c for c in kube.calls if c[0] == "put_hpa_spec"]
    assert len(puts) == 2  # cpu applied, cpu restored; nothing for gpu


def test_an_experiment_queued_past_its_timeout_fails(kube: FakeKube) -> None:
    other = _body()
    other["metadata"].update(name="other", uid="u-other")
    tick(kube, other, T0)  # holds the target's Lease
    kube.put(other)
    body = _body(_spec(timeout="10m"))
    body["metadata"]["creationTimestamp"] = "2026-11-29T12:00:00Z"
    tick(kube, body, T0 + timedelta(minutes=5))
    assert body["status"]["phase"] == "Pending"
    step = tick(kube, body, T0 + timedelta(minutes=11))
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["ExperimentTimeout"]
    assert "ScalingExperiment team/other held alice" in body["status"]["message"]
    assert not [c for c in kube.calls if c[0] in ("patch_deployment", "put_hpa_spec")]


def test_a_permanent_api_error_ends_the_experiment_and_puts_the_variant_back(
    kube: FakeKube,
) -> None:
    from surge.operator.kube.client import KubeError

    body = _at(kube, ("Running", "RollOut", 0))
    assert _pod_spec(kube)["nodeSelector"] == {"surge.dev/pool": "cpu"}
    kube.failures["pods"] = KubeError("list Pods in team", 403, 'pods is forbidden: "x"')
    step = tick(kube, body, T0 + timedelta(seconds=40))
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["Forbidden"]
    assert "pods is forbidden" in body["status"]["message"]
    hpa = kube.hpa(NS, "alice")
    assert hpa is not None and hpa["spec"] == HPA  # the variant's HPA went back


def test_a_transient_api_error_shows_and_the_next_tick_goes_on(kube: FakeKube) -> None:
    from surge.operator.kube.client import KubeError

    body = _at(kube, ("Running", "RollOut", 0))
    kube.failures["pods"] = KubeError("list Pods in team", 503, "etcd leader changed")
    tick(kube, body, T0 + timedelta(seconds=40))
    retrying = next(c for c in body["status"]["conditions"] if c["type"] == "Retrying")
    assert (body["status"]["phase"], retrying["status"]) == ("Running", "True")
    rolled_out(kube)
    tick(kube, body, T0 + timedelta(seconds=42))
    assert stage(body) == ("Running", "Test", 0)
    retrying = next(c for c in body["status"]["conditions"] if c["type"] == "Retrying")
    assert retrying["reason"] == "Recovered"


def test_a_created_hpa_gives_the_deployment_its_replicas_back() -> None:
    """The target has no HPA (its owner runs 1 replica); the cpu variant creates one, which
    scales the Deployment to 3. Deleting the HPA on restore left 3 replicas running: the
    owner's count is put back, as KEDA's restoreToOriginalReplicaCount does."""
    kube = make_kube()
    del kube.objects[("HorizontalPodAutoscaler", NS, "alice")]
    body = _at(kube, ("Running", "Test", 0))
    assert kube.hpa(NS, "alice") is not None  # created for the variant
    dep = kube.deployment(NS, "alice")
    assert dep is not None
    dep["spec"]["replicas"] = 3  # what the created HPA did
    now = T0 + timedelta(minutes=30)
    while stage(body) != ("Running", "Cooldown", 0):
        assert now < T0 + timedelta(minutes=40), body["status"]
        if kube.loadtest(NS, child_name(NAME, "cpu", 0)) is not None:
            child_ends(kube, 0)
        tick(kube, body, now)
        now += timedelta(seconds=31)
    assert kube.hpa(NS, "alice") is None
    dep = kube.deployment(NS, "alice")
    assert dep is not None and dep["spec"]["replicas"] == ORIGINAL["replicas"]


def test_two_experiments_on_one_deployment_queue_whatever_urls_they_load(
    kube: FakeKube,
) -> None:
    """The load's URL keys the Lease shared with the experiment's LoadTests; the Deployment
    has its own, so another port (or Service) does not let a second experiment change it."""
    first = _body()
    first["metadata"].update(name="first", uid="u-first")
    tick(kube, first, T0)
    kube.put(first)
    assert first["status"]["deploymentLease"]["target"] == f"deployment/{NS}/alice"
    spec = _spec()
    spec["loadTest"]["target"]["url"] = "http://alice.team:9090"
    body = _body(spec)
    tick(kube, body, T0)
    queued = next(c for c in body["status"]["conditions"] if c["type"] == "Queued")
    assert body["status"]["phase"] == "Pending" and queued["reason"] == "TargetBusy"
    assert queued["message"] == "ScalingExperiment team/first holds alice"
    assert not body["status"].get("deploymentLease") and not body["status"].get("lease")
    # The first ends: both its Leases go back once that is persisted, and the second starts.
    first["status"]["phase"] = "Aborted"
    tick(kube, first, T0 + timedelta(seconds=5))
    assert not first["status"].get("lease") and not first["status"].get("deploymentLease")
    assert not [k for k in kube.objects if k[0] == "Lease"]
    tick(kube, body, T0 + timedelta(seconds=6))
    assert body["status"]["phase"] == "Running"
    assert body["status"]["deploymentLease"] and body["status"]["lease"]


def _two_hpa_variants() -> dict[str, Any]:
    return _spec(
        variants=[
            {"name": "cpu", "hpa": {"maxReplicas": 3}},
            {"name": "gpu", "hpa": {"maxReplicas": 4}},
        ]
    )


def _next_apply(kube: FakeKube, body: dict[str, Any]) -> Decision:
    """From the cooldown after the first run to the second variant's Apply."""
    step = tick(kube, body, T0 + timedelta(minutes=30))
    for _ in range(3):
        if body["status"]["phase"] != "Running" or stage(body)[1] not in ("Cooldown", "Apply"):
            break
        step = tick(kube, body, T0 + timedelta(minutes=31))
    return step


def test_an_hpa_created_by_someone_else_between_runs_is_neither_replaced_nor_deleted() -> None:
    """No HPA at the snapshot: the owner's own, created during a cooldown, is theirs."""
    kube = make_kube()
    del kube.objects[("HorizontalPodAutoscaler", NS, "alice")]
    body = _at(kube, ("Running", "Cooldown", 0), _two_hpa_variants())
    theirs = {**HPA, "maxReplicas": 9}
    kube.put({"kind": "HorizontalPodAutoscaler", "metadata": {"name": "alice", "namespace": NS},
              "spec": theirs})  # fmt: skip
    step = _next_apply(kube, body)
    assert body["status"]["phase"] == "Aborted" and "TargetModified" in reasons(step)
    assert "created by someone else" in body["status"]["message"]
    hpa = kube.hpa(NS, "alice")
    assert hpa is not None and hpa["spec"] == theirs


def test_an_hpa_edited_by_its_owner_between_runs_is_kept() -> None:
    kube = make_kube()
    body = _at(kube, ("Running", "Cooldown", 0), _two_hpa_variants())
    hpa = kube.objects[("HorizontalPodAutoscaler", NS, "alice")]
    assert hpa["spec"] == HPA  # the first variant's restore put the owner's back
    hpa["spec"] = {**HPA, "minReplicas": 2}
    step = _next_apply(kube, body)
    assert body["status"]["phase"] == "Aborted" and "TargetModified" in reasons(step)
    assert "was changed since the snapshot" in body["status"]["message"]
    assert kube.objects[("HorizontalPodAutoscaler", NS, "alice")]["spec"] == {
        **HPA,
        "minReplicas": 2,
    }


def test_a_reapply_after_a_crash_finds_its_own_hpa_and_goes_on() -> None:
    """A tick after a crash between the HPA's write and the step's record re-applies: the
    HPA then holds what this variant writes (plus the server's defaults), not the
    snapshot's, and is the experiment's own."""
    ours = {**HPA, "maxReplicas": 6}
    defaulted = {**ours, "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}}}
    meta = {"name": "alice", "labels": {"surge.dev/experiment": "sx"}}
    check_hpa_ours({"metadata": meta, "spec": defaulted}, HPA, ours, "alice", "sx")
    check_hpa_ours({"metadata": meta, "spec": ours}, None, ours, "alice", "sx")
    with pytest.raises(HpaTaken, match="was changed since the snapshot"):
        check_hpa_ours(
            {"metadata": meta, "spec": {**ours, "maxReplicas": 7}}, HPA, ours, "alice", "sx"
        )
    with pytest.raises(HpaTaken, match="was deleted since the snapshot"):
        check_hpa_ours(None, HPA, ours, "alice", "sx")


def test_a_loadtest_under_a_childs_name_that_is_not_ours_is_never_adopted(
    kube: FakeKube,
) -> None:
    """Child names can meet (experiment web-api's variant cpu and web's api-cpu) and anyone
    may create a LoadTest: its results are not this variant's, and it is not suspended."""
    body = _at(kube, ("Running", "RollOut", 0))
    name = child_name(NAME, "cpu", 0)
    foreign = {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {"name": name, "namespace": NS, "uid": "u-else", "ownerReferences": []},
        "spec": {"runId": "1"},
        "status": {"phase": "Succeeded", "summary": {"p95Ms": 1.0}},
    }
    kube.put(foreign)
    rolled_out(kube)
    step = tick(kube, body, T0 + timedelta(seconds=40))
    for _ in range(3):
        if body["status"]["phase"] != "Running":
            break
        step = tick(kube, body, T0 + timedelta(seconds=45))
    assert body["status"]["phase"] == "Failed" and "ObjectNotOwned" in reasons(step)
    assert f"LoadTest {NS}/{name} exists and is not this experiment's" in body["status"]["message"]
    assert not body["status"].get("runs")
    child = kube.loadtest(NS, name)
    assert child is not None and not child["spec"].get("suspend")
    assert _pod_spec(kube).get("nodeSelector") != {"surge.dev/pool": "cpu"}  # restored


def test_the_hpa_check_reads_quantities_as_the_api_server_writes_them() -> None:
    """The server writes 1000 back as "1k" and "1000m" as "1": a re-apply after a crash
    must still find its own HPA, while a field the owner added is still their edit."""
    target = {"type": "AverageValue", "averageValue": 1000}
    metric = {"type": "Pods", "pods": {"metric": {"name": "queue"}, "target": target}}
    ours: dict[str, Any] = {**HPA, "maxReplicas": 6, "metrics": [metric]}
    canonical = copy.deepcopy(ours)
    canonical["metrics"][0]["pods"]["target"]["averageValue"] = "1k"
    meta = {"name": "alice"}
    check_hpa_ours({"metadata": meta, "spec": canonical}, HPA, ours, "alice", "sx")
    added = {**HPA, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}
    with pytest.raises(HpaTaken, match="was changed since the snapshot"):
        check_hpa_ours({"metadata": meta, "spec": added}, HPA, ours, "alice", "sx")


def test_a_variant_that_keeps_the_owners_hpa_does_not_take_a_field_they_added() -> None:
    """Holding `ours` proves a lost write only where `ours` differs from the original."""
    added = {**HPA, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}
    with pytest.raises(HpaTaken, match="was changed since the snapshot"):
        check_hpa_ours({"metadata": {"name": "alice"}, "spec": added}, HPA, HPA, "alice", "sx")


def test_only_the_hpas_quantities_are_read_as_quantities() -> None:
    """A label "1.10" is not "1.1", nor a name "1k" "1000"."""
    selector = {"matchLabels": {"version": "1.1"}}
    metric = {"type": "External", "external": {"metric": {"name": "q", "selector": selector}}}
    original: dict[str, Any] = {**HPA, "metrics": [metric]}
    edited = copy.deepcopy(original)
    edited["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]["version"] = "1.10"
    ours = {**original, "maxReplicas": 6}
    with pytest.raises(HpaTaken, match="was changed since the snapshot"):
        check_hpa_ours({"metadata": {"name": "alice"}, "spec": edited}, original, ours, "alice", "")
