"""Tenant guardrails in the chart: the cluster policy value and file, the ValidatingAdmissionPolicy,
the user roles, the operator's rules in both modes, the worker NetworkPolicy (issue #16)."""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import pytest
import yaml

from surge.api.policy import ClusterPolicy, parse_policy
from surge.operator.loadtest import builders
from tests.chart import policy_schema
from tests.chart.rendering import CHART, of_kind, one, render, rule_verbs

POLICY_FILE = "/etc/surge/policy.yaml"
LOADGEN_IMAGE = "ghcr.io/surge-dev/surge:0.1.0"


def default_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def rendered_policy(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (cm,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-policy")]
    data: dict[str, Any] = yaml.safe_load(cm["data"]["policy.yaml"])
    return data


def validate(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as c:
        c.validate_schema(c.merge_values(values))


# ---- the policy value, its schema and its file ------------------------------------------------


def test_default_policy_is_the_models_default() -> None:
    policy = default_values()["policy"]
    # Every key parses (the model forbids unknown ones) and every default is the model's.
    assert parse_policy(policy) == ClusterPolicy()
    assert policy == ClusterPolicy().model_dump(mode="json", by_alias=True, exclude_none=True)


def test_values_schema_policy_is_generated_from_the_model() -> None:
    expected = policy_schema.values_schema_with_policy()
    assert (CHART / "values.schema.json").read_text() == expected, (
        "values.schema.json is stale: .venv/bin/python -m tests.chart.policy_schema --write"
    )
    assert policy_schema.main(["policy_schema"]) == 0


# One unknown key at every object level of the policy (free maps such as nodeSelector excluded).
UNKNOWN_KEYS = [
    {"policy": {"maxRate": 1}},
    {"policy": {"targets": {"host": ["a"]}}},
    {"policy": {"placement": {"affinity": True}}},
    {"policy": {"placement": {"tolerations": [{"key": "a", "tolerationSeconds": 5}]}}},
    {"policy": {"placement": {"allowedTolerations": [{"effects": "NoSchedule"}]}}},
    {"policy": {"caps": {"maxRps": 1}}},
    {"policy": {"workerResources": {"request": {}}}},
    {"policy": {"workerResources": {"requests": {"nvidia.com/gpu": "1"}}}},
    {"policy": {"workerResources": {"limits": {"gpu": "1"}}}},
]


@pytest.mark.parametrize("values", UNKNOWN_KEYS, ids=[str(v) for v in UNKNOWN_KEYS])
def test_schema_rejects_unknown_policy_keys(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        validate(values)
    # The operator refuses the same file.
    merged = copy.deepcopy(default_values()["policy"])
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        parse_policy(_merge(merged, values["policy"]))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        base[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


FULL_POLICY: dict[str, Any] = {
    "images": ["registry.example.com/surge-worker:0.2.0"],
    "targets": {
        "sameNamespaceServices": False,
        "hosts": ["*.staging.example.com"],
        "cidrs": ["10.0.0.0/8", "fd00::/8"],
        "crossNamespace": True,
    },
    "prometheusUrls": ["http://prometheus.monitoring:9090"],
    "placement": {
        "nodeSelector": {"surge.dev/pool": "load"},
        "tolerations": [{"key": "load", "operator": "Exists", "effect": "NoSchedule"}],
        "allowedNodeSelectors": {"topology.kubernetes.io/zone": ["*"]},
        "allowedTolerations": [{"key": "spot", "operator": "Equal", "value": "true"}],
        "priorityClasses": ["batch-low"],
        "allowAffinity": True,
    },
    "caps": {
        "maxRate": 250.5,
        "maxUsers": 50,
        "maxDuration": "30m",
        "maxWait": "20m",
        "maxWorkers": 4,
        "maxInFlight": 100,
        "maxConcurrentRunsPerNamespace": 2,
        "maxExperimentReplicas": 8,
        "maxGpusPerPod": 1,
        "workerCpu": "2",
        "workerMemory": "2Gi",
        "maxSweepSteps": 50,
        "maxBodyBytes": 4096,
        "maxBodyDepth": 8,
        "maxVariants": 5,
        "maxExperimentTimeout": "6h",
    },
    "scaledObjects": {
        "allow": True,
        "triggerTypes": ["prometheus"],
        "triggerAuthentications": ["prom-auth"],
    },
    "workerResources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1"}},
    "allowCustomQueries": True,
    "requireSecretLabel": False,
    "requireExperimentAnnotation": False,
    "verifyPlanHash": False,
}


def test_policy_file_is_the_policy_value() -> None:
    assert rendered_policy(render()) == default_values()["policy"]
    validate({"policy": FULL_POLICY})
    docs = render({"policy": FULL_POLICY})
    file = rendered_policy(docs)
    # workerResources.limits keeps the default memory: Helm merges maps.
    expected = _merge(copy.deepcopy(FULL_POLICY), {})
    expected["workerResources"]["limits"]["memory"] = "1Gi"
    assert file == expected
    assert parse_policy(file).caps.max_rate == 250.5


def test_a_nulled_cap_is_written_as_null() -> None:
    """Helm drops a key set to null; the chart writes it back, so that null means no cap
    (a missing key would give the model's default cap)."""
    file = rendered_policy(render({"policy": {"caps": {"maxRate": None, "maxWorkers": None}}}))
    assert file["caps"]["maxRate"] is None and file["caps"]["maxWorkers"] is None
    caps = parse_policy(file).caps
    assert caps.max_rate is None and caps.max_workers is None
    assert caps.max_users == 1000


def test_operator_reads_the_policy_file() -> None:
    docs = render()
    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SURGE_POLICY_FILE"] == POLICY_FILE
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "policy"]
    assert mount == {"name": "policy", "mountPath": "/etc/surge", "readOnly": True}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "policy"]
    (cm,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "surge-policy"]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    assert cm["metadata"]["namespace"] == "surge-system"
    assert list(cm["data"]) == ["policy.yaml"]


def _checksum(values: dict[str, Any] | None) -> str:
    dep = one(render(values), "Deployment")
    return str(dep["spec"]["template"]["metadata"]["annotations"]["checksum/policy"])


def test_a_policy_change_restarts_the_operator() -> None:
    base = _checksum(None)
    assert base == _checksum({"prometheusUrl": "http://prom:9090"})  # not a policy change
    assert base != _checksum({"policy": {"caps": {"maxRate": 10}}})
    assert base != _checksum({"policy": {"images": ["a/b:1"]}})
    dep = one(render({"operator": {"podAnnotations": {"team": "x"}}}), "Deployment")
    assert dep["spec"]["template"]["metadata"]["annotations"] == {
        "checksum/policy": base,
        "team": "x",
    }


# ---- the ValidatingAdmissionPolicy ------------------------------------------------------------


def _vap(values: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = render(values)
    return one(docs, "ValidatingAdmissionPolicy"), one(docs, "ValidatingAdmissionPolicyBinding")


def _variables(vap: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["expression"] for v in vap["spec"]["variables"]}


def _rules(vap: dict[str, Any]) -> list[str]:
    """Each validation's `policy.` rule, from its message."""
    out = []
    for v in vap["spec"]["validations"]:
        assert v["reason"] == "Forbidden"
        assert v["message"].startswith("spec."), v  # names the field ...
        assert "ask your cluster admin" in v["message"]  # ... and who can change it
        out.append(v["message"].split("(policy.")[1].split(")")[0].split(",")[0].split(" ")[0])
    return out


def test_admission_policy_covers_the_static_rules() -> None:
    vap, binding = _vap()
    spec = vap["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["surge.dev"],
            "apiVersions": ["v1alpha1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["loadtests", "scalingexperiments"],
        }
    ]
    assert _rules(vap) == [
        "images",
        "placement.nodeSelector",
        "placement.tolerations",
        "placement.priorityClasses",
        "placement.allowAffinity",
        "caps.maxRate",
        "caps.maxUsers",
        "caps.maxWorkers",
        "caps.maxInFlight",
        "caps.maxVariants",
        "caps.maxExperimentTimeout",
        "caps.maxExperimentReplicas",
        "scaledObjects.allow",
    ]
    variables = _variables(vap)
    # JSON literals are CEL literals: the loadgen image is always allowed.
    assert yaml.safe_load(variables["images"]) == [LOADGEN_IMAGE]
    assert variables["pool"] == "{}" and variables["priorityClasses"] == "[]"
    assert binding["spec"]["policyName"] == vap["metadata"]["name"] == "surge-surge-system"
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"] == {
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["surge-system"]}
            ]
        }
    }


