"""ScalingExperiment safety on the real control plane: the owner's work is never undone
(docs/experiments.md, "Guarantees"). The target runs on KWOK pools; Alice serves the load."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.operator_support import (
    GROUP,
    VERSION,
    Operator,
    alice,
    condition,
    operator,
    plain,
)
from tests.e2e.test_experiment import (
    SX,
    experiment,
    get_sx,
    make_target,
    observe,
    specs,
    variant_under_test,
)
from tests.support.cluster import wait_until
from tests.support.podrunner import PodRunner

__all__ = ["alice", "operator"]

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def _create(api: client.ApiClient, ns: str, obj: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, SX, obj)


def _deployment(api: client.ApiClient, ns: str) -> dict[str, Any]:
    return plain(api, [client.AppsV1Api(api).read_namespaced_deployment("alice", ns)])[0]


def _set_image(api: client.ApiClient, ns: str, image: str) -> None:
    """The owner's rollout, as `kubectl set image` does it (a strategic merge patch)."""
    body = {"spec": {"template": {"spec": {"containers": [{"name": "alice", "image": image}]}}}}
    client.AppsV1Api(api).patch_namespaced_deployment("alice", ns, body)


def _image(api: client.ApiClient, ns: str) -> str:
    return str(_deployment(api, ns)["spec"]["template"]["spec"]["containers"][0]["image"])


def test_deleting_a_finished_experiment_keeps_a_later_rollout(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    make_target(api_client, namespace)
    one = experiment("done", alice, variants=[{"name": "cpu", "hpa": {"maxReplicas": 4}}])
    _create(api_client, namespace, one)
    obj, _ = observe(api_client, namespace, "done", operator, timeout_s=120)
    assert obj["status"]["phase"] == "Succeeded", obj["status"].get("message")
    _set_image(api_client, namespace, "alice:2")  # the owner's rollout, after the experiment
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, "done"
    )
    wait_until(lambda: get_sx(api_client, namespace, "done") is None, timeout_s=30, what="gone")
    assert _image(api_client, namespace) == "alice:2"


def test_an_owner_rollout_mid_run_aborts_and_is_kept(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    dep0, hpa0 = make_target(api_client, namespace)
    _create(api_client, namespace, experiment("mid", alice, duration="60s"))
    observe(api_client, namespace, "mid", operator, timeout_s=120, until=variant_under_test)
    _set_image(api_client, namespace, "alice:2")
    obj, _ = observe(api_client, namespace, "mid", operator, timeout_s=60)
    status = obj["status"]
    # By type: a Retrying=False written after a transient error would be the last one.
    assert (status["phase"], condition(obj, "Completed")["reason"]) == ("Aborted", "TargetModified")
    assert "containers[alice].image" in status["message"]
    dep, hpa = specs(api_client, namespace)
    assert dep["template"]["spec"]["containers"][0]["image"] == "alice:2"  # theirs, kept
    dep["template"]["spec"]["containers"][0]["image"] = "alice:1"
    assert (dep, hpa) == (dep0, hpa0)  # everything of the variant's is back


def test_a_revert_of_the_variant_by_someone_else_is_detected(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    dep0, hpa0 = make_target(api_client, namespace)
    _create(api_client, namespace, experiment("heal", alice, duration="60s"))
    observe(api_client, namespace, "heal", operator, timeout_s=120, until=variant_under_test)
    # Argo CD self-heal puts the HPA back as Git has it (the cpu variant set min 2, max 4).
    autoscaling = client.AutoscalingV2Api(api_client)
    live = autoscaling.read_namespaced_horizontal_pod_autoscaler("alice", namespace)
    live.spec.min_replicas, live.spec.max_replicas = hpa0["minReplicas"], hpa0["maxReplicas"]
    autoscaling.replace_namespaced_horizontal_pod_autoscaler("alice", namespace, live)
    obj, _ = observe(api_client, namespace, "heal", operator, timeout_s=60)
    assert obj["status"]["phase"] == "Aborted"
    assert "TargetModified" in {c["reason"] for c in obj["status"]["conditions"]}
    assert "HorizontalPodAutoscaler alice spec" in obj["status"]["message"]
    assert specs(api_client, namespace) == (dep0, hpa0)  # their HPA kept, our Deployment back


def test_a_precreated_snapshot_is_refused(
    api_client: client.ApiClient, namespace: str, operator: Operator, alice: str
) -> None:
    dep0, hpa0 = make_target(api_client, namespace)
    forged = {"replicas": 1, "template": {"spec": {"serviceAccountName": "admin"}}}
    cm: Any = {
        "metadata": {"name": "forged-snapshot"},  # the name the experiment would use
        "data": {"deployment.json": json.dumps(forged), "hpa.json": "null"},
    }
    client.CoreV1Api(api_client).create_namespaced_config_map(namespace, cm)
    _create(api_client, namespace, experiment("forged", alice))
    obj, _ = observe(api_client, namespace, "forged", operator, timeout_s=60)
    assert obj["status"]["phase"] == "Failed"
    assert "SnapshotLost" in {c["reason"] for c in obj["status"]["conditions"]}
    assert specs(api_client, namespace) == (dep0, hpa0)  # nothing written from it


def test_a_deleted_target_fails_and_the_experiment_deletes_cleanly(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    make_target(api_client, namespace)
    _create(api_client, namespace, experiment("orphan", alice, duration="60s"))
    observe(api_client, namespace, "orphan", operator, timeout_s=120, until=variant_under_test)
    client.AppsV1Api(api_client).delete_namespaced_deployment("alice", namespace)
    obj, _ = observe(api_client, namespace, "orphan", operator, timeout_s=60)
    assert obj["status"]["phase"] == "Failed"
    assert "TargetDeleted" in {c["reason"] for c in obj["status"]["conditions"]}
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, "orphan"
    )
    wait_until(
        lambda: get_sx(api_client, namespace, "orphan") is None,
        timeout_s=30,
        what="experiment deleted",
    )


def test_an_invalid_edit_mid_run_then_delete_restores_the_originals(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    dep0, hpa0 = make_target(api_client, namespace)
    _create(api_client, namespace, experiment("edited", alice, duration="60s"))
    observe(api_client, namespace, "edited", operator, timeout_s=120, until=variant_under_test)
    # Valid for the CRD, invalid for the models: minReplicas above maxReplicas.
    patch = {"spec": {"variants": [{"name": "cpu", "hpa": {"minReplicas": 9, "maxReplicas": 2}}]}}
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, "edited", patch
    )

    def drifted(o: dict[str, Any]) -> bool:
        conds = (o.get("status") or {}).get("conditions") or []
        return any(c["type"] == "SpecDrifted" and c["status"] == "True" for c in conds)

    obj, _ = observe(api_client, namespace, "edited", operator, timeout_s=60, until=drifted)
    assert obj["status"]["phase"] == "Running"  # the frozen spec goes on
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, "edited"
    )
    wait_until(
        lambda: get_sx(api_client, namespace, "edited") is None,
        timeout_s=60,
        what="experiment deleted",
    )
    assert specs(api_client, namespace) == (dep0, hpa0)
