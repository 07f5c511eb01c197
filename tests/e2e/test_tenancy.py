"""Tenant guardrails on the real control plane: a LoadTest is not a back door (#16).

A tenant bound only to the chart's `edit` user role in one namespace (a ServiceAccount with
a TokenRequest token, RBAC on) tries each attack of docs/security.md. The cluster admin's
policy is rendered by the chart (its ValidatingAdmissionPolicy and user roles, applied for
real) and given to the operator as its policy file. Each attack is refused at apply, or ends
Failed with reason PolicyViolation naming the field and the rule, and nothing is created for
it; the same tenant's valid LoadTest still Succeeds.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from surge.agent import start_agent_process, stop_agent_process
from surge.operator.experiment.runs import snapshot_name
from surge.operator.loadtest import builders
from tests.chart.rendering import render
from tests.e2e.operator_support import (
    GROUP,
    LOCAL_PLACEMENT,
    PLURAL,
    VERSION,
    Operator,
    condition,
    get,
    loadtest,
    plain,
    wait_phase,
)
from tests.e2e.test_chart import kubectl, sa_client, sa_token
from tests.e2e.test_experiment import make_target
from tests.support import cluster as support
from tests.support.cluster import wait_until
from tests.support.podrunner import PodRunner

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

ALICE_HOST = "127.0.0.2"  # the only address the policy allows; `localhost` is 127.0.0.1
POLICY: dict[str, Any] = {
    "targets": {"hosts": ["localhost"], "cidrs": [f"{ALICE_HOST}/32"]},
    "placement": {
        "nodeSelector": LOCAL_PLACEMENT["nodeSelector"],
        "tolerations": LOCAL_PLACEMENT["tolerations"],
    },
    "caps": {"maxRate": 50, "maxDuration": "30s", "maxConcurrentRunsPerNamespace": 1},
    "workerResources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {}},
}
CLUSTER_KINDS = ("ClusterRole", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
SX = "scalingexperiments"


@pytest.fixture
def admin_objects(namespace: str) -> Iterator[list[dict[str, Any]]]:
    """The chart's cluster-scoped tenancy objects for this policy: user roles and the
    admission policy bound to `namespace` (the release namespace), deleted afterwards."""
    docs = [
        d for d in render({"policy": POLICY}, namespace=namespace) if d["kind"] in CLUSTER_KINDS
    ]
    docs = [d for d in docs if d["kind"] != "ClusterRole" or "aggregate-to-edit" in str(d)]
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    yield docs
    kubectl("delete", "--ignore-not-found", "-f", "-", stdin=yaml.safe_dump_all(docs))


@pytest.fixture
def tenant(
    api_client: client.ApiClient,
    cluster: support.Cluster,
    namespace: str,
    admin_objects: list[dict[str, Any]],
) -> client.ApiClient:
    """A ServiceAccount bound only to the chart's edit role, in `namespace`."""
    (edit,) = [
        d["metadata"]["name"]
        for d in admin_objects
        if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-edit")
    ]
    core: Any = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "tenant"}})
    rbac: Any = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "tenant-surge-edit"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": edit,
            },
            "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": namespace}],
        },
    )
    return sa_client(cluster.kubeconfig, sa_token(api_client, namespace, "tenant"))


@pytest.fixture
def policed_operator(namespace: str, tmp_path: Path) -> Iterator[Operator]:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(POLICY))
    op = Operator(namespace, tmp_path / "operator.log", env={"SURGE_POLICY_FILE": str(path)})
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def alice_at() -> Iterator[str]:
    proc, url = start_agent_process(
        ["--host", ALICE_HOST, "--latency", "fixed:20ms"], stderr=subprocess.DEVNULL
    )
    assert ALICE_HOST in url, url
    yield url
    stop_agent_process(proc)


def _create(api: client.ApiClient, ns: str, obj: dict[str, Any], plural: str = PLURAL) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, plural, obj)


def _lt(name: str, url: str, **over: Any) -> dict[str, Any]:
    """A LoadTest the policy admits, changed by `over` (dotted paths under spec)."""
    obj = loadtest(name, url, load={"workers": 1, "stages": [{"duration": "4s", "target": 10}]})
    for path, value in over.items():
        node = obj["spec"]
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return obj


def _nothing_created(api: client.ApiClient, ns: str, name: str) -> None:
    sel = builders.selector(name)
    core: Any = client.CoreV1Api(api)
    assert client.BatchV1Api(api).list_namespaced_job(ns, label_selector=sel).items == []
    assert core.list_namespaced_pod(ns, label_selector=sel).items == []
    assert core.list_namespaced_service_account(ns, label_selector=sel).items == []
    # The run's plan ConfigMap: absent, or (the forged case) the attacker's, untouched.
    plan = builders.run_name(name, "1")
    cms = {c.metadata.name: c for c in core.list_namespaced_config_map(ns).items}
    if plan in cms:
        assert cms[plan].metadata.labels is None, "Surge wrote into a ConfigMap it did not make"


