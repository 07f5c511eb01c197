"""Pure builders for everything a LoadTest run creates: names, labels, ConfigMap, RBAC, Job.

Names derive from the LoadTest and its runId, so a restarted operator finds what
it created before instead of creating it twice.
"""

from __future__ import annotations

import hashlib
from typing import Any

from surge.api.loadtest import LoadTestSpec
from surge.api.policy import ClusterPolicy
from surge.loadgen.plan import PLAN_SHA256_ENV, header_env_var
from surge.loadgen.processes import PROCESSES_ENV, pod_processes
from surge.operator.experiment.variants import quantities
from surge.operator.policy.limits import worker_resources

LABEL_LOADTEST = "surge.dev/loadtest"
LABEL_RUN = "surge.dev/run"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
PLAN_KEY = "plan.json"
START_KEY = "startAt"
CONTAINER = "worker"


def fit_name(name: str, limit: int = 63) -> str:
    """Kubernetes names are bounded; long ones keep a hash so they stay unique."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-.')}-{digest}"


def run_name(loadtest: str, run_id: str) -> str:
    """The Job and ConfigMap name of one run (Job names feed pod labels: 63 chars)."""
    return fit_name(f"{loadtest}-run-{run_id}", 52)


def worker_account(loadtest: str) -> str:
    return fit_name(f"{loadtest}-surge-worker")


def labels(loadtest: str, run_id: str) -> dict[str, str]:
    return {
        LABEL_LOADTEST: fit_name(loadtest),
        LABEL_RUN: run_id,
        LABEL_COMPONENT: "loadgen",
        LABEL_MANAGED: "surge",
    }


def selector(loadtest: str, run_id: str | None = None) -> str:
    sel = f"{LABEL_LOADTEST}={fit_name(loadtest)}"
    return sel if run_id is None else f"{sel},{LABEL_RUN}={run_id}"


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", "surge.dev/v1alpha1"),
        "kind": owner.get("kind", "LoadTest"),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(name: str, namespace: str, owner: dict[str, Any], lbls: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": lbls,
        "ownerReferences": [owner_reference(owner)],
    }


def owned_configmap(
    owner: dict[str, Any], name: str, lbls: dict[str, str], data: dict[str, str]
) -> dict[str, Any]:
    """A ConfigMap in the owner's namespace, owned by it (garbage-collected with it)."""
    ns = owner["metadata"]["namespace"]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, ns, owner, lbls),
            "data": data}  # fmt: skip


def plan_configmap(owner: dict[str, Any], run_id: str, plan_json: str) -> dict[str, Any]:
    """The run's snapshot: workers read plan.json from it and wait for startAt to appear."""
    name = owner["metadata"]["name"]
    return owned_configmap(
        owner, run_name(name, run_id), labels(name, run_id), {PLAN_KEY: plan_json}
    )


def worker_rbac(owner: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """A ServiceAccount that may read this run's ConfigMap and nothing else."""
    name, ns = owner["metadata"]["name"], owner["metadata"]["namespace"]
    account = worker_account(name)
    lbls = {k: v for k, v in labels(name, run_id).items() if k != LABEL_RUN}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(account, ns, owner, lbls),
            "automountServiceAccountToken": True,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(account, ns, owner, lbls),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["get"],
                    "resourceNames": [run_name(name, run_id)],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(account, ns, owner, lbls),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
        },
    ]


RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}
RESTRICTED_POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _anti_affinity(loadtest: str, run_id: str) -> dict[str, Any]:
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {
                        "matchLabels": {LABEL_LOADTEST: fit_name(loadtest), LABEL_RUN: run_id}
                    },
                }
            ]
        }
    }


def active_deadline_s(spec: LoadTestSpec) -> int:
    """A last-resort stop that holds even when the operator is down."""
    t = spec.timeouts
    return int(t.workers_ready + spec.run_length_s + t.run_grace + 60)


def worker_job(
    owner: dict[str, Any],
    spec: LoadTestSpec,
    run_id: str,
    *,
    image: str,
    command: tuple[str, ...],
    metrics_port: int = 0,
    policy: ClusterPolicy | None = None,
    plan_sha256: str | None = None,
) -> dict[str, Any]:
    """The Indexed Job whose pods are the load generators of one run. The policy's worker
    pool (nodeSelector, tolerations) and default resources fill what the spec leaves out;
    the spec's own placement was admitted against the same policy."""
    policy = policy or ClusterPolicy()
    name, ns = owner["metadata"]["name"], owner["metadata"]["namespace"]
    job_name = run_name(name, run_id)
    lbls = labels(name, run_id)
    placement = spec.load.placement
    env: list[dict[str, Any]] = [
        {"name": "SURGE_RUN_ID", "value": run_id},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if plan_sha256:
        env.append({"name": PLAN_SHA256_ENV, "value": plan_sha256})
    for i, h in enumerate(spec.target.headers):
        if h.value_from is not None:
            ref = h.value_from.secret_key_ref
            env.append(
                {
                    "name": header_env_var(i),
                    "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
                }
            )
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "command": list(command),
        "args": ["--configmap", f"{ns}/{job_name}", "--termination-log", "/dev/termination-log"],
        "env": env,
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    resources = worker_resources(spec, policy)
    if resources:
        container["resources"] = quantities(resources)
    # One sending process per whole core of the worker's CPU (limit, else request), or the
    # spec's processesPerWorker; unset, the pod counts the cores it may use.
    processes = pod_processes(spec, resources)
    if processes is not None:
        env.append({"name": PROCESSES_ENV, "value": str(processes)})
    if metrics_port:
        container["args"] += ["--metrics-port", str(metrics_port)]
        container["ports"] = [{"name": "metrics", "containerPort": metrics_port}]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": worker_account(name),
        "securityContext": RESTRICTED_POD_SECURITY,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        "terminationGracePeriodSeconds": 30,
    }
    pool = policy.placement
    # The pool's keys always hold (the policy refuses other values for them); a spec adds
    # allowed keys of its own.
    node_selector = {**placement.node_selector, **pool.node_selector}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    tolerations = [t.wire() for t in pool.tolerations]
    tolerations += [t for t in placement.tolerations if t not in tolerations]
    if tolerations:
        pod_spec["tolerations"] = tolerations
    affinity = dict(placement.affinity or {})
    if placement.separate:
        affinity.update(_anti_affinity(name, run_id))
    if affinity:
        pod_spec["affinity"] = affinity
    if placement.priority_class_name:
        pod_spec["priorityClassName"] = placement.priority_class_name
    n = spec.load.workers
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": n,
        "parallelism": n,
        # A retried worker would send its share twice, so a failed index is not retried; per
        # index, so one failure does not make the Job controller stop the other workers.
        "backoffLimitPerIndex": 0,
        "activeDeadlineSeconds": active_deadline_s(spec),
        "template": {"metadata": {"labels": lbls}, "spec": pod_spec},
    }
    if spec.cleanup.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.cleanup.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(job_name, ns, owner, lbls),
        "spec": job_spec,
    }
