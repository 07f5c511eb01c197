"""charts/surge on the real control plane: helm install, server-side validation, the
restricted Pod Security Standard enforced by PodSecurity admission, and least privilege
proved with the chart's own ServiceAccount (a TokenRequest token, RBAC on).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from surge.agent import start_agent_process, stop_agent_process
from surge.api.policy import parse_policy
from surge.operator.kube import target_lease
from surge.operator.kube.client import Kube, KubeError
from surge.operator.loadtest import builders
from tests.chart.rendering import CHART, of_kind, one, render, rule_verbs
from tests.chart.test_policy import FULL_POLICY
from tests.chart.workloads import pod_templates, worker_job
from tests.e2e.operator_support import Operator, create, loadtest, wait_phase
from tests.support import cluster as support
from tests.support.cluster import REPO_ROOT, wait_until
from tests.support.podrunner import PodRunner

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

KUBECTL = REPO_ROOT / ".venv" / "bin" / "kubectl"
GROUP, VERSION, PLURAL = "surge.dev", "v1alpha1", "loadtests"
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
# Everything optional turned on, so every rule the chart can grant is proved needed.
ALL_RBAC: dict[str, Any] = {
    # kopf peering's rules; leader election's one Lease Role is checked statically and by
    # tests/e2e/test_operator_ha.py.
    "operator": {"peering": {"enabled": True}, "replicas": 2, "leaderElection": {"mode": "off"}},
    # The user roles are people's, not the operator's: test_user_roles_* checks them.
    "rbac": {"kopfScanning": True, "experiments": True, "userRoles": False},
}
Rule = tuple[str, str, str]  # (apiGroup, resource, verb)


def kubectl(*args: str, stdin: str | None = None, timeout_s: float = 60) -> str:
    out = subprocess.run(
        [str(KUBECTL), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
    return out.stdout


# ---- install and validation ---------------------------------------------------------------


def _release_status(summary: dict[str, Any]) -> str:
    """A release summary's status (flat in helm-c summaries, under `info` in Helm's JSON)."""
    return str(summary.get("status") or (summary.get("info") or {}).get("status"))


def test_helm_install_and_uninstall(cluster: support.Cluster, namespace: str) -> None:
    core: Any = client.CoreV1Api(cluster.api_client)
    with helm.Config(kubeconfig_path=str(cluster.kubeconfig), namespace=namespace) as cfg:
        values = {"policy": {"caps": {"maxRate": 100, "maxWorkers": None}}}
        release = cfg.install(CHART, "surge", values, timeout=120)
        try:
            assert _release_status(release) == "deployed", release
            assert _release_status(cfg.status("surge")) == "deployed"
            apps: Any = client.AppsV1Api(cluster.api_client)
            dep = apps.read_namespaced_deployment("surge", namespace)
            assert dep.spec.replicas == 1
            env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env}
            assert env["SURGE_POLICY_FILE"] == "/etc/surge/policy.yaml"
            assert "SURGE_MAX_RATE" not in env
            mounts = {m.name: m for m in dep.spec.template.spec.containers[0].volume_mounts}
            assert (mounts["policy"].mount_path, mounts["policy"].read_only) == ("/etc/surge", True)
            # The file the operator reads: the chart's policy, a nulled cap written as null.
            cm = core.read_namespaced_config_map("surge-policy", namespace)
            policy = parse_policy(yaml.safe_load(cm.data["policy.yaml"]))
            assert policy.caps.max_rate == 100 and policy.caps.max_workers is None
            assert policy.caps.max_users == 1000  # the model's default, from values.yaml
            admission: Any = client.AdmissionregistrationV1Api(cluster.api_client)
            vap = admission.read_validating_admission_policy(f"surge-{namespace}")
            assert vap.spec.failure_policy == "Fail"
            rbac: Any = client.RbacAuthorizationV1Api(cluster.api_client)
            role = rbac.read_namespaced_role("surge", namespace)
            assert len(role.rules) == len(one(render(namespace=namespace), "Role")["rules"])
            core.read_namespaced_service_account("surge", namespace)
        finally:
            cfg.uninstall("surge", timeout=60)

    def gone() -> bool:
        try:
            core.read_namespaced_service_account("surge", namespace)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_until(gone, timeout_s=30, what="release objects deleted")


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"operator": {"clusterWide": True}, **{"rbac": ALL_RBAC["rbac"]}},
        {
            **ALL_RBAC,
            "rbac": {**ALL_RBAC["rbac"], "userRoles": True},
            "prometheusUrl": "http://prom:9090",
            "policy": FULL_POLICY,
            "networkPolicy": {
                "enabled": True,
                "apiServer": {"cidrs": ["10.96.0.1/32", "fd00::1/128"]},
                "extraEgress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}],
            },
        },
    ],
    ids=["default", "cluster-wide", "everything"],
)
def test_rendered_manifests_pass_server_side_dry_run(
    cluster: support.Cluster, namespace: str, values: dict[str, Any]
) -> None:
    docs = render(values, namespace=namespace)
    out = kubectl(
        "apply", "--dry-run=server", "-o", "name", "-f", "-", stdin=yaml.safe_dump_all(docs)
    )
    assert len(out.splitlines()) == len(docs), out


# ---- tenancy: the ValidatingAdmissionPolicy and the user roles -----------------------------

ADMISSION_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def _dry_run_create(obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), "create", "--dry-run=server", "-o", "name", "-f", "-"],
        input=yaml.safe_dump(obj),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _probe_loadtest(namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LoadTest",
        "metadata": {"name": "vap-probe", "namespace": namespace},
        "spec": {
            "target": {"url": f"http://alice.{namespace}.svc:8080"},
            "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
            **spec,
        },
    }


@pytest.fixture
def admission_policy(namespace: str) -> Iterator[list[dict[str, Any]]]:
    """The chart's ValidatingAdmissionPolicy and binding for ``namespace``, created for real
    (a dry-run policy refuses nothing), deleted afterwards."""
    values = {
        "policy": {
            "images": ["registry.example.com/surge-worker:0.2.0"],
            "placement": {"nodeSelector": {"surge.dev/pool": "load"}},
            "caps": {"maxRate": 100, "maxExperimentReplicas": 4},
        }
    }
    docs = [d for d in render(values, namespace=namespace) if d["kind"] in ADMISSION_KINDS]
    assert len(docs) == 2
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    try:
        yield docs
    finally:
        kubectl("delete", "--ignore-not-found", "-f", "-", stdin=yaml.safe_dump_all(docs))


def test_admission_policy_refuses_a_foreign_image_at_apply(
    namespace: str, admission_policy: list[dict[str, Any]]
) -> None:
    foreign = _probe_loadtest(namespace, image="evil.example.com/miner:1")

    def refused() -> str | None:
        out = _dry_run_create(foreign)
        return out.stderr if out.returncode != 0 else None

    # The API server picks a new policy up within a few seconds.
    message = wait_until(refused, timeout_s=30, what="the policy in effect")
    assert "spec.image: evil.example.com/miner:1 is not an allowed image" in message, message
    assert "policy.images" in message and "ask your cluster admin" in message, message
    # Allowed: no image (the operator's), a listed image, the operator's own image.
    for spec in (
        {},
        {"image": "registry.example.com/surge-worker:0.2.0"},
        {"image": "ghcr.io/surge-dev/surge:0.1.0"},
    ):
        out = _dry_run_create(_probe_loadtest(namespace, **spec))
        assert out.returncode == 0, (spec, out.stderr)
    # Each static rule names its field and its policy key.
    refusals: dict[str, dict[str, Any]] = {
        "policy.caps.maxRate": {
            "load": {"model": "poisson", "stages": [{"duration": "1s", "target": 100.5}]}
        },
        "policy.placement.nodeSelector": {
            "load": {
                "model": "constant",
                "stages": [{"duration": "1s", "target": 1}],
                "placement": {"nodeSelector": {"kubernetes.io/hostname": "control-plane"}},
            }
        },
        "policy.placement.allowAffinity": {
            "load": {
                "model": "constant",
                "stages": [{"duration": "1s", "target": 1}],
                "placement": {"affinity": {"nodeAffinity": {}}},
            }
        },
        "policy.caps.maxWorkers": {
            "load": {
                "model": "constant",
                "stages": [{"duration": "1s", "target": 1}],
                "workers": 21,
            }
        },
    }
    for rule, spec in refusals.items():
        out = _dry_run_create(_probe_loadtest(namespace, **spec))
        assert out.returncode != 0 and rule in out.stderr, (rule, out.stderr)
    out = _dry_run_create(
        _probe_loadtest(
            namespace,
            load={
                "model": "constant",
                "stages": [{"duration": "1s", "target": 100}],
                "placement": {"nodeSelector": {"surge.dev/pool": "load"}},
            },
        )
    )
    assert out.returncode == 0, out.stderr  # at the cap, on the pool


def test_admission_policy_checks_experiments(
    namespace: str, admission_policy: list[dict[str, Any]]
) -> None:
    lt = _probe_loadtest(namespace)["spec"]
    experiment: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScalingExperiment",
        "metadata": {"name": "vap-probe", "namespace": namespace},
        "spec": {
            "targetRef": {"deployment": "alice", "hpa": "alice"},
            "loadTest": lt,
            "variants": [{"name": "a", "replicas": 4}, {"name": "b", "hpa": {"maxReplicas": 4}}],
        },
    }
    too_many = copy.deepcopy(experiment)
    too_many["spec"]["variants"][1]["hpa"]["maxReplicas"] = 5

    def refused() -> str | None:
        out = _dry_run_create(too_many)
        return out.stderr if out.returncode != 0 else None

    message = wait_until(refused, timeout_s=30, what="the policy in effect")
    assert "policy.caps.maxExperimentReplicas" in message, message
    out = _dry_run_create(experiment)
    assert out.returncode == 0, out.stderr
    foreign = copy.deepcopy(experiment)
    foreign["spec"]["loadTest"]["image"] = "evil.example.com/miner:1"
    out = _dry_run_create(foreign)
    assert out.returncode != 0 and "spec.loadTest.image" in out.stderr, out.stderr


def test_admission_policy_lets_an_unchanged_spec_through(
    api_client: client.ApiClient, namespace: str, admission_policy: list[dict[str, Any]]
) -> None:
    """A LoadTest admitted before a stricter policy can still get (and lose) its finalizer."""
    custom: Any = client.CustomObjectsApi(api_client)
    admission: Any = client.AdmissionregistrationV1Api(api_client)
    binding = one(admission_policy, "ValidatingAdmissionPolicyBinding")
    admission.delete_validating_admission_policy_binding(binding["metadata"]["name"])
    old = _probe_loadtest(namespace, suspend=True)
    old["spec"]["load"]["workers"] = 30  # above the default cap of 20

    def created() -> bool:
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, old)
        except ApiException as exc:
            if exc.status == 403:
                return False  # the old binding still in effect
            raise
        return True

    wait_until(created, timeout_s=30, what="LoadTest created without the policy")
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(binding))
    name = old["metadata"]["name"]

    def spec_refused() -> str | None:
        try:
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, {"spec": {"runId": uuid.uuid4().hex[:8]}}
            )
        except ApiException as exc:
            return f"{exc.status} {exc.body}"
        return None

    refusal = wait_until(spec_refused, timeout_s=30, what="the policy in effect again")
    assert refusal.startswith("403") and "policy.caps.maxWorkers" in refusal, refusal
    for finalizers in (["surge.dev/probe"], []):
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"finalizers": finalizers}}
        )


def test_user_roles_aggregate_into_edit_and_view(
    api_client: client.ApiClient, namespace: str
) -> None:
    """Whoever is bound to `edit` in a namespace may write LoadTests; `view`, only read them."""
    docs = render(namespace=namespace)
    roles = [
        r
        for r in of_kind(docs, "ClusterRole")
        if r["metadata"]["name"].endswith(("-view", "-edit"))
    ]
    assert len(roles) == 2
    rbac: Any = client.RbacAuthorizationV1Api(api_client)
    authz: Any = client.AuthorizationV1Api(api_client)
    try:
        apply_rbac(api_client, roles)
        for user, cluster_role in (("alice", "edit"), ("bob", "view")):
            rbac.create_namespaced_role_binding(
                namespace,
                {
                    "metadata": {"name": f"{user}-{cluster_role}"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": cluster_role,
                    },
                    "subjects": [
                        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                    ],
                },
            )

        def may(user: str, verb: str, resource: str = "loadtests") -> bool:
            review = client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    user=user,
                    resource_attributes=client.V1ResourceAttributes(
                        group=GROUP, resource=resource, verb=verb, namespace=namespace
                    ),
                )
            )
            return bool(authz.create_subject_access_review(review).status.allowed)

        # kube-controller-manager's aggregation controller copies the rules into edit/view.
        wait_until(
            lambda: may("alice", "create") and may("bob", "list"),
            timeout_s=30,
            what="surge roles aggregated",
        )
        for verb in ("create", "update", "patch", "delete", "deletecollection", "get", "watch"):
            assert may("alice", verb) and may("alice", verb, "scalingexperiments"), verb
        for verb in ("get", "list", "watch"):
            assert may("bob", verb) and may("bob", verb, "scalingexperiments"), verb
        for verb in ("create", "patch", "delete"):
            assert not may("bob", verb), verb
    finally:
        delete_cluster_rbac(api_client, roles)


# ---- Pod Security: restricted, enforced by the API server ----------------------------------


@pytest.fixture
def restricted_namespace(api_client: client.ApiClient) -> Iterator[str]:
    core: Any = client.CoreV1Api(api_client)
    name = f"e2e-psa-{uuid.uuid4().hex[:10]}"
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    # Pods are refused until their ServiceAccount exists: the chart's and the worker's.
    wait_until(lambda: _exists(core, name, "default"), timeout_s=30, what="default SA")
    for account in ("surge", builders.worker_account("alice")):
        core.create_namespaced_service_account(name, {"metadata": {"name": account}})
    yield name
    core.delete_namespace(name)


def _exists(core: Any, namespace: str, account: str) -> bool:
    try:
        core.read_namespaced_service_account(account, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _pod(name: str, template: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": name, "labels": template.get("metadata", {}).get("labels", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}


def test_every_pod_template_is_admitted_as_restricted(
    api_client: client.ApiClient, restricted_namespace: str
) -> None:
    core: Any = client.CoreV1Api(api_client)
    templates = pod_templates(restricted_namespace)
    assert set(templates) == {"operator Deployment", "worker Job"}
    for i, template in enumerate(templates.values()):
        # PodSecurity enforces on Pods: a Job or Deployment is only warned about.
        core.create_namespaced_pod(
            restricted_namespace, _pod(f"probe-{i}", template), dry_run="All"
        )
    # The workloads themselves are accepted too, without a PodSecurity warning.
    job = worker_job(restricted_namespace)
    out = subprocess.run(
        [str(KUBECTL), "create", "--dry-run=server", "-n", restricted_namespace, "-f", "-"],
        input=yaml.safe_dump(job),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "PodSecurity" not in out.stderr, out.stderr
    deployment = one(render(namespace=restricted_namespace), "Deployment")
    out = subprocess.run(
        [str(KUBECTL), "create", "--dry-run=server", "-f", "-"],
        input=yaml.safe_dump(deployment),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "PodSecurity" not in out.stderr, out.stderr


def test_a_non_restricted_pod_is_rejected(
    api_client: client.ApiClient, restricted_namespace: str
) -> None:
    """The check above can fail: the same worker pod, one field loosened, is refused."""
    core: Any = client.CoreV1Api(api_client)
    template = copy.deepcopy(pod_templates(restricted_namespace)["worker Job"])
    template["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(restricted_namespace, _pod("loose", template), dry_run="All")
    assert refused.value.status == 403
    assert "violates PodSecurity" in str(refused.value.body)
    assert "allowPrivilegeEscalation" in str(refused.value.body)


# ---- least privilege, with the chart's ServiceAccount ---------------------------------------


def _admin_configuration(kubeconfig: Path) -> client.Configuration:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


def sa_token(api: client.ApiClient, namespace: str, name: str, expiry_s: int = 1800) -> str:
    """A TokenRequest token: exactly what the operator's pod would get."""
    req = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiry_s)
    )
    core: Any = client.CoreV1Api(api)
    return str(core.create_namespaced_service_account_token(name, namespace, req).status.token)


