"""spec.simulation of a ScalingExperiment: what `surge simulate` needs that a live run measures.

The simulator (surge/simulate, docs/simulator.md) replays the load through a model of the
HPA controller; these fields give it the controller's flags and each pool's capacity.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from surge.api.base import Model
from surge.api.bounds import MAX_COUNT, MAX_ITEMS, MAX_RATE, MAX_VARIANTS, Key, TreeMap
from surge.api.durations import Duration
from surge.api.loadtest import Name, PositiveInt

_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|k|M|G)?\s*$")
_SUFFIX = {None: 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}


def parse_quantity(value: Any) -> float:
    """A Kubernetes decimal quantity ("250m", "1", "1.5", 2) as a float. ValueError on others."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity; write e.g. 250m or 2")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative; a quantity is at least 0")
        return float(value)
    match = _QUANTITY.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a quantity; write e.g. 250m (0.25) or 2")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def _coerce_quantity(value: Any) -> float:
    try:
        q = parse_quantity(value)
    except ValueError as exc:
        # "duration" errors are printed as they are by manifests.describe_errors.
        raise PydanticCustomError("duration", str(exc)) from None
    if not q <= MAX_QUANTITY:  # NaN too
        raise PydanticCustomError("duration", f"{value!r} is not a quantity up to {MAX_QUANTITY:g}")
    return q


MAX_QUANTITY = 1e9


Quantity = Annotated[
    float,
    BeforeValidator(_coerce_quantity),
    PlainSerializer(lambda v: f"{v:g}", return_type=str),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]
"""A decimal Kubernetes quantity (CPU cores, requests per second): 250m, 1, 1.5."""


class PoolCapacity(Model):
    """What one replica on this pool can do (a capacity sweep measures it)."""

    cpu_per_request: Quantity
    """CPU time one request costs, in core-seconds (50m: 0.05 s of one core)."""
    pod_cpu_request: Quantity | None = None
    """The pod's CPU request (the denominator of CPU utilization); default: the variant's
    resources.requests.cpu."""
    max_rps: float | None = Field(None, gt=0, le=MAX_RATE)
    """Requests per second one ready pod serves at saturation; default podCpuRequest /
    cpuPerRequest."""
    base_latency: Duration | None = None
    """p95 latency at light load; default ln(20) / maxRps (an M/M/1 server)."""
    startup: Duration = 30.0
    """From a pod being scheduled on a node to it being Ready (image pull, model load)."""
    node_provisioning: Duration = 0.0
    """How long a new node takes to join when no node has room (0: always room)."""
    pods_per_node: PositiveInt = 1
    initial_nodes: int | None = Field(None, ge=0, le=MAX_COUNT)
    """Nodes up at the start; default: just enough for the initial replicas."""
    slots: PositiveInt | None = None
    """Requests one pod serves at once (GPU slots, a model API's concurrency); with
    serviceTime, the pod is a fluid queue: maxRps = slots / serviceTime, latency =
    serviceTime + queue wait (docs/simulator.md, "Queue model"). Unset: the M/M/1 shape."""
    service_time: Duration | None = None
    """How long one request holds a slot (needs slots)."""

    @model_validator(mode="after")
    def _slots(self) -> PoolCapacity:
        if (self.slots is None) != (self.service_time is None):
            raise ValueError(
                "slots and serviceTime go together: give both (a pod serving `slots` requests "
                "at once, each for serviceTime), or neither"
            )
        if self.service_time is not None and self.service_time <= 0:
            raise ValueError("serviceTime: must be above 0, e.g. 2s")
        return self


class SearchGrid(Model):
    """The grid `surge simulate --search` tries around one variant; empty lists keep its value."""

    variant: Name | None = None
    """The variant whose pool, metrics and behavior the grid starts from; default the first."""
    min_replicas: list[PositiveInt] = Field(default_factory=list, max_length=MAX_ITEMS)
    max_replicas: list[PositiveInt] = Field(default_factory=list, max_length=MAX_ITEMS)
    target_utilization: list[Annotated[int, Field(ge=1, le=MAX_COUNT)]] = Field(
        default_factory=list, max_length=MAX_ITEMS
    )
    """Values for the first metric's target (averageUtilization, averageValue or value)."""
    scale_up: list[TreeMap] = Field(default_factory=list, max_length=MAX_ITEMS)
    """Candidate behavior.scaleUp rules (autoscaling/v2 HPAScalingRules)."""
    scale_down: list[TreeMap] = Field(default_factory=list, max_length=MAX_ITEMS)
    """Candidate behavior.scaleDown rules."""
    scale_up_window: list[Duration] = Field(default_factory=list, max_length=MAX_ITEMS)
    scale_down_window: list[Duration] = Field(default_factory=list, max_length=MAX_ITEMS)
    max_violation_seconds: float = Field(0.0, ge=0, le=1e9)
    """The chosen point is the cheapest with at most this many SLO-violation seconds."""


Signal = Literal["requestRate", "inFlight", "queueDepth"]
"""What a metric reads from the simulated load (docs/simulator.md, "Signals")."""


class Simulation(Model):
    sync_period: Duration = 15.0
    """--horizontal-pod-autoscaler-sync-period of the kube-controller-manager."""
    initial_replicas: PositiveInt | None = None
    """Replicas at t = 0 (all Ready); default: each variant's minReplicas."""
    tolerance: float = Field(0.1, ge=0, lt=1)
    """--horizontal-pod-autoscaler-tolerance."""
    downscale_stabilization: Duration = 300.0
    """--horizontal-pod-autoscaler-downscale-stabilization (used when behavior leaves the
    scale-down window unset)."""
    capacity: dict[Key, PoolCapacity] = Field(default_factory=dict, max_length=MAX_ITEMS)
    """By the value of the pool label (spec.cost.poolLabel) in each variant's nodeSelector;
    variants without that label use 'default'."""
    signals: dict[Key, Signal] = Field(default_factory=dict, max_length=MAX_ITEMS)
    """What each custom metric reads, by name: an HPA Pods/Object/External metric.name, or
    a ScaledObject trigger's name (else `s<index>-<type>`, KEDA's metric name), e.g.
    {alice_queue_depth: queueDepth, alice_inflight: inFlight}. requestRate: requests per
    second; inFlight: requests in service plus queued (Little's law); queueDepth: queued.
    An HPA metric not named here reads requestRate (its documented meaning); a KEDA
    trigger not named here is an error."""
    search: SearchGrid | None = None
    live_top_k: int | None = Field(None, ge=1, le=MAX_VARIANTS)
    """The operator simulates every variant first and runs only the K best by the objective
    live (the baseline too); the rest are recorded as predictions. Unset: all run live."""
