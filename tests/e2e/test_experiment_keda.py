"""ScalingExperiment variants that write a KEDA ScaledObject, on the real control plane with the
real KEDA (issue #30; tests/e2e/test_keda.py shows KEDA itself at work).

The target Deployment (KWOK pods on the cpu pool) is scaled by a PRE-EXISTING ScaledObject
whose metrics-api trigger reads a loopback server the test runs (the KEDA operator is a host
process). Two variants write different triggers, replica bounds, polling and cooldown; some
fields of the original (fallback, `advanced.restoreToOriginalReplicaCount`) are never a
variant's. KEDA itself rewrites the spec it is given (it adds `advanced.scalingModifiers: {}`
and drops fields holding Go's zero value), so "the original" is the spec as served once KEDA
has taken the Deployment over. The operator runs under tests/e2e/policy.yaml plus
scaledObjects allowed for the metrics-api and cpu triggers (the loopback metric URL is one of
its prometheusUrls).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.operator_support import (
    GROUP,
    LOCAL_PLACEMENT,
    POLICY,
    VERSION,
    Operator,
    alice,
    plain,
)
from tests.e2e.test_experiment import get_sx, variant_under_test
from tests.e2e.test_keda import PAUSE, MetricServer, _keda_serves, metric
from tests.support.cluster import wait_until
from tests.support.podrunner import PodRunner

__all__ = ["alice", "metric"]

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

SX = "scalingexperiments"
SO = ("keda.sh", "v1alpha1")


def _trigger(url: str, target: str) -> dict[str, Any]:
    return {
        "type": "metrics-api",
        "metadata": {
            "url": url,
            "valueLocation": "value",
            "targetValue": target,
            "activationTargetValue": "0",
        },
    }


def original_scaled_object(url: str) -> dict[str, Any]:
    return {
        "scaleTargetRef": {"name": "alice"},
        "minReplicaCount": 1,
        "maxReplicaCount": 3,
        "pollingInterval": 15,
        "fallback": {"failureThreshold": 3, "replicas": 1},
        "advanced": {"restoreToOriginalReplicaCount": True},
        "triggers": [_trigger(url, "5")],
    }


@pytest.fixture
def keda_operator(
    api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[Operator]:
    """The operator under the e2e policy, with ScaledObject variants allowed."""
    if not _keda_serves(api_client):
        pytest.skip("this cluster has no KEDA (hack/cluster/keda-up.sh; SURGE_KEDA=0 skips it)")
    policy = yaml.safe_load(POLICY.read_text())
    policy["scaledObjects"] = {"allow": True, "triggerTypes": ["metrics-api", "cpu"]}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    op = Operator(namespace, tmp_path / "operator.log", env={"SURGE_POLICY_FILE": str(path)})
    op.start()
    yield op
    op.stop()
    _delete_scaled_objects(api_client, namespace)


def _delete_scaled_objects(api: client.ApiClient, ns: str) -> None:
    """Before the namespace goes: KEDA's finalizer needs the KEDA operator, not the GC."""
    custom = client.CustomObjectsApi(api)
    items: Any = custom.list_namespaced_custom_object(*SO, ns, "scaledobjects")
    for item in items["items"]:
        try:
            custom.delete_namespaced_custom_object(
                *SO, ns, "scaledobjects", item["metadata"]["name"]
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def none_left() -> bool:
        left: Any = custom.list_namespaced_custom_object(*SO, ns, "scaledobjects")
        return not left["items"]

    wait_until(none_left, timeout_s=30, what="ScaledObjects deleted")


def make_target(api: client.ApiClient, ns: str, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Deployment alice (opted in) and its ScaledObject alice; returns their specs as served."""
    dep: Any = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "alice", "annotations": {"surge.dev/experiment-target": "true"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "alice"}},
            "template": {
                "metadata": {"labels": {"app": "alice"}},
                "spec": {
                    "nodeSelector": {"surge.dev/pool": "cpu"},
                    "containers": [{"name": "alice", "image": PAUSE}],
                },
            },
        },
    }
    client.AppsV1Api(api).create_namespaced_deployment(ns, dep)
    so = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "alice"},
        "spec": original_scaled_object(url),
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(*SO, ns, "scaledobjects", so)
    # KEDA takes the Deployment over (its HPA exists) before the experiment starts.
    wait_until(
        lambda: _read_hpa(api, ns, "keda-hpa-alice"), timeout_s=30, what="KEDA's HPA of alice"
    )
    return specs(api, ns)


def _read_hpa(api: client.ApiClient, ns: str, name: str) -> Any:
    try:
        return client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def specs(api: client.ApiClient, ns: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment's spec less `replicas` (KEDA's to set) and the ScaledObject's spec."""
    dep = plain(api, [client.AppsV1Api(api).read_namespaced_deployment("alice", ns)])[0]
    so: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
        *SO, ns, "scaledobjects", "alice"
    )
    dep["spec"].pop("replicas", None)
    return dep["spec"], dict(so)["spec"]


def experiment(name: str, alice_url: str, metric_url: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"deployment": "alice", "scaledObject": "alice"},
        "loadTest": {
            "target": {"url": alice_url},
            "scenario": {
                "path": "/respond",
                "body": {"query": "{{q}}"},
                "dataset": {"inline": [{"q": "Where is my order?"}]},
            },
            "load": {
                "model": "constant",
                "stages": [{"duration": "3s", "target": 10}],
                "warmup": "1s",
                "workers": 1,
                "placement": LOCAL_PLACEMENT,
            },
            "thresholds": ["latency.p95 < 2s"],
            "timeouts": {"workersReady": "60s", "runGrace": "60s"},
        },
        "variants": [
            {
                "name": "eager",
                "costPerReplicaHour": 0.12,
                "scaledObject": {
                    "triggers": [_trigger(metric_url, "2")],
                    "maxReplicaCount": 4,
                    "pollingInterval": 2,
                },
            },
            {
                "name": "lazy",
                "costPerReplicaHour": 0.12,
                "scaledObject": {
                    "triggers": [_trigger(metric_url, "10")],
                    "minReplicaCount": 0,
                    "maxReplicaCount": 2,
                    "cooldownPeriod": 5,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
                },
            },
        ],
        "cooldown": "1s",
        "rolloutTimeout": "60s",
    }
    spec.update(extra)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScalingExperiment",
        "metadata": {"name": name},
        "spec": spec,
    }