def sa_client(kubeconfig: Path, token: str) -> client.ApiClient:
    admin = _admin_configuration(kubeconfig)
    cfg = client.Configuration()
    cfg.host = admin.host
    cfg.ssl_ca_cert = admin.ssl_ca_cert
    cfg.verify_ssl = admin.verify_ssl
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


def sa_kubeconfig(kubeconfig: Path, token: str, path: Path) -> Path:
    admin = _admin_configuration(kubeconfig)
    assert admin.ssl_ca_cert
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": admin.host, "certificate-authority": admin.ssl_ca_cert},
            }
        ],
        "users": [{"name": "surge", "user": {"token": token}}],
        "contexts": [{"name": "surge", "context": {"cluster": "local", "user": "surge"}}],
        "current-context": "surge",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def apply_rbac(api: client.ApiClient, docs: list[dict[str, Any]]) -> None:
    """Create or replace the chart's ServiceAccount and RBAC objects (admin identity)."""
    core: Any = client.CoreV1Api(api)
    rbac: Any = client.RbacAuthorizationV1Api(api)
    suffix = {
        "ServiceAccount": "namespaced_service_account",
        "Role": "namespaced_role",
        "RoleBinding": "namespaced_role_binding",
        "ClusterRole": "cluster_role",
        "ClusterRoleBinding": "cluster_role_binding",
    }
    for d in docs:
        kind, name, ns = d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")
        target = core if kind == "ServiceAccount" else rbac
        where = (ns,) if ns else ()
        try:
            getattr(target, f"create_{suffix[kind]}")(*where, d)
        except ApiException as exc:
            if exc.status != 409:
                raise
            if kind != "ServiceAccount":
                getattr(target, f"replace_{suffix[kind]}")(name, *where, d)


