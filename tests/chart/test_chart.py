"""charts/surge through helm-python-sdk: lint, schema, renders, RBAC shape, CRD copies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from tests.chart.rendering import CHART, notes, of_kind, one, render, rule_verbs
from tests.support.cluster import REPO_ROOT

NON_DEFAULT: dict[str, Any] = {
    "image": {"repository": "registry.example.com/surge", "tag": "0.2.0"},
    "operator": {"watchNamespaces": ["team-a", "team-b"], "verbose": True},
    "prometheusUrl": "http://prometheus.monitoring:9090",
    "loadgen": {"image": "registry.example.com/surge-worker:0.2.0", "metricsPort": 9500},
    "policy": {
        "caps": {"maxRate": 250.5},
        "targets": {"hosts": ["*.svc.cluster.local", "agent.test"], "cidrs": ["10.0.0.0/8"]},
    },
    "rbac": {"kopfScanning": True, "experiments": True},
    "networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.96.0.1/32"]}},
    "metrics": {"podMonitor": {"enabled": True, "interval": "30s"}},
}

# The kinds the chart may render, and the API versions they must use.
API_VERSIONS = {
    "ServiceAccount": "v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "Deployment": "apps/v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "ValidatingAdmissionPolicy": "admissionregistration.k8s.io/v1",
    "ValidatingAdmissionPolicyBinding": "admissionregistration.k8s.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
# The aggregated ClusterRoles for people (rbac.userRoles), not the operator's.
USER_ROLE_SUFFIXES = ("-view", "-edit")

# What the operator does in a namespace it serves (surge/operator/kube/client.py and kopf).
OPERATOR_RULES = {
    ("surge.dev", "loadtests", "get"),
    ("surge.dev", "loadtests", "list"),
    ("surge.dev", "loadtests", "watch"),
    ("surge.dev", "loadtests", "patch"),
    ("surge.dev", "loadtests/status", "patch"),
    ("", "events", "create"),
    ("", "configmaps", "get"),
    ("", "configmaps", "create"),
    ("", "configmaps", "patch"),
    ("", "configmaps", "deletecollection"),
    ("batch", "jobs", "get"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "create"),
    ("batch", "jobs", "delete"),
    ("", "pods", "list"),
    ("", "pods/log", "get"),
    ("", "serviceaccounts", "get"),
    ("", "serviceaccounts", "create"),
    ("rbac.authorization.k8s.io", "roles", "get"),
    ("rbac.authorization.k8s.io", "roles", "create"),
    ("rbac.authorization.k8s.io", "roles", "patch"),
    ("rbac.authorization.k8s.io", "rolebindings", "get"),
    ("rbac.authorization.k8s.io", "rolebindings", "create"),
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
    ("coordination.k8s.io", "leases", "delete"),
    ("apps", "deployments", "get"),
    # The cluster policy: the surge.dev/usable label of a Secret a spec names, Prometheus auth.
    ("", "secrets", "get"),
    # The cluster policy: a target Service of the run's namespace exists; its ClusterIPs.
    ("", "services", "get"),
}
EXPERIMENT_RULES = {
    ("surge.dev", "scalingexperiments", "get"),
    ("surge.dev", "scalingexperiments", "list"),
    ("surge.dev", "scalingexperiments", "watch"),
    ("surge.dev", "scalingexperiments", "patch"),
    ("surge.dev", "scalingexperiments/status", "patch"),
    ("apps", "deployments", "patch"),
    ("autoscaling", "horizontalpodautoscalers", "get"),
    ("autoscaling", "horizontalpodautoscalers", "create"),
    ("autoscaling", "horizontalpodautoscalers", "update"),
    ("autoscaling", "horizontalpodautoscalers", "delete"),
    ("autoscaling", "horizontalpodautoscalers", "list"),
    ("keda.sh", "scaledobjects", "get"),
    ("keda.sh", "scaledobjects", "list"),
    ("keda.sh", "scaledobjects", "create"),
    ("keda.sh", "scaledobjects", "patch"),
    ("keda.sh", "scaledobjects", "delete"),
    ("surge.dev", "loadtests", "get"),
    ("surge.dev", "loadtests", "create"),
    ("surge.dev", "loadtests", "delete"),
}


def _check_objects(docs: list[dict[str, Any]]) -> None:
    """Static schema check: kinds, apiVersions, names and each kind's required fields."""
    assert docs
    for d in docs:
        kind = d["kind"]
        assert d["apiVersion"] == API_VERSIONS[kind], kind
        meta = d["metadata"]
        assert meta["name"] and len(meta["name"]) <= 63, meta
        assert ("namespace" in meta) == (kind not in CLUSTER_SCOPED), (kind, meta)
        assert set(d) <= {"apiVersion", "kind", "metadata", "spec", "rules", "roleRef"} | {
            "subjects",
            "data",
            "automountServiceAccountToken",
        }, (kind, sorted(d))
        if kind == "Deployment":
            spec = d["spec"]
            selector = spec["selector"]["matchLabels"]
            assert selector.items() <= spec["template"]["metadata"]["labels"].items()
            for c in spec["template"]["spec"]["containers"]:
                assert c["name"] and c["image"]
        if kind in {"Role", "ClusterRole"}:
            for rule in d["rules"]:
                assert rule["apiGroups"] and rule["resources"] and rule["verbs"], rule
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        if kind in {"RoleBinding", "ClusterRoleBinding"}:
            assert d["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
            assert d["roleRef"]["kind"] in {"Role", "ClusterRole"}
            assert d["subjects"] and all(s["kind"] == "ServiceAccount" for s in d["subjects"])
        if kind in {"PodMonitor", "ServiceMonitor"}:
            assert d["spec"]["selector"]["matchLabels"]


def operator_cluster_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ClusterRoles of the operator (kopf scanning included), not the user roles."""
    return [
        r
        for r in of_kind(docs, "ClusterRole")
        if not r["metadata"]["name"].endswith(USER_ROLE_SUFFIXES)
    ]


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in c["env"]}


def _args(deployment: dict[str, Any]) -> list[str]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return [*c["command"], *c["args"]]


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["default", "non-default"])
def test_lint_is_clean(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, namespace="surge-system")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_default_render() -> None:
    docs = render()
    _check_objects(docs)
    assert sorted(d["kind"] for d in docs) == [
        "ClusterRole",  # surge-edit (rbac.userRoles)
        "ClusterRole",  # surge-view
        "ConfigMap",  # surge-policy
        "Deployment",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert not operator_cluster_roles(docs)  # namespaced mode: nothing cluster-wide
    dep = one(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate"  # never two standalone operators
    assert _args(dep) == [
        "surge",
        "operator",
        "--namespace=surge-system",
        "--liveness=http://0.0.0.0:8080/healthz",
    ]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "ghcr.io/surge-dev/surge:0.1.0"
    assert _env(dep)["SURGE_LOADGEN_IMAGE"] == c["image"]  # one image, two entrypoints
    assert _env(dep)["SURGE_POLICY_FILE"] == "/etc/surge/policy.yaml"
    assert not {"SURGE_MAX_RATE", "SURGE_ALLOWED_HOSTS"} & set(_env(dep))
    role = one(docs, "Role")
    assert role["metadata"]["namespace"] == "surge-system"
    assert rule_verbs(role["rules"]) == OPERATOR_RULES | EXPERIMENT_RULES
    binding = one(docs, "RoleBinding")
    sa = one(docs, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "surge-system"}
    ]
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_non_default_render() -> None:
    docs = render(NON_DEFAULT)
    _check_objects(docs)
    dep = one(docs, "Deployment")
    assert _args(dep)[:4] == ["surge", "operator", "--namespace=team-a", "--namespace=team-b"]
    assert "--verbose" in _args(dep)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "registry.example.com/surge:0.2.0"
    env = _env(dep)
    assert env["SURGE_LOADGEN_IMAGE"] == "registry.example.com/surge-worker:0.2.0"
    assert env["SURGE_WORKER_METRICS_PORT"] == "9500"
    assert env["SURGE_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert env["SURGE_POLICY_FILE"] == "/etc/surge/policy.yaml"
    roles = of_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(rule_verbs(r["rules"]) == OPERATOR_RULES | EXPERIMENT_RULES for r in roles)
    assert sorted(n["metadata"]["namespace"] for n in of_kind(docs, "NetworkPolicy")) == [
        "team-a",
        "team-b",
    ]
    assert sorted(b["metadata"]["namespace"] for b in of_kind(docs, "RoleBinding")) == [
        "team-a",
        "team-b",
    ]
    (scanning,) = operator_cluster_roles(docs)
    assert rule_verbs(scanning["rules"]) == {
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    }
    assert scanning["metadata"]["name"] == "surge-surge-system-scanning"
    monitor = one(docs, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "loadgen"
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]


def test_cluster_wide_uses_one_cluster_role() -> None:
    docs = render({"operator": {"clusterWide": True}, "image": {"digest": "sha256:" + "a" * 64}})
    _check_objects(docs)
    assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding")
    (role,) = operator_cluster_roles(docs)
    assert rule_verbs(role["rules"]) == OPERATOR_RULES | EXPERIMENT_RULES
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    dep = one(docs, "Deployment")
    assert not [a for a in _args(dep) if a.startswith("--namespace")]  # kopf clusterwide
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "ghcr.io/surge-dev/surge@sha256:" + "a" * 64


@pytest.mark.parametrize("cluster_wide", [False, True])
def test_peering_allows_standby_replicas(cluster_wide: bool) -> None:
    values = {
        "operator": {
            "peering": {"enabled": True, "name": "ha"},
            "replicas": 2,
            "leaderElection": {"mode": "off"},
        }
    }
    values["operator"]["clusterWide"] = cluster_wide
    docs = render(values)
    dep = one(docs, "Deployment")
    assert dep["spec"]["replicas"] == 2
    assert "--peering=ha" in _args(dep)
    (role,) = operator_cluster_roles(docs) if cluster_wide else of_kind(docs, "Role")
    plural = "clusterkopfpeerings" if cluster_wide else "kopfpeerings"
    assert rule_verbs(role["rules"]) - OPERATOR_RULES - EXPERIMENT_RULES == {
        ("kopf.dev", plural, "list"),
        ("kopf.dev", plural, "watch"),
        ("kopf.dev", plural, "patch"),
    }


@pytest.mark.parametrize(
    ("operator", "elected"),
    [
        ({"replicas": 1}, False),
        ({"replicas": 2}, True),
        ({"replicas": 1, "leaderElection": {"mode": "on"}}, True),
        ({"replicas": 2, "leaderElection": {"mode": "off"}, "peering": {"enabled": True}}, False),
    ],
)
def test_leader_election_with_standby_replicas(operator: dict[str, Any], elected: bool) -> None:
    docs = render({"operator": operator})
    dep = one(docs, "Deployment")
    assert ("--leader-elect" in _args(dep)) == elected
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert ("POD_NAMESPACE" in env) == elected
    leader_roles = [r for r in of_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader")]
    if not elected:
        assert leader_roles == []
        return
    (role,) = leader_roles
    # create cannot be limited to a name; get and update can, to the one Lease.
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["surge-operator-leader"],
            "verbs": ["get", "update"],
        },
    ]
    (binding,) = [
        b for b in of_kind(docs, "RoleBinding") if b["metadata"]["name"].endswith("-leader")
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_service_monitor_brings_a_headless_service_per_namespace() -> None:
    docs = render(
        {
            "operator": {"watchNamespaces": ["a", "b"]},
            "metrics": {"serviceMonitor": {"enabled": True}},
        }
    )
    _check_objects(docs)
    services = of_kind(docs, "Service")
    assert sorted(s["metadata"]["namespace"] for s in services) == ["a", "b"]
    assert all(s["spec"]["clusterIP"] == "None" for s in services)
    assert services[0]["spec"]["ports"] == [
        {"name": "metrics", "port": 9464, "targetPort": "metrics"}
    ]
    monitor = one(docs, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= services[0]["metadata"]["labels"].items()
    )


def test_dashboard_configmap() -> None:
    source = CHART / "dashboards" / "surge.json"
    # Off by default, renders without the file (the one ConfigMap is the policy's).
    assert [c["metadata"]["name"] for c in of_kind(render(), "ConfigMap")] == ["surge-policy"]
    if not source.is_file():
        with pytest.raises(helm.HelmError, match=r"dashboards/surge\.json"):
            render({"dashboard": {"enabled": True}})
        return
    docs = render({"dashboard": {"enabled": True, "namespace": "monitoring"}})
    (cm,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] != "surge-policy"]
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["surge.json"]) == json.loads(source.read_text())


INVALID: list[tuple[str, dict[str, Any]]] = [
    (
        "two replicas without leader election or peering",
        {"operator": {"replicas": 2, "leaderElection": {"mode": "off"}}},
    ),
    ("latest tag", {"image": {"tag": "latest"}}),
    ("bad digest", {"image": {"digest": "sha256:abc"}}),
    ("unknown key", {"operator": {"replica": 1}}),
    ("unknown top-level key", {"images": {}}),
    ("bad pull policy", {"image": {"pullPolicy": "Sometimes"}}),
    ("the old safety values", {"safety": {"maxRate": 100}}),
    ("the old prometheusSecrets switch", {"rbac": {"prometheusSecrets": True}}),
    ("negative max rate", {"policy": {"caps": {"maxRate": -1}}}),
    ("zero max rate", {"policy": {"caps": {"maxRate": 0}}}),
    ("max rate as string", {"policy": {"caps": {"maxRate": "100"}}}),
    ("unknown policy key", {"policy": {"maxRate": 100}}),
    ("unknown cap", {"policy": {"caps": {"maxRps": 100}}}),
    ("bad max duration", {"policy": {"caps": {"maxDuration": "an hour"}}}),
    ("hosts not a list", {"policy": {"targets": {"hosts": "*.svc"}}}),
    ("unknown toleration key", {"policy": {"placement": {"tolerations": [{"keys": "a"}]}}}),
    ("network policy without API server", {"networkPolicy": {"enabled": True}}),
    ("network policy bad port", {"networkPolicy": {"apiServer": {"ports": [0]}}}),
    ("bad namespace", {"operator": {"watchNamespaces": ["Team_A"]}}),
    ("duplicate namespaces", {"operator": {"watchNamespaces": ["a", "a"]}}),
    ("clusterWide with namespaces", {"operator": {"clusterWide": True, "watchNamespaces": ["a"]}}),
    ("prometheus url without scheme", {"prometheusUrl": "prometheus:9090"}),
    ("privileged health port", {"operator": {"healthPort": 80}}),
    ("metrics port out of range", {"loadgen": {"metricsPort": 70000}}),
    ("loadgen latest", {"loadgen": {"image": "surge:latest"}}),
    ("bad interval", {"metrics": {"podMonitor": {"interval": "soon"}}}),
    ("rbac flag as string", {"rbac": {"create": "yes"}}),
]


@pytest.mark.parametrize(("why", "values"), INVALID, ids=[w for w, _ in INVALID])
def test_schema_rejects(why: str, values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as c, pytest.raises(helm.HelmValuesError):
        c.validate_schema(c.merge_values(values))
    with pytest.raises(helm.HelmValuesError):
        render(values)


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["default", "non-default"])
def test_schema_accepts(values: dict[str, Any] | None) -> None:
    with helm.Chart.load(CHART) as c:
        c.validate_schema(c.merge_values(values))


def test_chart_crds_are_the_generated_ones() -> None:
    top = {p.name: p.read_bytes() for p in sorted((REPO_ROOT / "crds").glob("*.yaml"))}
    chart = {p.name: p.read_bytes() for p in sorted((CHART / "crds").glob("*.yaml"))}
    assert top, "no generated CRDs in crds/"
    assert chart == top, "charts/surge/crds/ differs from crds/: cp crds/*.yaml charts/surge/crds/"
    with helm.Chart.load(CHART) as c:
        assert sorted(Path(x["filename"]).name for x in c.crds) == sorted(top)


def test_notes_show_the_first_apply() -> None:
    text = notes(namespace="agents")
    assert "kubectl apply -n agents" in text
    assert "kind: LoadTest" in text
    assert "standalone" in text