def test_admission_policy_follows_the_policy() -> None:
    values = {
        "policy": FULL_POLICY,
        "loadgen": {"image": "registry.example.com/surge-worker:0.2.0"},
        "image": {"tag": "0.2.0"},
        "operator": {"watchNamespaces": ["team-a", "team-b"]},
    }
    vap, binding = _vap(values)
    variables = _variables(vap)
    assert yaml.safe_load(variables["images"]) == ["registry.example.com/surge-worker:0.2.0"]
    assert yaml.safe_load(variables["pool"]) == {"surge.dev/pool": "load"}
    assert yaml.safe_load(variables["allowedSelectors"]) == {"topology.kubernetes.io/zone": ["*"]}
    assert yaml.safe_load(variables["tolerations"]) == [
        {"key": "load", "operator": "Exists", "value": "", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Equal", "value": "true", "effect": ""},
    ]
    assert yaml.safe_load(variables["priorityClasses"]) == ["batch-low"]
    assert "placement.allowAffinity" not in _rules(vap)  # allowAffinity: true
    text = yaml.safe_dump(vap["spec"]["validations"])
    for cap in ("double(250.5)", "double(50)", "double(4)", "double(100)", "double(8)"):
        assert cap in text, cap
    selector = binding["spec"]["matchResources"]["namespaceSelector"]
    assert selector["matchExpressions"][0]["values"] == ["team-a", "team-b"]
    # The operator's own image is allowed when no loadgen image is set.
    vap, _ = _vap({"policy": {"images": ["a/b:1"]}})
    assert yaml.safe_load(_variables(vap)["images"]) == [LOADGEN_IMAGE, "a/b:1"]


def test_scaled_object_variants_are_refused_at_apply_until_allowed() -> None:
    vap, _ = _vap({"policy": {"scaledObjects": {"allow": True}}})
    assert "scaledObjects.allow" not in _rules(vap)
    text = yaml.safe_dump(vap["spec"]["validations"])
    assert "v.scaledObject.maxReplicaCount" in text and "v.scaledObject.minReplicaCount" in text


def test_a_null_cap_is_no_rule() -> None:
    nulls = dict.fromkeys(
        [
            "maxRate",
            "maxUsers",
            "maxWorkers",
            "maxInFlight",
            "maxVariants",
            "maxExperimentTimeout",
            "maxExperimentReplicas",
        ]
    )
    vap, _ = _vap({"policy": {"caps": nulls}})
    assert not [r for r in _rules(vap) if r.startswith("caps.")]


def test_admission_policy_cluster_wide_and_off() -> None:
    _, binding = _vap({"operator": {"clusterWide": True}})
    assert "matchResources" not in binding["spec"]  # every namespace
    docs = render({"admissionPolicy": {"enabled": False}})
    assert not of_kind(docs, "ValidatingAdmissionPolicy")
    assert not of_kind(docs, "ValidatingAdmissionPolicyBinding")


def test_admission_policy_never_refuses_an_unchanged_spec() -> None:
    """Finalizer and status-free patches of objects admitted under an older policy pass."""
    vap, _ = _vap()
    (cond,) = vap["spec"]["matchConditions"]
    assert "request.operation == 'CREATE'" in cond["expression"]
    assert "object.spec != oldObject.spec" in cond["expression"]


# ---- RBAC: people, and the operator in both modes ---------------------------------------------


SURGE_KINDS = ("loadtests", "scalingexperiments")
VIEW = {("surge.dev", r, v) for r in SURGE_KINDS for v in ("get", "list", "watch")} | {
    ("surge.dev", f"{r}/status", v) for r in SURGE_KINDS for v in ("get", "list", "watch")
}
WRITE = {
    ("surge.dev", r, v)
    for r in SURGE_KINDS
    for v in ("create", "update", "patch", "delete", "deletecollection")
}


def test_user_roles_aggregate_into_view_edit_admin() -> None:
    docs = render(namespace="surge-system")
    roles = {r["metadata"]["name"]: r for r in of_kind(docs, "ClusterRole")}
    view, edit = roles["surge-view"], roles["surge-edit"]
    assert rule_verbs(view["rules"]) == VIEW
    assert rule_verbs(edit["rules"]) == VIEW | WRITE
    agg = "rbac.authorization.k8s.io/aggregate-to-"

    def aggregated(role: dict[str, Any]) -> set[str]:
        labels = role["metadata"]["labels"]
        return {k.removeprefix(agg) for k, v in labels.items() if k.startswith(agg) and v == "true"}

    assert aggregated(view) == {"view", "edit", "admin"}
    assert aggregated(edit) == {"edit", "admin"}
    # Nobody but the operator writes status.
    assert not {r for r in rule_verbs(edit["rules"]) if r[1].endswith("/status")} - VIEW
    assert not of_kind(render({"rbac": {"userRoles": False}}), "ClusterRole")


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"rbac": {"kopfScanning": True, "experiments": False}},
        {"operator": {"peering": {"enabled": True}, "replicas": 2}},
    ],
    ids=["default", "no-experiments", "peering"],
)
def test_cluster_wide_grants_no_more_than_namespaced(values: dict[str, Any]) -> None:
    """A ClusterRole applies in every namespace: it must hold exactly a watched namespace's
    Role (kopf's scanning ClusterRole, the leader Lease Role and the user roles aside)."""
    namespaced = render(values)
    wide = render(_merge(copy.deepcopy(values), {"operator": {"clusterWide": True}}))
    (role,) = [
        r for r in of_kind(namespaced, "Role") if not r["metadata"]["name"].endswith("-leader")
    ]
    (cluster_role,) = [
        r
        for r in of_kind(wide, "ClusterRole")
        if not r["metadata"]["name"].endswith(("-scanning", "-view", "-edit"))
    ]
    peer = {("kopf.dev", "kopfpeerings", v) for v in ("list", "watch", "patch")}
    cluster_peer = {("kopf.dev", "clusterkopfpeerings", v) for v in ("list", "watch", "patch")}
    # Peering objects are cluster-scoped in cluster-wide mode: the one allowed difference.
    assert rule_verbs(cluster_role["rules"]) - cluster_peer == rule_verbs(role["rules"]) - peer
    assert ("", "secrets", "get") in rule_verbs(role["rules"])
    assert ("", "services", "get") in rule_verbs(role["rules"])