def delete_cluster_rbac(api: client.ApiClient, docs: list[dict[str, Any]]) -> None:
    rbac: Any = client.RbacAuthorizationV1Api(api)
    for d in docs:
        try:
            if d["kind"] == "ClusterRole":
                rbac.delete_cluster_role(d["metadata"]["name"])
            elif d["kind"] == "ClusterRoleBinding":
                rbac.delete_cluster_role_binding(d["metadata"]["name"])
        except ApiException as exc:
            if exc.status != 404:
                raise


def allowed(api: client.ApiClient, rule: Rule, namespace: str | None) -> bool:
    """SelfSubjectAccessReview as the client's own identity."""
    group, resource, verb = rule
    resource, _, sub = resource.partition("/")
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                group=group,
                resource=resource,
                subresource=sub or None,
                verb=verb,
                namespace=namespace,
            )
        )
    )
    authz: Any = client.AuthorizationV1Api(api)
    return bool(authz.create_self_subject_access_review(review).status.allowed)


@dataclass
class Op:
    """One API call the operator (or kopf) makes, and the rules it needs."""

    name: str
    needs: set[Rule]
    call: Callable[[], Any]
    not_found_ok: bool = False  # probes of objects that need not exist: 404 means authorized


@dataclass
class OperatorCalls:
    """The operator's calls, made through surge.operator.kube.client.Kube as the chart's SA."""

    api: client.ApiClient
    namespace: str
    owner: dict[str, Any]
    kube: Kube = field(init=False)

    def __post_init__(self) -> None:
        self.kube = Kube(self.api)

    @staticmethod
    def _watch(list_call: Callable[..., Any], *args: str) -> None:
        """kopf's watch request; the response headers are enough to know it was authorized."""
        resp = list_call(*args, watch=True, timeout_seconds=1, _preload_content=False)
        resp.close()  # never back to the pool: the stream is unread
        resp.release_conn()

    def ops(self) -> list[Op]:
        ns, k, owner = self.namespace, self.kube, self.owner
        name = owner["metadata"]["name"]
        run = "1"
        job = worker_job(ns, name)
        job["metadata"]["ownerReferences"] = [builders.owner_reference(owner)]
        cm = builders.plan_configmap(owner, run, "{}")
        cm_name = cm["metadata"]["name"]
        custom: Any = k.custom
        core: Any = k.core
        sa, role, binding = builders.worker_rbac(owner, run)
        hpa: dict[str, Any] = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "probe"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                "minReplicas": 1,
                "maxReplicas": 2,
            },
        }
        ext: Any = client.ApiextensionsV1Api(self.api)
        event = {
            "metadata": {"generateName": "surge-probe-", "namespace": ns},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "LoadTest",
                "name": name,
                "namespace": ns,
                "uid": owner["metadata"]["uid"],
            },
            "reason": "Probe",
            "message": "rbac probe",
            "type": "Normal",
            "source": {"component": "surge"},
        }
        lt = ("surge.dev", "loadtests")
        child = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LoadTest",
            "metadata": {"name": "probe-child", "namespace": ns},
            "spec": {
                "target": {"url": "http://127.0.0.1:9"},
                "load": {"model": "constant", "stages": [{"duration": "1s", "target": 1}]},
                "suspend": True,
            },
        }
        return [
            Op("list loadtests", {(*lt, "list")}, lambda: k.loadtests(ns)),
            Op(
                "watch loadtests",
                {(*lt, "watch")},
                lambda: self._watch(
                    custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL
                ),
            ),
            Op(
                "patch loadtest (finalizers, progress)",
                {(*lt, "patch")},
                lambda: custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    ns,
                    PLURAL,
                    name,
                    {"metadata": {"annotations": {"surge.dev/probe": uuid.uuid4().hex}}},
                ),
            ),
            Op(
                "patch loadtest status",
                {("surge.dev", "loadtests/status", "patch")},
                lambda: custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, ns, PLURAL, name, {"status": {"message": "rbac probe"}}
                ),
            ),
            Op(
                "post an event",
                {("", "events", "create")},
                lambda: core.create_namespaced_event(ns, event),
            ),
            Op("create plan ConfigMap", {("", "configmaps", "create")}, lambda: k.ensure(cm)),
            Op("read ConfigMap", {("", "configmaps", "get")}, lambda: k.configmap(ns, cm_name)),
            Op(
                "patch ConfigMap startAt",
                {("", "configmaps", "patch")},
                lambda: k.patch_configmap_data(ns, cm_name, {"startAt": "now"}),
            ),
            Op(
                "create worker ServiceAccount",
                {("", "serviceaccounts", "create")},
                lambda: k.ensure(sa),
            ),
            Op(
                # Twice: create, then (409) read back and patch. Granting `get` on a ConfigMap
                # needs `get`.
                "create and patch worker Role",
                {
                    ("rbac.authorization.k8s.io", "roles", "create"),
                    ("rbac.authorization.k8s.io", "roles", "get"),
                    ("rbac.authorization.k8s.io", "roles", "patch"),
                    ("", "configmaps", "get"),
                },
                lambda: (k.ensure(role), k.ensure(role)),
            ),
            Op(
                "create worker RoleBinding",
                {("rbac.authorization.k8s.io", "rolebindings", "create")},
                lambda: k.ensure(binding),
            ),
            Op("create worker Job", {("batch", "jobs", "create")}, lambda: k.ensure(job)),
            Op(
                # After a crash every child exists: each is read back to check its owner.
                "adopt existing children",
                {
                    ("", "serviceaccounts", "create"),
                    ("", "serviceaccounts", "get"),
                    ("rbac.authorization.k8s.io", "rolebindings", "create"),
                    ("rbac.authorization.k8s.io", "rolebindings", "get"),
                    ("", "configmaps", "create"),
                    ("", "configmaps", "get"),
                    ("batch", "jobs", "create"),
                    ("batch", "jobs", "get"),
                },
                lambda: [k.ensure(o) for o in (sa, binding, cm, job)],
            ),
            Op(
                "delete an old run's plan",
                {("", "configmaps", "deletecollection")},
                lambda: k.delete_configmaps(ns, builders.selector(name, "0")),
            ),
            Op(
                "take and give back the target's Lease",
                {
                    ("coordination.k8s.io", "leases", v)
                    for v in ("get", "create", "update", "delete")
                },
                lambda: manage_lease(k, ns),
            ),
            Op(
                "ask whether a target's holder still runs",
                {("surge.dev", "loadtests", "get")},
                lambda: k.loadtest(ns, "missing"),
            ),
            Op(
                "read worker Job",
                {("batch", "jobs", "get")},
                lambda: k.job(ns, job["metadata"]["name"]),
            ),
            Op(
                "list worker pods",
                {("", "pods", "list")},
                lambda: k.pods(ns, builders.selector(name, run)),
            ),
            Op(
                # Kube.pod_log returns None on any error, so the raw call shows a 403.
                "read a worker's log",
                {("", "pods/log", "get")},
                lambda: core.read_namespaced_pod_log(
                    "missing", ns, container="worker", tail_lines=50
                ),
                not_found_ok=True,
            ),
            Op(
                "delete worker Jobs",
                {("batch", "jobs", "list"), ("batch", "jobs", "delete")},
                lambda: k.delete_jobs(ns, builders.selector(name)),
            ),
            Op(
                "read target Deployment",
                {("apps", "deployments", "get")},
                lambda: k.deployment(ns, "missing"),
            ),
            # kopf's observers (rbac.kopfScanning).
            Op(
                "list namespaces",
                {("", "namespaces", "list")},
                lambda: core.list_namespace(limit=1),
            ),
            Op(
                "watch namespaces",
                {("", "namespaces", "watch")},
                lambda: self._watch(core.list_namespace),
            ),
            Op(
                "list CRDs",
                {("apiextensions.k8s.io", "customresourcedefinitions", "list")},
                lambda: ext.list_custom_resource_definition(limit=1),
            ),
            Op(
                "watch CRDs",
                {("apiextensions.k8s.io", "customresourcedefinitions", "watch")},
                lambda: self._watch(ext.list_custom_resource_definition),
            ),
            # kopf peering (operator.peering); the CRD need not exist: 404 means authorized.
            Op(
                "list peerings",
                {("kopf.dev", "kopfpeerings", "list")},
                lambda: custom.list_namespaced_custom_object("kopf.dev", "v1", ns, "kopfpeerings"),
                not_found_ok=True,
            ),
            Op(
                "watch peerings",
                {("kopf.dev", "kopfpeerings", "watch")},
                lambda: self._watch(
                    custom.list_namespaced_custom_object, "kopf.dev", "v1", ns, "kopfpeerings"
                ),
                not_found_ok=True,
            ),
            Op(
                "patch peering",
                {("kopf.dev", "kopfpeerings", "patch")},
                lambda: custom.patch_namespaced_custom_object(
                    "kopf.dev", "v1", ns, "kopfpeerings", "surge", {"status": {}}
                ),
                not_found_ok=True,
            ),
            # ScalingExperiment (rbac.experiments).
            Op(
                "list experiments",
                {("surge.dev", "scalingexperiments", "list")},
                lambda: custom.list_namespaced_custom_object(
                    GROUP, VERSION, ns, "scalingexperiments"
                ),
            ),
            Op(
                "watch experiments",
                {("surge.dev", "scalingexperiments", "watch")},
                lambda: self._watch(
                    custom.list_namespaced_custom_object, GROUP, VERSION, ns, "scalingexperiments"
                ),
            ),
            Op(
                "patch experiment",
                {("surge.dev", "scalingexperiments", "patch")},
                lambda: custom.patch_namespaced_custom_object(
                    GROUP, VERSION, ns, "scalingexperiments", "missing", {"metadata": {}}
                ),
                not_found_ok=True,
            ),
            Op(
                "patch experiment status",
                {("surge.dev", "scalingexperiments/status", "patch")},
                lambda: custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, ns, "scalingexperiments", "missing", {"status": {}}
                ),
                not_found_ok=True,
            ),
            Op(
                "patch the target Deployment's fields",
                {("apps", "deployments", "patch")},
                lambda: k.patch_deployment(
                    ns, "missing", [{"op": "test", "path": "/metadata/uid", "value": "u"}]
                ),
                not_found_ok=True,
            ),
            Op(
                "manage the target's HPA",
                {
                    ("autoscaling", "horizontalpodautoscalers", verb)
                    for verb in ("create", "get", "update", "delete")
                },
                lambda: manage_hpa(k, ns, hpa["spec"]),
            ),
            Op(
                "list the scalers of the target's namespace (two never scale it at once)",
                {
                    ("autoscaling", "horizontalpodautoscalers", "list"),
                    ("keda.sh", "scaledobjects", "list"),
                },
                lambda: (k.hpas(ns), k.scaled_objects(ns)),
            ),
            Op(
                "manage the target's KEDA ScaledObject",
                {
                    ("keda.sh", "scaledobjects", verb)
                    for verb in ("get", "create", "patch", "delete")
                },
                lambda: manage_scaled_object(k, ns),
                not_found_ok=True,  # a cluster without KEDA has no such resource
            ),
            Op(
                "ask whether an experiment holding a target still runs",
                {("surge.dev", "scalingexperiments", "get")},
                lambda: k.experiment(ns, "missing"),
            ),
            Op(
                "manage child LoadTests",
                {("surge.dev", "loadtests", verb) for verb in ("get", "create", "delete")},
                lambda: manage_child(k, ns, child),
            ),
            Op(
                # Also the policy's surge.dev/usable label check of any Secret a spec names.
                "read a Prometheus auth Secret",
                {("", "secrets", "get")},
                lambda: k.secret_value(ns, "missing", "token"),
            ),
            Op(
                # The policy: a target Service of the run's namespace exists; its ClusterIPs.
                "read a target Service",
                {("", "services", "get")},
                lambda: core.read_namespaced_service("missing", ns),
                not_found_ok=True,
            ),
        ]


