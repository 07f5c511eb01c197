"""The ScalingExperiment resource: one load, several scaling configurations, one recommendation.

The operator runs it (operator/experiment/reconcile.py); docs/experiments.md describes the runs,
the restore guarantees, the cost formula and the ranking.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from surge.api.base import API_VERSION, Model
from surge.api.bounds import (
    MAX_COUNT,
    MAX_ITEMS,
    MAX_PRICE,
    MAX_RUNS,
    MAX_VARIANTS,
    Key,
    TreeMap,
    json_size,
)
from surge.api.durations import Duration
from surge.api.experiment_status import ScalingExperimentStatus
from surge.api.loadtest import LoadTestSpec, Name, ObjectMeta, PositiveInt
from surge.api.placement import check_resources
from surge.api.simulation import Simulation


class TargetRef(Model):
    deployment: Name
    hpa: Name | None = None
    """The HPA scaling the Deployment, if any; variants may replace its spec."""
    scaled_object: Name | None = None
    """The KEDA ScaledObject scaling the Deployment, if any; variants with `scaledObject`
    write its fields (it is created if missing)."""


MAX_SCALER_BYTES = 32 * 1024
"""A variant's HPA metrics and behavior, or its ScaledObject triggers and behavior, as
compact JSON: status.step copies them twice, and etcd holds 1.5 MiB an object."""


class HpaSpec(Model):
    min_replicas: PositiveInt | None = None
    max_replicas: PositiveInt
    metrics: list[TreeMap] = Field(default_factory=list, max_length=MAX_ITEMS)
    """autoscaling/v2 MetricSpec list, as in an HPA."""
    behavior: TreeMap | None = None
    """autoscaling/v2 HorizontalPodAutoscalerBehavior."""

    @model_validator(mode="after")
    def _range(self) -> HpaSpec:
        if self.min_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) exceeds maxReplicas ({self.max_replicas})"
            )
        # status.step holds the HPA spec twice (hpaWritten, hpaInForce), as for ScaledObjects.
        size = json_size([self.metrics, self.behavior])
        if size > MAX_SCALER_BYTES:
            raise ValueError(
                f"metrics and behavior are {size:,} bytes as JSON, more than "
                f"{MAX_SCALER_BYTES:,}; an HPA's metrics are a few hundred bytes each"
            )
        return self


class ScaledObjectSpec(Model):
    """The fields of a KEDA ScaledObject (keda.sh/v1alpha1) a variant sets; each one given is
    owned by the variant while it runs, the rest stay the owner's (docs/experiments.md)."""

    triggers: list[TreeMap] = Field(min_length=1, max_length=MAX_ITEMS)
    """KEDA triggers as in a ScaledObject: `{type: prometheus, metadata: {...}}`; the
    cluster policy decides which types and servers are allowed."""
    min_replica_count: int | None = Field(None, ge=0, le=MAX_COUNT)
    """0 lets KEDA scale the Deployment to zero (through the triggers' activation)."""
    max_replica_count: PositiveInt | None = None
    polling_interval: int | None = Field(None, ge=1, le=3600)
    """Seconds between KEDA's checks of the triggers (activation, scale to and from 0)."""
    cooldown_period: int | None = Field(None, ge=0, le=86400)
    """Seconds after the last active trigger before KEDA scales to minReplicaCount 0."""
    behavior: TreeMap | None = None
    """advanced.horizontalPodAutoscalerConfig.behavior: the behavior of the HPA KEDA makes."""

    @field_validator("triggers")
    @classmethod
    def _triggers(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, t in enumerate(v):
            if not isinstance(t.get("type"), str) or not t["type"]:
                raise ValueError(f"[{i}]: a trigger needs a type, e.g. prometheus or cpu")
            if "metadata" in t and not isinstance(t["metadata"], dict):
                raise ValueError(f"[{i}].metadata: must be a map of strings, as in KEDA")
        return v

    @model_validator(mode="after")
    def _range(self) -> ScaledObjectSpec:
        lo, hi = self.min_replica_count, self.max_replica_count
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"minReplicaCount ({lo}) exceeds maxReplicaCount ({hi})")
        # status.step holds them twice (as written, and in the spec in force): unbounded,
        # the experiment outgrows etcd's 1.5 MiB and its status is never written again.
        size = json_size([self.triggers, self.behavior])
        if size > MAX_SCALER_BYTES:
            raise ValueError(
                f"triggers and behavior are {size:,} bytes as JSON, more than "
                f"{MAX_SCALER_BYTES:,}; KEDA triggers are a few hundred bytes each"
            )
        return self


# A variant's name is also the value of the surge.dev/variant label on its child LoadTest:
# a label value's limit, so a long name is refused here, not by a 422 after Apply.
VariantName = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
]


