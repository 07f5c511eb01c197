"""Builders are pure: one default input, one expected object, small mutations per case."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from surge.api.loadtest import LoadTestSpec
from surge.operator.loadtest import builders

OWNER: dict[str, Any] = {
    "apiVersion": "surge.dev/v1alpha1",
    "kind": "LoadTest",
    "metadata": {"name": "alice", "namespace": "shop", "uid": "u-1"},
}
SPEC: dict[str, Any] = {
    "target": {"url": "http://alice.shop.svc:8080"},
    "load": {"model": "constant", "stages": [{"duration": "60s", "target": 20}], "workers": 3},
}


def _spec(**changes: Any) -> LoadTestSpec:
    raw = copy.deepcopy(SPEC)
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return LoadTestSpec.model_validate(raw)


def _job(spec: LoadTestSpec) -> dict[str, Any]:
    return builders.worker_job(OWNER, spec, "7", image="img:1", command=("surge", "worker"))


def test_default_job() -> None:
    job = _job(_spec())
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert job["metadata"]["name"] == "alice-run-7"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert job["metadata"]["ownerReferences"][0]["controller"] is True
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    assert job["spec"]["backoffLimitPerIndex"] == 0
    assert "backoffLimit" not in job["spec"]
    # workersReady 180 + 60 s of load + runGrace 120 + 60 margin
    assert job["spec"]["activeDeadlineSeconds"] == 420
    assert job["spec"]["template"]["metadata"]["labels"] == {
        "surge.dev/loadtest": "alice",
        "surge.dev/run": "7",
        "app.kubernetes.io/component": "loadgen",
        "app.kubernetes.io/managed-by": "surge",
    }
    assert c["command"] == ["surge", "worker"]
    assert c["args"] == [
        "--configmap",
        "shop/alice-run-7",
        "--termination-log",
        "/dev/termination-log",
    ]
    assert "ports" not in c
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "alice-surge-worker"
    assert "nodeSelector" not in pod and "affinity" not in pod and "tolerations" not in pod
    assert "ttlSecondsAfterFinished" not in job["spec"]


def test_pod_meets_restricted_standard() -> None:
    pod = _job(_spec())["spec"]["template"]["spec"]
    c = pod["containers"][0]["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["allowPrivilegeEscalation"] is False
    assert c["capabilities"] == {"drop": ["ALL"]}
    assert all("hostPath" not in v for v in pod["volumes"])


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        (
            {"load__placement": {"nodeSelector": {"surge.dev/pool": "cpu"}}},
            lambda p: p["nodeSelector"] == {"surge.dev/pool": "cpu"},
        ),
        (
            {"load__placement": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}},
            lambda p: p["tolerations"][0]["key"] == "nvidia.com/gpu",
        ),
        (
            {"load__placement": {"separate": True}},
            lambda p: (
                p["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                    0
                ]["labelSelector"]["matchLabels"]
                == {"surge.dev/loadtest": "alice", "surge.dev/run": "7"}
            ),
        ),
        (
            {"load__placement": {"resources": {"limits": {"cpu": "1"}}}},
            # The policy's memory limit (and request) stay where the spec sets none.
            lambda p: (
                p["containers"][0]["resources"]
                == {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"memory": "256Mi"}}
            ),
        ),
        (
            {"load__placement": {"priorityClassName": "low"}},
            lambda p: p["priorityClassName"] == "low",
        ),
        (
            {
                "target__headers": [
                    {
                        "name": "Authorization",
                        "valueFrom": {"secretKeyRef": {"name": "tok", "key": "k"}},
                    }
                ]
            },
            lambda p: (
                {
                    "name": "SURGE_HEADER_0",
                    "valueFrom": {"secretKeyRef": {"name": "tok", "key": "k"}},
                }
                in p["containers"][0]["env"]
            ),
        ),
    ],
)
def test_job_mutations(changes: dict[str, Any], check: Any) -> None:
    assert check(_job(_spec(**changes))["spec"]["template"]["spec"])


def test_metrics_port_is_served_and_declared() -> None:
    spec = _spec()
    job = builders.worker_job(
        OWNER, spec, "7", image="i", command=("surge", "worker"), metrics_port=9464
    )
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][-2:] == ["--metrics-port", "9464"]
    assert c["ports"] == [{"name": "metrics", "containerPort": 9464}]


def test_ttl_goes_on_the_job() -> None:
    job = _job(_spec(cleanup={"ttlSecondsAfterFinished": 600}))
    assert job["spec"]["ttlSecondsAfterFinished"] == 600


def test_plain_headers_stay_out_of_the_pod() -> None:
    job = _job(_spec(target__headers=[{"name": "X-Team", "value": "a"}]))
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not any(e["name"].startswith("SURGE_HEADER_") for e in env)


def test_rbac_reads_only_the_run_configmap() -> None:
    sa, role, binding = builders.worker_rbac(OWNER, "7")
    assert sa["kind"] == "ServiceAccount" and sa["metadata"]["name"] == "alice-surge-worker"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get"],
            "resourceNames": ["alice-run-7"],
        }
    ]
    assert binding["subjects"][0]["name"] == "alice-surge-worker"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_configmap_holds_the_plan() -> None:
    cm = builders.plan_configmap(OWNER, "7", '{"v":1}')
    assert cm["metadata"]["name"] == "alice-run-7"
    assert cm["data"] == {"plan.json": '{"v":1}'}
    assert cm["metadata"]["labels"]["surge.dev/run"] == "7"


def test_long_names_stay_valid_and_distinct() -> None:
    a = builders.run_name("x" * 80, "1")
    b = builders.run_name("x" * 79 + "y", "1")
    assert len(a) <= 52 and len(b) <= 52 and a != b


def test_selector() -> None:
    assert builders.selector("alice") == "surge.dev/loadtest=alice"
    assert builders.selector("alice", "2") == "surge.dev/loadtest=alice,surge.dev/run=2"


@pytest.mark.parametrize(
    ("load", "processes"),
    [
        ({}, "1"),  # the policy's default request, 250m: one process
        ({"placement": {"resources": {"limits": {"cpu": "4"}, "requests": {"cpu": "1"}}}}, "4"),
        ({"placement": {"resources": {"requests": {"cpu": "2500m"}}}}, "2"),
        ({"placement": {"resources": {"limits": {"cpu": "4"}}}, "processesPerWorker": 3}, "3"),
    ],
)
def test_worker_processes_follow_the_cpu(load: dict[str, Any], processes: str) -> None:
    """SURGE_PROCESSES: the spec's processesPerWorker, else one per whole core of the
    worker's CPU limit, else of its request."""
    spec = _spec(load={**SPEC["load"], **load})
    env = _job(spec)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "SURGE_PROCESSES", "value": processes} in env


def test_worker_processes_unknown_without_cpu() -> None:
    """No CPU in the resources: the pod counts the cores it may use (no env var)."""
    from surge.api.policy import ClusterPolicy

    policy = ClusterPolicy.model_validate({"workerResources": {"requests": {"memory": "1Gi"}}})
    job = builders.worker_job(
        OWNER, _spec(), "7", image="i", command=("surge", "worker"), policy=policy
    )
    names = [e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert "SURGE_PROCESSES" not in names