def observe(
    api: client.ApiClient, ns: str, name: str, op: Operator, *, timeout_s: float, until: Any = None
) -> dict[str, Any]:
    """Poll until the experiment is terminal, or `until(obj)` holds."""

    def probe() -> dict[str, Any] | None:
        obj = get_sx(api, ns, name)
        assert obj is not None
        if (until is not None and until(obj)) or (obj.get("status") or {}).get("phase") in (
            "Succeeded",
            "Failed",
            "Aborted",
        ):
            return obj
        return None

    try:
        got: dict[str, Any] = wait_until(probe, timeout_s=timeout_s, interval_s=0.5, what=name)
    except TimeoutError:
        pytest.fail(f"{name} did not get there in {timeout_s}s\n{op.tail()}")
    return got


def _create(api: client.ApiClient, ns: str, obj: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, SX, obj)


def test_scaled_object_variants_run_and_the_original_comes_back_exactly(
    api_client: client.ApiClient,
    namespace: str,
    keda_operator: Operator,
    alice: str,
    metric: MetricServer,
    pod_runner: PodRunner,
) -> None:
    metric.value = 3  # active (above activation 0): KEDA keeps at least one replica
    original = make_target(api_client, namespace, metric.url)
    assert original[1]["advanced"]["restoreToOriginalReplicaCount"] is True
    _create(api_client, namespace, experiment("keda", alice, metric.url))
    in_force: dict[str, dict[str, Any]] = {}

    def watch(obj: dict[str, Any]) -> bool:
        if variant_under_test(obj):  # the ScaledObject each variant ran under, as served
            variant = obj["status"]["step"]["variant"]
            in_force.setdefault(variant, specs(api_client, namespace)[1])
        return False

    obj = observe(api_client, namespace, "keda", keda_operator, timeout_s=150, until=watch)
    status = obj["status"]
    assert status["phase"] == "Succeeded", (status.get("message"), keda_operator.tail())
    base = original[1]
    assert in_force["eager"] == {
        **base,
        "triggers": [_trigger(metric.url, "2")],
        "maxReplicaCount": 4,
        "pollingInterval": 2,
    }
    assert in_force["lazy"] == {
        **base,
        "triggers": [_trigger(metric.url, "10")],
        "minReplicaCount": 0,
        "maxReplicaCount": 2,
        "cooldownPeriod": 5,
        "advanced": {  # the owner's settings kept beside the variant's behavior
            **base["advanced"],
            "horizontalPodAutoscalerConfig": {
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}
            },
        },
    }
    briefs = [r["scaledObjectInForce"] for r in status["runs"]]
    assert [(b["maxReplicaCount"], b["pollingInterval"]) for b in briefs] == [(4, 2), (2, 15)]
    assert [b["triggers"] for b in briefs] == [["metrics-api"], ["metrics-api"]]
    for run in status["runs"]:  # cost as for any variant: replica-hours × price
        assert run["replicaSeconds"] > 0
        assert run["cost"] == pytest.approx(run["replicaSeconds"] / 3600 * 0.12)
    assert status["recommendation"]
    # The originals are back, whole spec for whole spec.
    assert specs(api_client, namespace) == original