class Variant(Model):
    name: VariantName
    node_selector: dict[Key, Key] | None = Field(None, max_length=MAX_ITEMS)
    tolerations: list[TreeMap] | None = Field(None, max_length=MAX_ITEMS)
    affinity: TreeMap | None = None
    resources: TreeMap | None = None
    """Container resources, e.g. {limits: {nvidia.com/gpu: 1}}."""
    replicas: PositiveInt | None = None
    env: list[TreeMap] | None = Field(None, max_length=256)
    hpa: HpaSpec | None = None
    scaled_object: ScaledObjectSpec | None = None
    """A KEDA ScaledObject for the run (needs spec.targetRef.scaledObject); a variant sets
    an HPA or a ScaledObject, never both: two scalers on one Deployment fight."""
    cost_per_replica_hour: float | None = Field(None, ge=0, le=MAX_PRICE)

    @model_validator(mode="after")
    def _one_scaler(self) -> Variant:
        if self.hpa is not None and self.scaled_object is not None:
            raise ValueError(
                "set hpa or scaledObject, not both: two scalers on one Deployment undo each "
                "other's replicas (KEDA's own HPA would fight the plain one)"
            )
        return self

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_resources(v)

    @field_validator("env")
    @classmethod
    def _env(cls, v: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for i, e in enumerate(v or []):
            if not isinstance(e.get("name"), str) or not e["name"]:
                raise ValueError(f"[{i}]: an env entry needs a name, as in a container's env")
            source = e.get("valueFrom")
            if source is None:
                continue
            if not isinstance(source, dict):
                raise ValueError(
                    f"[{i}].valueFrom: must be a map, e.g. {{secretKeyRef: {{name: s, key: k}}}}"
                )
            for kind, ref in source.items():
                if not isinstance(ref, dict) or not isinstance(ref.get("name", ""), str):
                    raise ValueError(
                        f"[{i}].valueFrom.{kind}: must be a map with a string name, "
                        "as in a container's env"
                    )
        return v


class Cost(Model):
    per_pool: dict[Key, Annotated[float, Field(ge=0, le=MAX_PRICE)]] = Field(
        default_factory=dict, max_length=MAX_ITEMS
    )
    """Price per replica-hour by the value of the pool label (e.g. {gpu: 2.5, cpu: 0.1})."""
    pool_label: Key = "surge.dev/pool"
    currency: Annotated[str, Field(max_length=16)] = "USD"


class Budget(Model):
    max_replica_hours: float | None = Field(None, gt=0, le=1e9)
    max_gpu_hours: float | None = Field(None, gt=0, le=1e9)


class ScalingExperimentSpec(Model):
    target_ref: TargetRef
    load_test: LoadTestSpec
    variants: list[Variant] = Field(min_length=1, max_length=MAX_VARIANTS)
    baseline: Key | None = None
    repetitions: int = Field(1, ge=1, le=10)
    cost: Cost = Field(default_factory=Cost)
    objective: Literal["cheapest-passing", "lowest-p95", "highest-sustainable-rate"] = (
        "cheapest-passing"
    )
    cooldown: Duration = 60.0
    rollout_timeout: Duration = 300.0
    timeout: Duration = 4 * 3600.0
    """The whole experiment; past it the current variant is stopped and the original restored."""
    budget: Budget | None = None
    dry_run: bool = False
    """Compute and show the patches without applying anything."""
    simulation: Simulation | None = None
    """Inputs of `surge simulate` (docs/simulator.md); with liveTopK, the operator ranks the
    variants by simulation and runs only the top K live (docs/experiments.md)."""

    @model_validator(mode="after")
    def _names(self) -> ScalingExperimentSpec:
        runs = len(self.variants) * self.repetitions
        if runs > MAX_RUNS:
            raise ValueError(
                f"{len(self.variants)} variants × {self.repetitions} repetitions is {runs} runs, "
                f"more than {MAX_RUNS} (each is a row of status); split the experiment"
            )
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(dupes)}")
        for i, v in enumerate(self.variants):
            if v.hpa is not None and self.target_ref.hpa is None:
                raise ValueError(
                    f"variants[{i}].hpa needs spec.targetRef.hpa, the name of the "
                    "HPA to change (it is created if missing)"
                )
            if v.scaled_object is not None and self.target_ref.scaled_object is None:
                raise ValueError(
                    f"variants[{i}].scaledObject needs spec.targetRef.scaledObject, the name "
                    "of the KEDA ScaledObject to change (it is created if missing)"
                )
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(
                f"baseline {self.baseline!r} is not a variant name; "
                f"choose one of {', '.join(names)}"
            )
        return self


class ScalingExperiment(Model):
    api_version: Literal["surge.dev/v1alpha1"] = API_VERSION  # type: ignore[assignment]
    kind: Literal["ScalingExperiment"] = "ScalingExperiment"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ScalingExperimentSpec
    status: ScalingExperimentStatus | None = None