def manage_hpa(k: Kube, ns: str, spec: dict[str, Any]) -> None:
    k.put_hpa_spec(ns, "probe", spec, {})  # get, create
    k.put_hpa_spec(ns, "probe", {**spec, "maxReplicas": 3}, {})  # get, update
    k.put_hpa_spec(ns, "probe", None, {})  # get, delete


def manage_scaled_object(k: Kube, ns: str) -> None:
    # A new name each time: a deleted one waits on KEDA's finalizer a moment.
    name = f"probe-{uuid.uuid4().hex[:8]}"
    k.scaled_object(ns, name)  # get
    made = k.create_scaled_object(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"scaleTargetRef": {"name": "probe"}, "triggers": [{"type": "cpu",
                     "metricType": "Utilization", "metadata": {"value": "50"}}]},
        }
    )  # fmt: skip
    uid = made["metadata"]["uid"]
    ops = [{"op": "test", "path": "/metadata/uid", "value": uid}]
    k.patch_scaled_object(
        ns, name, [*ops, {"op": "add", "path": "/spec/pollingInterval", "value": 5}]
    )
    k.delete_scaled_object(ns, name, uid)  # delete


def manage_lease(k: Kube, ns: str) -> None:
    holder = target_lease.Holder("LoadTest", ns, "probe", "u", "1")
    key = "url/probe:80"
    obj = target_lease.lease_object(
        ns, target_lease.lease_name(key), key, holder, datetime.now(UTC), 60
    )
    k.create_lease(obj)  # create
    live = k.lease(ns, obj["metadata"]["name"])  # get
    assert live is not None
    obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    assert k.replace_lease(obj)  # update
    target_lease.release(k, target_key=key, run_namespace=ns, holder=holder)  # get, delete


