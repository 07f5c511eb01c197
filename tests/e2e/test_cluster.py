"""The local control plane itself: CRDs, node pools, the HPA on simulated CPU, the pod runner."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support import cluster as support
from tests.support.podrunner import PodRunner

pytestmark = pytest.mark.cluster

PAUSE = "registry.k8s.io/pause:3.10"  # never pulled: kwok runs no containers


def _deployment(name: str, *, replicas: int = 1, **pod: Any) -> client.V1Deployment:
    annotations = pod.pop("annotations", {})
    body = {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": PAUSE}], **pod},
            },
        },
    }
    dep = client.V1Deployment.from_dict(body)
    assert dep is not None
    return dep


def _pods(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"app={app}").items)


def test_crd_applied_and_established(api_client: client.ApiClient, crds: list[str]) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    for name in crds:  # the repo's crds/*.yaml, applied by the session fixture
        assert support.crd_established(ext, name)
    # A tiny CRD of our own, so this test means something while crds/ is still empty.
    tiny = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.e2e.surge.dev"},
        "spec": {
            "group": "e2e.surge.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    support.apply_crd(ext, tiny)
    support.wait_until(
        lambda: support.crd_established(ext, "widgets.e2e.surge.dev"),
        timeout_s=30,
        what="CRD widgets.e2e.surge.dev Established",
    )


def test_node_pools(api_client: client.ApiClient) -> None:
    nodes = client.CoreV1Api(api_client).list_node().items
    pools: dict[str, list[str]] = {}
    for node in nodes:
        assert node.metadata is not None
        assert node.status is not None
        pool = (node.metadata.labels or {}).get("surge.dev/pool", "")
        pools.setdefault(pool, []).append(str(node.metadata.name))
        ips = [a.address for a in node.status.addresses or [] if a.type == "InternalIP"]
        assert ips == ["127.0.0.1"], node.metadata.name
        ready = [c.status for c in node.status.conditions or [] if c.type == "Ready"]
        assert ready == ["True"], node.metadata.name
    assert sorted(pools["cpu"]) == ["cpu-0", "cpu-1", "cpu-2"]
    assert sorted(pools["gpu"]) == ["gpu-0", "gpu-1"]
    assert pools["local"] == ["local-0"]


def test_gpu_pool_only_with_toleration(api_client: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    gpu: dict[str, Any] = {"nodeSelector": {"surge.dev/pool": "gpu"}}
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    apps.create_namespaced_deployment(namespace, _deployment("intolerant", **gpu))
    apps.create_namespaced_deployment(
        namespace, _deployment("tolerant", replicas=2, tolerations=[toleration], **gpu)
    )

    def tolerant_running() -> list[client.V1Pod] | None:
        pods = _pods(core, namespace, "tolerant")
        running = [p for p in pods if p.status is not None and p.status.phase == "Running"]
        return running if len(running) == 2 else None

    for pod in support.wait_until(tolerant_running, timeout_s=60, what="tolerant pods Running"):
        assert pod.spec is not None
        assert str(pod.spec.node_name).startswith("gpu-")

    def intolerant_unschedulable() -> bool:
        pods = _pods(core, namespace, "intolerant")
        return len(pods) == 1 and any(
            c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
            for c in (pods[0].status.conditions if pods[0].status else None) or []
        )

    support.wait_until(intolerant_unschedulable, timeout_s=30, what="intolerant pod Unschedulable")
    pod = _pods(core, namespace, "intolerant")[0]
    assert pod.spec is not None
    assert pod.spec.node_name is None


@pytest.mark.timeout(300)
def test_hpa_scales_up_on_simulated_cpu(
    api_client: client.ApiClient, namespace: str, cluster: support.Cluster
) -> None:
    apps = client.AppsV1Api(api_client)
    # kwok reports 800m of CPU for each pod (annotation) against a 500m request: 160%.
    apps.create_namespaced_deployment(
        namespace,
        _deployment(
            "busy",
            annotations={"kwok.x-k8s.io/usage-cpu": "800m"},
            nodeSelector={"surge.dev/pool": "cpu"},
            containers=[
                {"name": "app", "image": PAUSE, "resources": {"requests": {"cpu": "500m"}}}
            ],
        ),
    )
    hpa = client.V2HorizontalPodAutoscaler.from_dict(
        {
            "metadata": {"name": "busy"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "busy"},
                "minReplicas": 1,
                "maxReplicas": 4,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    }
                ],
            },
        }
    )
    assert hpa is not None
    client.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler(namespace, hpa)

    def scaled_up() -> int | None:
        dep = apps.read_namespaced_deployment("busy", namespace)
        replicas = dep.spec.replicas if dep.spec else None
        return replicas if replicas is not None and replicas > 1 else None

    replicas = support.wait_until(scaled_up, timeout_s=240, interval_s=2, what="HPA scale-up")
    assert replicas > 1

    ksm_url = cluster.ksm_metrics_url
    if ksm_url:  # the local cluster: kube-state-metrics sees the same

        def ksm_sees_hpa() -> bool:
            with urllib.request.urlopen(ksm_url, timeout=5) as resp:
                text = resp.read().decode()
            return (
                f'kube_horizontalpodautoscaler_status_current_replicas{{namespace="{namespace}"'
                in text
                and f'kube_deployment_status_replicas{{namespace="{namespace}"' in text
            )

        support.wait_until(ksm_sees_hpa, timeout_s=30, what="kube-state-metrics series")


def test_pod_runner_runs_indexed_job(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    code = (
        "import os, sys; "
        "open(sys.argv[1], 'w').write('index=' + os.environ['JOB_COMPLETION_INDEX'] "
        "+ ' pod=' + os.environ['POD_NAME'])"
    )
    job = client.V1Job.from_dict(
        {
            "metadata": {"name": "local"},
            "spec": {
                "completions": 2,
                "parallelism": 2,
                "completionMode": "Indexed",
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "nodeSelector": {"kubernetes.io/hostname": "local-0"},
                        "tolerations": [{"key": "surge.dev/local", "operator": "Exists"}],
                        "containers": [
                            {
                                "name": "main",
                                "image": "python:3.11",
                                "command": ["python", "-c", code, "/dev/termination-log"],
                                "env": [
                                    {
                                        "name": "POD_NAME",
                                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                    },
                                ],
                            }
                        ],
                    }
                },
            },
        }
    )
    assert job is not None
    batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)
    batch.create_namespaced_job(namespace, job)

    def complete() -> bool:
        status = batch.read_namespaced_job("local", namespace).status
        conditions = (status.conditions if status else None) or []
        failed = [c for c in conditions if c.type == "Failed" and c.status == "True"]
        assert not failed, failed[0].message
        return any(c.type == "Complete" and c.status == "True" for c in conditions)

    support.wait_until(complete, timeout_s=60, what="Job Complete")
    messages = []
    for pod in core.list_namespaced_pod(namespace, label_selector="job-name=local").items:
        assert pod.status is not None
        assert pod.metadata is not None
        assert pod.status.phase == "Succeeded"
        term = pod.status.container_statuses[0].state.terminated  # type: ignore[index,union-attr]
        assert term is not None
        assert term.exit_code == 0
        messages.append(term.message)
        assert term.message == (
            f"index={pod.metadata.annotations['batch.kubernetes.io/job-completion-index']}"  # type: ignore[index]
            f" pod={pod.metadata.name}"
        )
    assert sorted(m[:7] for m in messages if m) == ["index=0", "index=1"]


def test_pod_runner_reports_failure(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    pod = client.V1Pod.from_dict(
        {
            "metadata": {"name": "fails"},
            "spec": {
                "nodeName": "local-0",
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": "python:3.11",
                        "command": ["python", "-c", "print('boom'); raise SystemExit(3)"],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    }
                ],
            },
        }
    )
    assert pod is not None
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, pod)

    def failed() -> client.V1Pod | None:
        try:
            got = core.read_namespaced_pod("fails", namespace)
        except ApiException:
            return None
        return got if got.status is not None and got.status.phase == "Failed" else None

    got = support.wait_until(failed, timeout_s=30, what="pod Failed")
    term = got.status.container_statuses[0].state.terminated  # type: ignore[union-attr,index]
    assert term is not None
    assert term.exit_code == 3
    assert term.message is not None
    assert "boom" in term.message
