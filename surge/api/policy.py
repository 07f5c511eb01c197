"""The cluster policy: what the cluster admin allows every LoadTest and ScalingExperiment.

A custom resource grants nothing its author lacks. The admin sets this policy through the
chart (`policy:` in values.yaml), which renders it into the operator's policy file; the
operator reads it once at start (`--policy FILE`, `SURGE_POLICY_FILE`). No spec field can
widen it. Every field has a safe default, so an operator started without a file is strict:
its own loadgen image only, targets that are Services of the run's own namespace, its own
Prometheus, no worker placement beyond the pool's, and the caps below.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from kubernetes.utils import parse_quantity
from pydantic import Field, field_validator, model_validator

from surge.api.base import Model
from surge.api.bounds import (
    MAX_ITEMS,
    MAX_SWEEP_STEPS,
    MAX_TREE_BYTES,
    MAX_TREE_DEPTH,
    MAX_VARIANTS,
)
from surge.api.durations import Duration

USABLE_SECRET_LABEL = "surge.dev/usable"
"""A Secret a LoadTest may name (headers, Prometheus auth) carries this label set to "true"."""
EXPERIMENT_TARGET_ANNOTATION = "surge.dev/experiment-target"
"""A Deployment a ScalingExperiment may change carries this annotation set to "true"."""


@dataclass(frozen=True)
class Violation:
    field: str
    """The spec field at fault, e.g. spec.target.url."""
    rule: str
    """The policy rule it breaks, e.g. targets.cidrs."""
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} (policy.{self.rule}); ask your cluster admin"


class PolicyViolation(Exception):
    """A spec asks for something the cluster policy does not allow; nothing was created."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(str(v) for v in violations))
        self.violations = violations


