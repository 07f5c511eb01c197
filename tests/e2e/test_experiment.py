"""ScalingExperiment on the real control plane with KWOK node pools.

The target Deployment's pods are simulated by KWOK on the "cpu" and "gpu" pools; the
load goes to a real local Alice (workers on local-0). An observer polls the cluster
while each variant is under test, independently of what the operator reports.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from surge.results.experiment_report import experiment_plot_specs, render_experiment
from tests.e2e.operator_support import (
    GROUP,
    LOCAL_PLACEMENT,
    VERSION,
    Operator,
    alice,
    operator,
    plain,
)
from tests.support.cluster import wait_until
from tests.support.podrunner import PodRunner

__all__ = ["alice", "operator"]

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

SX = "scalingexperiments"
PRICES = {"cpu": 0.12, "gpu": 2.48}


def make_target(api: client.ApiClient, ns: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Deployment alice (1 replica, cpu pool, opted in to experiments) and its HPA; returns
    their specs as served."""
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
                    "containers": [
                        {
                            "name": "alice",
                            "image": "alice:1",
                            "resources": {"requests": {"cpu": "100m"}},
                            "env": [{"name": "ALICE_CPU_MS", "value": "20"}],
                        }
                    ],
                },
            },
        },
    }
    hpa: Any = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "alice"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "alice"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ],
        },
    }
    apps, autoscaling = client.AppsV1Api(api), client.AutoscalingV2Api(api)
    apps.create_namespaced_deployment(ns, dep)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, hpa)

    def available() -> bool:
        d = plain(api, [apps.read_namespaced_deployment("alice", ns)])[0]
        return int((d.get("status") or {}).get("availableReplicas") or 0) >= 1

    wait_until(available, timeout_s=60, what="alice available")
    return specs(api, ns)


def specs(api: client.ApiClient, ns: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment's spec less `replicas` (the HPA's to set: a variant's HPA may have
    scaled it, and the restored HPA scales it back in its own time) and the HPA's spec."""
    dep = plain(api, [client.AppsV1Api(api).read_namespaced_deployment("alice", ns)])[0]
    hpa = plain(
        api, [client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("alice", ns)]
    )[0]
    dep["spec"].pop("replicas", None)
    return dep["spec"], hpa["spec"]


def experiment(name: str, url: str, *, duration: str = "3s", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"deployment": "alice", "hpa": "alice"},
        "loadTest": {
            "target": {"url": url},
            "scenario": {
                "path": "/respond",
                "body": {"query": "{{q}}"},
                "dataset": {"inline": [{"q": "Where is my order?"}]},
            },
            "load": {
                "model": "constant",
                "stages": [{"duration": duration, "target": 10}],
                "warmup": "1s",
                "workers": 1,
                "placement": LOCAL_PLACEMENT,
            },
            "thresholds": ["latency.p95 < 2s"],
            "timeouts": {"workersReady": "60s", "runGrace": "60s"},
        },
        "variants": [
            {
                "name": "cpu",
                "nodeSelector": {"surge.dev/pool": "cpu"},
                "hpa": {"minReplicas": 2, "maxReplicas": 4},
            },
            {
                "name": "gpu",
                "nodeSelector": {"surge.dev/pool": "gpu"},
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                ],
                "resources": {"limits": {"nvidia.com/gpu": 1}},
                "hpa": {"minReplicas": 1, "maxReplicas": 2},
            },
        ],
        "cost": {"perPool": PRICES},
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


def get_sx(api: client.ApiClient, ns: str, name: str) -> dict[str, Any] | None:
    try:
        obj: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, ns, SX, name
        )
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(obj)