def manage_child(k: Kube, ns: str, child: dict[str, Any]) -> None:
    k.loadtest(ns, "missing")
    k.create_loadtest(child)
    custom: Any = k.custom
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "probe-child")


def run_ops(ops: list[Op]) -> dict[str, int]:
    """Runs every op; returns {op name: HTTP status} for those that failed (403, 500, ...)."""
    failed: dict[str, int] = {}
    for op in ops:
        try:
            op.call()
        except (ApiException, KubeError) as exc:
            if exc.status == 404 and op.not_found_ok:
                continue
            failed[op.name] = int(exc.status or 0)
    return failed


def without(rules: list[dict[str, Any]], target: Rule) -> list[dict[str, Any]]:
    """``rules`` less one verb of one resource; everything else exactly as rendered."""
    group, resource, verb = target
    out: list[dict[str, Any]] = []
    for rule in rules:
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            others = [r for r in rule["resources"] if r != resource]
            if others:
                out.append({**rule, "resources": others})
            rest = [v for v in rule["verbs"] if v != verb]
            if rest:
                out.append({**rule, "resources": [resource], "verbs": rest})
        else:
            out.append(copy.deepcopy(rule))
    return out


def test_operator_rbac_is_exactly_enough(cluster: support.Cluster, namespace: str) -> None:
    admin = cluster.api_client
    docs = [d for d in render(ALL_RBAC, namespace=namespace) if d["kind"] in RBAC_KINDS]
    roles = of_kind(docs, "Role") + of_kind(docs, "ClusterRole")
    assert [r["kind"] for r in roles] == ["Role", "ClusterRole"]
    lt_body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LoadTest",
        "metadata": {"name": "probe"},
        "spec": {
            "target": {"url": "http://127.0.0.1:9"},
            "load": {"model": "constant", "stages": [{"duration": "5s", "target": 1}]},
        },
    }
    custom: Any = client.CustomObjectsApi(admin)
    owner: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, lt_body
    )
    apply_rbac(admin, docs)
    sa_name = one(docs, "ServiceAccount")["metadata"]["name"]
    with sa_client(cluster.kubeconfig, sa_token(admin, namespace, sa_name)) as api:
        try:
            calls = OperatorCalls(api, namespace, owner)
            ops = calls.ops()
            granted = {r: role for role in roles for r in rule_verbs(role["rules"])}
            # Every rule granted is needed by some op, and every op's needs are granted.
            assert set().union(*(op.needs for op in ops)) == set(granted)

            def settled(expect_denied: Rule | None) -> bool:
                return all(
                    allowed(api, r, namespace if role["kind"] == "Role" else None)
                    != (r == expect_denied)
                    for r, role in granted.items()
                )

            # (a) With the rendered RBAC every operation succeeds.
            wait_until(lambda: settled(None), timeout_s=20, what="RBAC in effect")
            assert run_ops(ops) == {}
            assert k8s_objects_exist(admin, namespace)
            # (b) Each single verb removed breaks exactly the operations that need it.
            for target, role in sorted(granted.items()):
                reduced = {**role, "rules": without(role["rules"], target)}
                apply_rbac(admin, [reduced])
                wait_until(
                    lambda t=target: settled(t),  # type: ignore[misc]
                    timeout_s=20,
                    what=f"{target} revoked",
                )
                failed = run_ops(ops)
                needing = {op.name for op in ops if target in op.needs}
                assert needing, target
                assert {n: failed.get(n) for n in needing} == dict.fromkeys(needing, 403), (
                    target,
                    failed,
                )
                apply_rbac(admin, [role])
            wait_until(lambda: settled(None), timeout_s=20, what="RBAC restored")
            assert run_ops(ops) == {}
        finally:
            delete_cluster_rbac(admin, docs)