def test_secrets_are_read_by_name_only() -> None:
    role = one(render(), "Role")
    secret_verbs = {v for g, r, v in rule_verbs(role["rules"]) if r == "secrets"}
    assert secret_verbs == {"get"}  # never list or watch: the Secrets of a namespace stay unseen


# ---- the worker NetworkPolicy -----------------------------------------------------------------


NETPOL = {"networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.96.0.1/32"]}}}


def test_network_policy_off_by_default() -> None:
    assert not of_kind(render(), "NetworkPolicy")


def test_network_policy_limits_worker_egress() -> None:
    values = _merge(
        copy.deepcopy(NETPOL),
        {
            "operator": {"watchNamespaces": ["a", "b"]},
            "policy": {"targets": {"cidrs": ["10.0.0.0/8"]}},
            "networkPolicy": {
                "extraEgress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}],
            },
        },
    )
    docs = render(values)
    policies = of_kind(docs, "NetworkPolicy")
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["a", "b"]
    spec = policies[0]["spec"]
    # The worker pods' own labels (surge/operator/loadtest/builders.py).
    worker = builders.labels("alice", "1")
    assert spec["podSelector"]["matchLabels"] == {
        builders.LABEL_COMPONENT: worker[builders.LABEL_COMPONENT],
        builders.LABEL_MANAGED: worker[builders.LABEL_MANAGED],
    }
    assert spec["podSelector"]["matchLabels"].items() <= worker.items()
    assert spec["policyTypes"] == ["Egress"]
    dns, api, services, cidrs, extra = spec["egress"]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert dns["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert api == {
        "to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}],
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
    }
    assert services == {"to": [{"podSelector": {}}]}  # policy.targets.sameNamespaceServices
    assert cidrs == {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}
    assert extra == {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}


def test_network_policy_without_same_namespace_services_or_dns_namespace() -> None:
    values = _merge(
        copy.deepcopy(NETPOL),
        {
            "policy": {"targets": {"sameNamespaceServices": False}},
            "networkPolicy": {"dns": {"namespace": ""}},
        },
    )
    (np,) = of_kind(render(values), "NetworkPolicy")
    dns, api = np["spec"]["egress"]
    assert "to" not in dns  # port 53 anywhere (node-local DNS caches)
    assert api["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}}]


def test_network_policy_cluster_wide_needs_namespaces() -> None:
    wide = _merge(copy.deepcopy(NETPOL), {"operator": {"clusterWide": True}})
    with pytest.raises(helm.HelmError, match=r"networkPolicy\.namespaces"):
        render(wide)
    docs = render(_merge(wide, {"networkPolicy": {"namespaces": ["x"]}}))
    assert [p["metadata"]["namespace"] for p in of_kind(docs, "NetworkPolicy")] == ["x"]