def test_an_edit_of_the_variants_scaled_object_field_stops_and_is_kept(
    api_client: client.ApiClient,
    namespace: str,
    keda_operator: Operator,
    alice: str,
    metric: MetricServer,
    pod_runner: PodRunner,
) -> None:
    metric.value = 3
    original = make_target(api_client, namespace, metric.url)
    sx = experiment("edited", alice, metric.url)
    sx["spec"]["loadTest"]["load"]["stages"] = [{"duration": "60s", "target": 5}]
    _create(api_client, namespace, sx)
    observe(api_client, namespace, "edited", keda_operator, timeout_s=90, until=variant_under_test)
    # The owner raises the bound the variant wrote (4) while the variant runs.
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        *SO, namespace, "scaledobjects", "alice", {"spec": {"maxReplicaCount": 7}}
    )
    obj = observe(api_client, namespace, "edited", keda_operator, timeout_s=60)
    status = obj["status"]
    assert status["phase"] == "Aborted", (status.get("message"), keda_operator.tail())
    completed = next(c for c in status["conditions"] if c["type"] == "Completed")
    assert completed["reason"] == "TargetModified"
    assert "ScaledObject alice spec.maxReplicaCount" in status["message"]
    # Their value kept; the variant's other fields restored; the Deployment untouched.
    dep, so = specs(api_client, namespace)
    assert so == {**original[1], "maxReplicaCount": 7}
    assert dep == original[0]


def test_an_hpa_variant_beside_the_scaled_object_fails_before_writing(
    api_client: client.ApiClient,
    namespace: str,
    keda_operator: Operator,
    alice: str,
    metric: MetricServer,
) -> None:
    metric.value = 3
    original = make_target(api_client, namespace, metric.url)
    sx = experiment("two", alice, metric.url)
    sx["spec"]["targetRef"]["hpa"] = "alice-hpa"
    sx["spec"]["variants"] = [{"name": "hpa", "hpa": {"minReplicas": 1, "maxReplicas": 2}}]
    _create(api_client, namespace, copy.deepcopy(sx))
    obj = observe(api_client, namespace, "two", keda_operator, timeout_s=60)
    status = obj["status"]
    assert status["phase"] == "Failed", (status.get("message"), keda_operator.tail())
    completed = next(c for c in status["conditions"] if c["type"] == "Completed")
    assert completed["reason"] == "ScalerConflict"
    assert "HorizontalPodAutoscaler alice-hpa" in status["message"]
    assert "ScaledObject alice" in status["message"] and "nothing applied" in status["message"]
    assert _read_hpa(api_client, namespace, "alice-hpa") is None
    assert specs(api_client, namespace) == original
    assert get_sx(api_client, namespace, "two") is not None


def test_a_scaled_object_the_experiment_creates_is_gone_afterwards(
    api_client: client.ApiClient,
    namespace: str,
    keda_operator: Operator,
    alice: str,
    metric: MetricServer,
    pod_runner: PodRunner,
) -> None:
    """No ScaledObject at the start: each variant creates one (labelled), its restore deletes
    it, and the next variant waits until KEDA's finalizer has let the previous one go."""
    metric.value = 3
    original = make_target(api_client, namespace, metric.url)
    custom = client.CustomObjectsApi(api_client)
    custom.delete_namespaced_custom_object(*SO, namespace, "scaledobjects", "alice")
    wait_until(lambda: _scaled_object(api_client, namespace) is None, timeout_s=30, what="gone")
    apps = client.AppsV1Api(api_client)
    before = apps.read_namespaced_deployment("alice", namespace).spec.replicas
    made = experiment("made", alice, metric.url)
    # KEDA drops this (Go's zero value) when it takes the object over: no edit by someone else.
    made["spec"]["variants"][1]["scaledObject"]["triggers"][0]["useCachedMetrics"] = False
    _create(api_client, namespace, made)
    labels: dict[str, Any] = {}

    def watch(obj: dict[str, Any]) -> bool:
        if variant_under_test(obj):
            so = _scaled_object(api_client, namespace) or {}
            labels.setdefault(obj["status"]["step"]["variant"], so["metadata"].get("labels"))
        return False

    obj = observe(api_client, namespace, "made", keda_operator, timeout_s=150, until=watch)
    status = obj["status"]
    assert status["phase"] == "Succeeded", (status.get("message"), keda_operator.tail())
    assert set(labels) == {"eager", "lazy"}
    assert all(v and v.get("surge.dev/experiment") == "made" for v in labels.values())
    assert [r["scaledObjectInForce"]["maxReplicaCount"] for r in status["runs"]] == [4, 2]
    wait_until(lambda: _scaled_object(api_client, namespace) is None, timeout_s=30, what="gone")
    dep = plain(
        api_client, [client.AppsV1Api(api_client).read_namespaced_deployment("alice", namespace)]
    )[0]
    dep["spec"].pop("replicas", None)
    assert dep["spec"] == original[0]
    # The owner's replica count is back (KEDA, told by the created object, puts it back on
    # deletion; by default it would leave the count it last set, 0 after "lazy").
    wait_until(
        lambda: apps.read_namespaced_deployment("alice", namespace).spec.replicas == before,
        timeout_s=30,
        what=f"alice back at {before} replicas",
    )


def _scaled_object(api: client.ApiClient, ns: str) -> dict[str, Any] | None:
    try:
        got: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            *SO, ns, "scaledobjects", "alice"
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(got)