def k8s_objects_exist(api: client.ApiClient, namespace: str) -> bool:
    """What the SA created in (a) is really there (read back as admin)."""
    core: Any = client.CoreV1Api(api)
    rbac: Any = client.RbacAuthorizationV1Api(api)
    core.read_namespaced_config_map(builders.run_name("probe", "1"), namespace)
    core.read_namespaced_service_account(builders.worker_account("probe"), namespace)
    rbac.read_namespaced_role(builders.worker_account("probe"), namespace)
    rbac.read_namespaced_role_binding(builders.worker_account("probe"), namespace)
    return True


# ---- the operator, as its ServiceAccount, runs a LoadTest end to end -------------------------


class SAOperator(Operator):
    """`surge operator -n NS` whose only credential is the chart ServiceAccount's token."""

    def __init__(self, namespace: str, log: Path, kubeconfig: Path) -> None:
        super().__init__(namespace, log)
        self.kubeconfig = kubeconfig

    def start(self) -> None:
        saved = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = str(self.kubeconfig)  # Operator.start copies os.environ
        try:
            super().start()
        finally:
            if saved is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = saved


def test_operator_runs_a_loadtest_as_its_service_account(
    cluster: support.Cluster, namespace: str, pod_runner: PodRunner, tmp_path: Path
) -> None:
    admin = cluster.api_client
    # kopfScanning on: kopf then meets no 403 at all (off, it logs that it cannot watch
    # namespaces and CRDs, and carries on with the namespaces it was given).
    values = {"rbac": {"kopfScanning": True}}
    docs = [d for d in render(values, namespace=namespace) if d["kind"] in RBAC_KINDS]
    apply_rbac(admin, docs)
    sa_name = one(docs, "ServiceAccount")["metadata"]["name"]
    token = sa_token(admin, namespace, sa_name)
    kubeconfig = sa_kubeconfig(cluster.kubeconfig, token, tmp_path / "sa.kubeconfig")
    with sa_client(kubeconfig=cluster.kubeconfig, token=token) as api:
        wait_until(
            lambda: allowed(api, ("batch", "jobs", "create"), namespace),
            timeout_s=20,
            what="RBAC in effect",
        )
    proc, url = start_agent_process(["--latency", "fixed:20ms"], stderr=subprocess.DEVNULL)
    op = SAOperator(namespace, tmp_path / "operator.log", kubeconfig)
    try:
        op.start()
        create(admin, namespace, loadtest("as-sa", url, load={"workers": 1}))
        obj = wait_phase(admin, namespace, "as-sa", {"Succeeded", "Failed"}, op)
        assert obj["status"]["phase"] == "Succeeded", (obj["status"].get("message"), op.tail())
        assert obj["status"]["workers"]["reported"] == 1
    finally:
        op.stop()
        stop_agent_process(proc)
        delete_cluster_rbac(admin, docs)
    log = op.log.read_text(errors="replace")
    assert not re.search(r"forbidden|not enough permissions", log, re.IGNORECASE), op.tail()