def _violation(
    api: client.ApiClient, ns: str, name: str, op: Operator, *needles: str
) -> dict[str, Any]:
    obj = wait_phase(api, ns, name, {"Failed", "Succeeded"}, op, timeout_s=60)
    done = condition(obj, "Completed")
    assert (obj["status"]["phase"], done["reason"]) == ("Failed", "PolicyViolation"), obj["status"]
    for needle in needles:
        assert needle in obj["status"]["message"], (needle, obj["status"]["message"])
    return obj


def _refused_at_apply(
    tenant: client.ApiClient, ns: str, obj: dict[str, Any], *needles: str
) -> None:
    with pytest.raises(ApiException) as info:
        _create(tenant, ns, obj)
    assert info.value.status in (400, 403, 422), info.value
    body = json.loads(info.value.body or "{}")["message"]
    for needle in needles:
        assert needle in body, (needle, body)


def test_each_attack_is_refused_and_the_valid_loadtest_succeeds(
    api_client: client.ApiClient,
    namespace: str,
    tenant: client.ApiClient,
    policed_operator: Operator,
    alice_at: str,
    pod_runner: PodRunner,
) -> None:
    ns, op = namespace, policed_operator
    core: Any = client.CoreV1Api(api_client)
    port = alice_at.rsplit(":", 1)[1]

    # -- refused at apply by the ValidatingAdmissionPolicy --------------------------------
    def policy_in_effect() -> bool:
        try:
            _create(tenant, ns, _lt("probe", alice_at, image="evil.example/miner:1"))
        except ApiException as exc:
            # The policy's refusal, not RBAC's 403 while the tenant's RoleBinding propagates.
            return exc.status in (400, 403, 422) and "spec.image" in (exc.body or "")
        client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, "probe"
        )
        return False

    wait_until(policy_in_effect, timeout_s=30, what="the admission policy in effect")
    _refused_at_apply(tenant, ns, _lt("img", alice_at, image="evil.example/miner:1"), "spec.image")
    gpu = copy.deepcopy(LOCAL_PLACEMENT)
    gpu["nodeSelector"] = {"surge.dev/pool": "gpu"}
    gpu["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    _refused_at_apply(tenant, ns, _lt("gpu", alice_at, **{"load.placement": gpu}), "nodeSelector")
    prio = {**LOCAL_PLACEMENT, "priorityClassName": "system-cluster-critical"}
    _refused_at_apply(
        tenant, ns, _lt("prio", alice_at, **{"load.placement": prio}), "priorityClassName"
    )
    fast = _lt("fast", alice_at, **{"load.stages": [{"duration": "4s", "target": 500}]})
    _refused_at_apply(tenant, ns, fast, "policy.caps.maxRate")

    # -- refused by the operator: PolicyViolation, nothing created -------------------------
    core.create_namespaced_secret(
        ns, {"metadata": {"name": "db"}, "stringData": {"token": "s3cr3t"}}
    )
    core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": "prom", "labels": {"surge.dev/usable": "true"}},
            "stringData": {"token": "t"},
        },
    )
    header = {
        "name": "Authorization",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "token"}},
    }
    prom_auth = {"bearerTokenSecretRef": {"name": "prom", "key": "token"}}
    attacks: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
        ("secret", {"target.headers": [header]}, ("headers[0]", "surge.dev/usable")),
        (
            "prom",
            {"prometheus": {"url": "http://127.0.0.1:9/", "auth": prom_auth}},
            ("spec.prometheus.url", "policy.prometheusUrls"),
        ),
        ("byname", {"target.url": "http://unlisted.example:8080"}, ("policy.targets.hosts",)),
        ("byaddr", {"target.url": f"http://localhost:{port}"}, ("127.0.0.1", "targets.cidrs")),
        (
            "probe-url",
            {"target.readiness": {"http": {"url": f"http://127.0.0.1:{port}/readyz"}}},
            ("spec.target.readiness.http.url", "targets.cidrs"),
        ),
        (
            "long",
            {"load.stages": [{"duration": "2m", "target": 10}]},
            ("policy.caps.maxDuration",),
        ),
    ]
    for name, over, _ in attacks:
        _create(tenant, ns, _lt(name, alice_at, **over))
    for name, _, needles in attacks:
        _violation(api_client, ns, name, op, *needles)
        _nothing_created(api_client, ns, name)

    # -- a plan ConfigMap pre-created with a forged owner is never run ---------------------
    _create(tenant, ns, _lt("forged", alice_at, **{"target.headers": [header]}))
    first = _violation(api_client, ns, "forged", op, "surge.dev/usable")
    evil = json.dumps({"spec": {"target": {"url": "http://10.96.0.1/"}}})
    core.create_namespaced_config_map(
        ns,
        {
            "metadata": {
                "name": builders.run_name("forged", "1"),
                "ownerReferences": [builders.owner_reference(first)],
            },
            "data": {builders.PLAN_KEY: evil},
        },
    )
    client.CustomObjectsApi(tenant).patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "forged", {"spec": {"target": {"headers": []}}}
    )

    def readmitted() -> dict[str, Any] | None:
        obj = get(api_client, ns, "forged")
        return obj if obj["status"].get("runGeneration") == obj["metadata"]["generation"] else None

    obj = wait_until(readmitted, timeout_s=60, what="forged readmitted")
    assert (
        obj["status"]["phase"] == "Failed" and "policy.verifyPlanHash" in obj["status"]["message"]
    )
    _nothing_created(api_client, ns, "forged")

    # -- the valid LoadTest, one more run than allowed, experiments ------------------------
    make_target(api_client, ns)  # Deployment alice, opted in, and its HPA (admin's)
    plain_dep = copy.deepcopy(
        plain(api_client, [client.AppsV1Api(api_client).read_namespaced_deployment("alice", ns)])[0]
    )
    # Long enough (cap 30 s) to still hold the target while "second", "optout" and "snap"
    # below each wait for an operator reconcile and a 0.5 s poll (8 s left ~4 s of margin).
    valid = _lt("valid", alice_at, **{"load.stages": [{"duration": "20s", "target": 10}]})
    valid["spec"]["target"]["deploymentRef"] = {"name": "alice"}
    _create(tenant, ns, valid)
    wait_phase(api_client, ns, "valid", {"Running"}, op, timeout_s=90)
    _create(tenant, ns, _lt("second", alice_at))
    _violation(api_client, ns, "second", op, "policy.caps.maxConcurrentRunsPerNamespace")
    _nothing_created(api_client, ns, "second")

    # An experiment on a Deployment that did not opt in.
    other = copy.deepcopy(plain_dep)
    other["metadata"] = {"name": "unlisted"}
    other.pop("status", None)
    other["spec"]["template"]["metadata"]["labels"] = {"app": "unlisted"}
    other["spec"]["selector"] = {"matchLabels": {"app": "unlisted"}}
    apps: Any = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(ns, other)
    experiment = _experiment("optout", "unlisted", alice_at)
    _create(tenant, ns, experiment, SX)
    sx = _wait_sx(api_client, ns, "optout")
    assert (
        sx["status"]["phase"] == "Failed"
        and "surge.dev/experiment-target" in sx["status"]["message"]
    )
    served = plain(
        api_client, [client.AppsV1Api(api_client).read_namespaced_deployment("unlisted", ns)]
    )[0]
    assert served["metadata"]["generation"] == 1  # nothing written to it

    # An experiment on alice waits for the valid run's Lease; a snapshot pre-created with a
    # forged owner meanwhile is refused when it starts.
    _create(tenant, ns, _experiment("snap", "alice", alice_at), SX)
    queued = _wait_sx(
        api_client, ns, "snap", lambda o: (o.get("status") or {}).get("phase") == "Pending"
    )
    core.create_namespaced_config_map(
        ns,
        {
            "metadata": {
                "name": snapshot_name("snap"),
                "ownerReferences": [builders.owner_reference(queued)],
            },
            "data": {"deployment.json": json.dumps({"replicas": 50})},
        },
    )
    done = wait_phase(api_client, ns, "valid", {"Succeeded", "Failed"}, op, timeout_s=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["summary"]["verdict"] == "Passed"
    sx = _wait_sx(api_client, ns, "snap")
    assert sx["status"]["phase"] == "Failed" and "did not write" in sx["status"]["message"]
    after = plain(
        api_client, [client.AppsV1Api(api_client).read_namespaced_deployment("alice", ns)]
    )[0]
    assert after["spec"]["template"] == plain_dep["spec"]["template"]


def _dep(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    return plain(api, [client.AppsV1Api(api).read_namespaced_deployment(name, ns)])[0]


def _experiment(name: str, deployment: str, url: str) -> dict[str, Any]:
    lt = _lt("x", url)["spec"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScalingExperiment",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"deployment": deployment},
            "loadTest": lt,
            "variants": [{"name": "two", "replicas": 2}],
            "cooldown": "1s",
        },
    }


def _wait_sx(
    api: client.ApiClient,
    ns: str,
    name: str,
    done: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, ns, SX, name
        )
        phase = (obj.get("status") or {}).get("phase")
        ok = done(obj) if done else phase in ("Failed", "Succeeded")
        return dict(obj) if ok else None

    return wait_until(probe, timeout_s=120, interval_s=0.5, what=f"experiment {name}")