def observe(
    api: client.ApiClient, ns: str, name: str, op: Operator, *, timeout_s: float, until: Any = None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Poll until the experiment is terminal (or `until(obj)`), recording for each variant
    under test the pools its pods ran in and the HPA spec in force."""
    seen: dict[str, dict[str, Any]] = {}
    core, autoscaling = client.CoreV1Api(api), client.AutoscalingV2Api(api)
    nodes = {
        n["metadata"]["name"]: n["metadata"]["labels"].get("surge.dev/pool")
        for n in plain(api, core.list_node().items)
    }
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        obj = get_sx(api, ns, name)
        assert obj is not None
        status = obj.get("status") or {}
        if until is not None and until(obj):
            return obj, seen
        if status.get("phase") in ("Succeeded", "Failed", "Aborted"):
            return obj, seen
        step = status.get("step") or {}
        if step.get("stage") == "Test":
            running = [
                p
                for p in plain(api, core.list_namespaced_pod(ns, label_selector="app=alice").items)
                if (p.get("status") or {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")
            ]
            hpa = plain(api, [autoscaling.read_namespaced_horizontal_pod_autoscaler("alice", ns)])[
                0
            ]
            entry = seen.setdefault(step["variant"], {"pools": set(), "hpa": []})
            entry["pools"] |= {nodes.get(p["spec"].get("nodeName")) for p in running}
            entry["hpa"].append(hpa["spec"])
        time.sleep(0.5)
    pytest.fail(f"{name} did not finish in {timeout_s}s\n{op.tail()}")


def variant_under_test(obj: dict[str, Any]) -> bool:
    return ((obj.get("status") or {}).get("step") or {}).get("stage") == "Test"


def test_variants_land_in_their_pools_and_originals_come_back(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    original = make_target(api_client, namespace)
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, experiment("pools", alice)
    )
    obj, seen = observe(api_client, namespace, "pools", operator, timeout_s=240)
    status = obj["status"]
    assert status["phase"] == "Succeeded", (status.get("message"), operator.tail())
    # Each variant ran in its own pool, under its own HPA spec.
    assert seen["cpu"]["pools"] == {"cpu"}
    assert seen["gpu"]["pools"] == {"gpu"}
    assert {(h["minReplicas"], h["maxReplicas"]) for h in seen["cpu"]["hpa"]} == {(2, 4)}
    assert {(h["minReplicas"], h["maxReplicas"]) for h in seen["gpu"]["hpa"]} == {(1, 2)}
    assert [r["hpaInForce"]["maxReplicas"] for r in status["runs"]] == [4, 2]
    # The originals are back, spec for spec.
    assert specs(api_client, namespace) == original
    # The comparison table is filled in, and the cost arithmetic holds.
    table = {row["name"]: row for row in status["comparison"]}
    assert set(table) == {"cpu", "gpu"}
    for run in status["runs"]:
        price = PRICES[run["name"]]
        assert run["pricePerReplicaHour"] == price
        assert run["replicaSeconds"] > 0
        assert run["cost"] == pytest.approx(run["replicaSeconds"] / 3600 * price)
        per_1k = run["cost"] / (run["requests"] / 1000)
        if run["replicaSource"] == "operator":
            # The operator's samples span more than the measured window the requests are
            # counted in: the mean replicas are priced over that window (docs/experiments.md).
            child: Any = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
                GROUP, VERSION, namespace, "loadtests", run["loadTest"]
            )
            window_s = child["status"]["results"]["window"]["measuredSeconds"]
            per_1k = run["replicasMean"] * window_s / 3600 * price / (run["requests"] / 1000)
        assert run["costPer1kRequests"] == pytest.approx(per_1k, rel=1e-6)
        assert run["achievedRps"] > 0
    assert status["recommendation"]
    assert status["recommendation"].startswith(status["comparison"][0]["name"])
    # The report shows both plots, from this very object.
    plots = {p.name: p for p in experiment_plot_specs(status)}
    assert plots["replicas"].labels == ["cpu r0", "gpu r0"]
    assert {ln.label for ln in plots["p95-cost"].lines} == {"cpu", "gpu"}
    page = render_experiment(obj, "html")
    assert page.count('src="data:image/png;base64,') == 2


def test_unschedulable_variant_times_out_and_restores(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    original = make_target(api_client, namespace)
    sx = experiment(
        "tpu",
        alice,
        rolloutTimeout="6s",
        variants=[{"name": "tpu", "nodeSelector": {"surge.dev/pool": "tpu"}}],
    )
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, sx
    )
    obj, _ = observe(api_client, namespace, "tpu", operator, timeout_s=90)
    (run,) = obj["status"]["runs"]
    assert run["reason"] == "RolloutTimeout"
    assert run["pendingSeconds"] > 0
    assert "node" in run["message"]
    assert obj["status"]["recommendation"] == "No variant met the SLO; none is recommended."
    assert specs(api_client, namespace) == original


def test_delete_mid_experiment_restores(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    original = make_target(api_client, namespace)
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, experiment("gone", alice, duration="60s")
    )

    observe(api_client, namespace, "gone", operator, timeout_s=90, until=variant_under_test)
    assert specs(api_client, namespace) != original  # the variant is in force
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, "gone"
    )
    wait_until(
        lambda: get_sx(api_client, namespace, "gone") is None, timeout_s=60, what="experiment gone"
    )
    assert specs(api_client, namespace) == original


def test_operator_killed_mid_experiment_still_restores(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    original = make_target(api_client, namespace)
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, experiment("killed", alice)
    )

    observe(api_client, namespace, "killed", operator, timeout_s=90, until=variant_under_test)
    operator.kill()
    time.sleep(2)
    operator.start()
    obj, _ = observe(api_client, namespace, "killed", operator, timeout_s=240)
    assert obj["status"]["phase"] == "Succeeded", obj["status"].get("message")
    assert [r["name"] for r in obj["status"]["runs"]] == ["cpu", "gpu"]
    children: Any = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "loadtests"
    )
    assert len(children["items"]) == 2
    assert specs(api_client, namespace) == original


def test_dry_run_shows_the_patches_and_changes_nothing(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
) -> None:
    original = make_target(api_client, namespace)
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, experiment("dry", alice, dryRun=True)
    )
    obj, _ = observe(api_client, namespace, "dry", operator, timeout_s=60)
    status = obj["status"]
    assert status["phase"] == "Succeeded"
    plan = {p["variant"]: p for p in status["plan"]}
    assert plan["gpu"]["deployment"]["template"]["spec"]["nodeSelector"] == {
        "surge.dev/pool": "gpu"
    }
    assert plan["gpu"]["deployment"]["template"]["spec"]["containers"][0]["resources"][
        "limits"
    ] == {"nvidia.com/gpu": "1"}
    assert (plan["cpu"]["hpa"]["minReplicas"], plan["cpu"]["hpa"]["maxReplicas"]) == (2, 4)
    assert specs(api_client, namespace) == original
    children: Any = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "loadtests"
    )
    assert children["items"] == []


def test_budget_spent_aborts_and_restores(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    original = make_target(api_client, namespace)
    # 0.0001 replica-hours = 0.36 replica-seconds: the first run spends it.
    sx = experiment("budget", alice, budget={"maxReplicaHours": 0.0001})
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, sx
    )
    obj, _ = observe(api_client, namespace, "budget", operator, timeout_s=120)
    status = obj["status"]
    assert status["phase"] == "Aborted"
    assert "budget" in status["message"]
    assert [r["name"] for r in status["runs"]] == ["cpu"]  # gpu never ran
    assert status["runs"][0]["replicaHours"] > 0.0001
    assert specs(api_client, namespace) == original


def test_experiment_timeout_fails_and_restores(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    original = make_target(api_client, namespace)
    sx = experiment("late", alice, duration="60s", timeout="15s")
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, SX, sx
    )
    obj, _ = observe(api_client, namespace, "late", operator, timeout_s=90)
    assert obj["status"]["phase"] == "Failed"
    assert "spec.timeout" in obj["status"]["message"]
    assert specs(api_client, namespace) == original

    # The load under way when time ran out was stopped, not left running.
    def child_aborted() -> bool:
        child: Any = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "loadtests", "late-cpu-r0"
        )
        return bool((child.get("status") or {}).get("phase") == "Aborted")

    wait_until(child_aborted, timeout_s=30, what="child LoadTest aborted")