class TargetPolicy(Model):
    """Where Surge and its workers may send requests: target, readiness and metrics URLs."""

    same_namespace_services: bool = True
    """Services of the run's own namespace, by name (`svc`, `svc.ns`, `svc.ns.svc...`)."""
    hosts: list[str] = Field(default_factory=list)
    """Further host names, as globs (`*.staging.example.com`); their resolved addresses must
    also lie in `cidrs`."""
    cidrs: list[str] = Field(default_factory=list)
    """Address ranges (`10.0.0.0/8`, `127.0.0.0/8`) a literal IP or a resolved name may be in."""
    cross_namespace: bool = False
    """Whether target.deploymentRef may name another namespace than the resource's own."""

    @field_validator("cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for i, text in enumerate(v):
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(
                    f"[{i}]: {text!r} is not an address range like 10.0.0.0/8"
                ) from None
        return v


class Toleration(Model):
    """A toleration workers may carry; a spec's toleration must equal one of these."""

    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None


class PlacementPolicy(Model):
    """Where worker pods may run. `nodeSelector`/`tolerations` here are also the pool every
    worker gets when its spec asks for none."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    """The worker pool: put on every worker pod unless the spec names an allowed one."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """The worker pool's tolerations, put on every worker pod."""
    allowed_node_selectors: dict[str, list[str]] = Field(default_factory=dict)
    """Further nodeSelector keys a spec may set, each with the values allowed ("*": any)."""
    allowed_tolerations: list[Toleration] = Field(default_factory=list)
    """Further tolerations a spec may set (besides the pool's)."""
    priority_classes: list[str] = Field(default_factory=list)
    """priorityClassName values a spec may set (empty: none)."""
    allow_affinity: bool = False
    """Whether spec.load.placement.affinity is allowed (it can reach any node)."""


class ResourceList(Model):
    cpu: str | None = None
    memory: str | None = None


class WorkerResources(Model):
    requests: ResourceList = Field(default_factory=lambda: ResourceList(cpu="250m", memory="256Mi"))
    limits: ResourceList = Field(default_factory=lambda: ResourceList(memory="1Gi"))

    @model_validator(mode="after")
    def _request_within_limit(self) -> WorkerResources:
        # The API server refuses such a pod: every LoadTest would wait out workersReady.
        for name in ("cpu", "memory"):
            asked, most = getattr(self.requests, name), getattr(self.limits, name)
            if asked is None or most is None:
                continue
            if parse_quantity(asked) > parse_quantity(most):  # type: ignore[no-untyped-call]
                raise ValueError(
                    f"requests.{name} ({asked}) is above limits.{name} ({most}); "
                    "a pod's request may not exceed its limit"
                )
        return self


class Caps(Model):
    """Limits a spec cannot raise (its own spec.safety may only lower them). null: no cap."""

    max_rate: float | None = Field(1000.0, gt=0)
    """Peak arrival rate of an open-model LoadTest, req/s."""
    max_users: int | None = Field(1000, ge=1)
    """Peak virtual users of a closed-model LoadTest."""
    max_duration: Duration | None = 3600.0
    """How long a LoadTest's load may run: its stages (a sweep: its steps, plus one
    scenario.timeout each for their last replies)."""
    max_wait: Duration | None = 3600.0
    """The longest of each wait a run holds its workers or its target's Lease through:
    timeouts.workersReady, runGrace, analysis, targetReady, the readiness timeout and
    scenario.timeout (timeouts.queued holds nothing and is not capped)."""
    max_workers: int | None = Field(20, ge=1)
    max_in_flight: int | None = Field(10000, ge=1)
    max_concurrent_runs_per_namespace: int | None = Field(5, ge=1)
    """LoadTests of one namespace past admission and not yet ended."""
    max_experiment_replicas: int | None = Field(20, ge=1)
    """Replicas (and HPA maxReplicas) a ScalingExperiment variant may write."""
    max_gpus_per_pod: int | None = Field(0, ge=0)
    """Accelerators per pod (every extended resource: nvidia.com/gpu, MIG slices,
    google.com/tpu, ...), in variants and worker resources."""
    worker_cpu: str | None = "4"
    """The most CPU a worker may request or be limited to."""
    worker_memory: str | None = "4Gi"
    max_sweep_steps: int | None = Field(100, ge=1, le=MAX_SWEEP_STEPS)
    """Steps of a capacity sweep (geometric steps from startRate to maxRate, plus
    bisections), counted by formula."""
    max_body_bytes: int | None = Field(65536, ge=1, le=MAX_TREE_BYTES)
    """spec.scenario.body as compact JSON (a string body: its UTF-8 bytes)."""
    max_body_depth: int | None = Field(32, ge=1, le=MAX_TREE_DEPTH)
    """Nesting levels of spec.scenario.body and of each dataset row."""
    max_variants: int | None = Field(20, ge=1, le=MAX_VARIANTS)
    """Variants of one ScalingExperiment (each is a run, a status row, a plan entry)."""
    max_experiment_timeout: Duration | None = 24 * 3600.0
    """spec.timeout of a ScalingExperiment: how long it may hold its target."""


class ScaledObjectPolicy(Model):
    """Whether ScalingExperiment variants may write KEDA ScaledObjects, and which triggers.

    A trigger makes KEDA (with KEDA's own credentials) read a metric source, so the policy
    names the trigger types allowed; a `prometheus` trigger's serverAddress must be one of
    the policy's prometheusUrls (or the operator's own), and a trigger's authenticationRef
    must name one of `triggerAuthentications`."""

    allow: bool = False
    """Off by default: an experiment may change only HPAs until the admin opts in."""
    trigger_types: list[str] = Field(
        default_factory=lambda: ["prometheus", "cpu", "memory"], max_length=MAX_ITEMS
    )
    trigger_authentications: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    """TriggerAuthentication names (in the experiment's namespace) a trigger may reference."""


class ClusterPolicy(Model):
    images: list[str] = Field(default_factory=list)
    """Worker images a spec may name; the operator's loadgen image is always allowed (and is
    the only one when this is empty)."""
    targets: TargetPolicy = Field(default_factory=TargetPolicy)
    prometheus_urls: list[str] = Field(default_factory=list)
    """Prometheus URLs a spec may name; the operator's own is always allowed."""
    placement: PlacementPolicy = Field(default_factory=PlacementPolicy)
    caps: Caps = Field(default_factory=Caps)
    scaled_objects: ScaledObjectPolicy = Field(default_factory=ScaledObjectPolicy)
    """KEDA ScaledObjects written by experiments (opt-in; caps.maxExperimentReplicas bounds
    their maxReplicaCount as it bounds an HPA's maxReplicas)."""
    worker_resources: WorkerResources = Field(default_factory=WorkerResources)
    """Worker requests/limits when the spec sets none (requests keep workers from being the
    first evicted, and let quotas that demand requests admit them); a limit the spec's own
    resources leave out is this one, raised to the spec's request of that resource."""
    allow_custom_queries: bool = False
    """Whether spec.prometheus.queries may replace the operator's PromQL (a query can read
    any series of the Prometheus, other tenants' included, into the LoadTest's status)."""
    require_secret_label: bool = True
    """Secrets (headers, Prometheus auth, variants' env) and dataset ConfigMaps need
    `surge.dev/usable: "true"` to be named by a spec."""
    require_experiment_annotation: bool = True
    """Deployments need `surge.dev/experiment-target: "true"` to be changed by experiments."""
    verify_plan_hash: bool = True
    """Workers also refuse a plan whose SHA-256 is not the one the operator stored (the
    operator itself always does: it builds the Job and queries Prometheus from the plan)."""


def parse_policy(data: dict[str, Any] | None) -> ClusterPolicy:
    """The policy from its file's content (YAML/JSON object). Raises pydantic.ValidationError."""
    return ClusterPolicy.model_validate(data or {})
