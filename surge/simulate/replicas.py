"""What each HPA metric asks for, after podautoscaler/replica_calculator.go in Kubernetes.

The simulator spreads traffic evenly over Ready pods, so every pod of a group reports the
same value and the calculator can work on counts instead of pod lists; the integer
arithmetic (milli-units, truncated utilization percent) is upstream's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from surge.api.simulation import Signal, parse_quantity
from surge.simulate.errors import SimulationError

DEFAULT_CPU_UTILIZATION = 80
"""SetDefaults_HorizontalPodAutoscaler: an HPA without metrics targets 80% CPU."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One autoscaling/v2 MetricSpec, as the simulator reads it.

    source: cpu (Resource/ContainerResource cpu), pods (a Pods metric: requests per second
    each pod serves) or external (Object/External: the offered requests per second)."""

    source: Literal["cpu", "pods", "external"]
    target_type: Literal["Utilization", "AverageValue", "Value"]
    target: float
    """Percent for Utilization; cores (cpu) or the signal's unit otherwise."""
    signal: Signal = "requestRate"
    """What a pods/external metric reads (spec.simulation.signals; surge/simulate/signals.py)."""
    rounded: bool = False
    """The value reaches the HPA rounded to milli-units (KEDA's quantityFromFloat64,
    "%.3f"); False: truncated."""


@dataclass(frozen=True, slots=True)
class PodView:
    """The pods at one sync, by what groupPods makes of them."""

    pending: int
    """Phase Pending (waiting for a node): unready for every metric."""
    starting: int
    """Running, not Ready: unready for CPU; no custom-metric series yet (missing)."""
    fresh: int
    """Ready for less than one metric window, inside cpuInitializationPeriod: unready for CPU."""
    ready: int
    """Ready with a full metric window."""
    served_per_pod: float
    """Mean requests per second one Ready pod served over the last window."""
    offered_rps: float
    missing: int = 0
    """Ready, but metrics-server has no sample of it yet (surge/simulate/pipeline.py)."""
    in_flight: float = 0.0
    """Requests in the pods or queued for them, all pods together (signals.py)."""
    queue_depth: float = 0.0
    """Requests queued (the backlog), all pods together."""
    served_now: float | None = None
    """With a pipeline: what each Ready pod served in the second before the sync, what a
    live query of a Pods requestRate metric reads; None: `served_per_pod`."""
    no_series: int | None = None
    """With a pipeline: Ready pods without a Pods-metric series yet (missing for a Pods
    metric, Pipeline.pods_metric_scrape); None: `missing`."""

    def total_of(self, signal: Signal) -> float:
        """The deployment's total of a signal (what an External metric reads)."""
        if signal == "inFlight":
            return self.in_flight
        if signal == "queueDepth":
            return self.queue_depth
        return self.offered_rps

    def per_pod(self, signal: Signal) -> float:
        """What each Ready pod reports (the even split): served requests per second for
        requestRate (the Pods metric's documented meaning), else the total over Ready pods."""
        if signal == "requestRate":
            return self.served_per_pod if self.served_now is None else self.served_now
        pods = self.fresh + self.ready + self.missing
        return self.total_of(signal) / pods if pods else 0.0

    @property
    def total(self) -> int:
        return self.pending + self.starting + self.fresh + self.ready + self.missing


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Tolerances.isWithin: no change while 1 - down <= ratio <= 1 + up."""

    up: float
    down: float

    def within(self, ratio: float) -> bool:
        return 1.0 - self.down <= ratio <= 1.0 + self.up


def parse_metrics(
    raw: list[dict[str, Any]], where: str, signals: Mapping[str, Signal] | None = None
) -> tuple[Metric, ...]:
    """The HPA's metrics; a Pods/Object/External metric reads the signal its metric.name
    has in `signals` (spec.simulation.signals), else requestRate (docs/simulator.md)."""
    if not raw:
        return (Metric("cpu", "Utilization", DEFAULT_CPU_UTILIZATION),)
    out = []
    for i, m in enumerate(raw):
        metric = _metric(m, f"{where}[{i}]")
        if metric.source != "cpu":
            body = m.get({"Pods": "pods", "Object": "object"}.get(m["type"], "external")) or {}
            name = (body.get("metric") or {}).get("name") if isinstance(body, dict) else None
            if isinstance(name, str) and signals and name in signals:
                metric = replace(metric, signal=signals[name])
        out.append(metric)
    return tuple(out)


def _metric(raw: dict[str, Any], where: str) -> Metric:
    kind = raw.get("type")
    key = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods"}
    key |= {"Object": "object", "External": "external"}
    if kind not in key:
        raise SimulationError(
            f"{where}.type: {kind!r}; use Resource, ContainerResource, Pods, Object or External"
        )
    body = raw.get(key[kind])
    if not isinstance(body, dict) or not isinstance(body.get("target"), dict):
        raise SimulationError(f"{where}.{key[kind]}.target: required (type and a value)")
    target = body["target"]
    ttype = target.get("type")
    field = {"Utilization": "averageUtilization", "AverageValue": "averageValue", "Value": "value"}
    if ttype not in field or field[ttype] not in target:
        raise SimulationError(
            f"{where}.{key[kind]}.target: give type Utilization with averageUtilization, "
            "AverageValue with averageValue, or Value with value"
        )
    try:
        value = parse_quantity(target[field[ttype]])
    except ValueError as exc:
        raise SimulationError(f"{where}.{key[kind]}.target.{field[ttype]}: {exc}") from None
    if value <= 0:
        raise SimulationError(f"{where}.{key[kind]}.target.{field[ttype]}: must be above 0")
    if kind in ("Resource", "ContainerResource"):
        if body.get("name") != "cpu":
            raise SimulationError(
                f"{where}.{key[kind]}.name: {body.get('name')!r} is not modelled; the simulator "
                "models cpu and request-rate metrics (docs/simulator.md)"
            )
        if ttype == "Value":
            raise SimulationError(f"{where}.{key[kind]}.target.type: Value is not valid for cpu")
        return Metric("cpu", ttype, value)
    if ttype == "Utilization":
        raise SimulationError(f"{where}.{key[kind]}.target.type: Utilization is for resources")
    if kind == "Pods":
        if ttype != "AverageValue":
            raise SimulationError(f"{where}.pods.target.type: Pods metrics take AverageValue")
        return Metric("pods", ttype, value)
    return Metric("external", ttype, value)


def desired_replicas(
    metric: Metric,
    current: int,
    view: PodView,
    tol: Tolerances,
    *,
    cpu_per_request: float,
    pod_cpu_request: float,
) -> int | None:
    """One metric's proposal (computeReplicasForMetric); None where upstream errors out
    (no pods, or no pod with a usable metric), which leaves the scale unchanged."""
    if view.total == 0:
        return None
    # Quantity.MilliValue() of the target (rounds up): not a truncated float product.
    target_milli = math.ceil(round(metric.target * 1000, 6))
    if metric.source == "external":
        usage = _milli(view.total_of(metric.signal), metric.rounded)
        target = target_milli
        if metric.target_type == "Value":
            # getReadyPodsCount: Running and Ready, with or without a metric of their own.
            ready = view.fresh + view.ready + view.missing
            return usage_ratio_replicas(current, usage / target, ready, tol)
        return external_per_pod_replicas(usage, target, view.total, tol)
    if metric.source == "cpu":
        value = int(view.served_per_pod * cpu_per_request * 1000)
        unready = view.pending + view.starting + view.fresh
        if metric.target_type == "Utilization":
            return resource_replicas(
                current,
                view.ready,
                unready,
                view.missing,
                value,
                int(pod_cpu_request * 1000),
                int(metric.target),
                tol,
            )
        return plain_replicas(current, view.ready, unready, view.missing, value, target_milli, tol)
    value = _milli(view.per_pod(metric.signal), metric.rounded)
    absent = view.missing if view.no_series is None else view.no_series
    ready = view.fresh + view.ready + view.missing - absent
    missing = view.starting + absent
    return plain_replicas(current, ready, view.pending, missing, value, target_milli, tol)


def _milli(x: float, rounded: bool) -> int:
    """A metric value in milli-units as the HPA reads it (Quantity.MilliValue)."""
    return round(x * 1000) if rounded else math.floor(round(x * 1000, 6))


def resource_replicas(
    current: int,
    ready: int,
    unready: int,
    missing: int,
    value: int,
    request: int,
    target_utilization: int,
    tol: Tolerances,
) -> int | None:
    """GetResourceReplicas, on counts: `ready` pods report `value` milli-cores against a
    request of `request`; unready pods count as 0% on a scale-up, missing pods as 0% on a
    scale-up and max(100%, target) on a scale-down; a recount that flips the direction, or
    lands within tolerance, keeps the current count."""
    if ready == 0:
        return None

    def ratio(total: int, pods: int) -> float:  # GetResourceUtilizationRatio
        return ((total * 100) // (pods * request)) / target_utilization

    usage_ratio = ratio(ready * value, ready)
    up_with_unready = unready > 0 and usage_ratio > 1.0
    if not up_with_unready and missing == 0:
        if tol.within(usage_ratio):
            return current
        return math.ceil(usage_ratio * ready)
    total, pods = ready * value, ready
    if missing > 0 and usage_ratio < 1.0:
        total += missing * (request * max(100, target_utilization) // 100)
        pods += missing
    elif missing > 0 and usage_ratio > 1.0:
        pods += missing
    if up_with_unready:
        pods += unready
    return _recount(current, usage_ratio, ratio(total, pods), pods, tol)


def plain_replicas(
    current: int,
    ready: int,
    unready: int,
    missing: int,
    value: int,
    target: int,
    tol: Tolerances,
) -> int | None:
    """calcPlainMetricReplicas (Pods metrics, and cpu AverageValue): like resource_replicas
    with the per-pod mean (integer division, GetMetricUsageRatio); a missing pod counts as
    the target on a scale-down, 0 on a scale-up, and not at all when the ratio is exactly
    1.0 (upstream fills in missing pods only for `usageRatio < 1.0` / `> 1.0`, so the
    recount equals the ratio and the count holds)."""
    if ready == 0:
        return None
    usage_ratio = (ready * value // ready) / target
    up_with_unready = unready > 0 and usage_ratio > 1.0
    if not up_with_unready and missing == 0:
        if tol.within(usage_ratio):
            return current
        return math.ceil(usage_ratio * ready)
    total, pods = ready * value, ready
    if missing > 0 and usage_ratio < 1.0:
        total += missing * target
        pods += missing
    elif missing > 0 and usage_ratio > 1.0:
        pods += missing
    if up_with_unready:
        pods += unready
    return _recount(current, usage_ratio, (total // pods) / target, pods, tol)


def _recount(current: int, old: float, new: float, pods: int, tol: Tolerances) -> int:
    if tol.within(new) or (old < 1.0 < new) or (old > 1.0 > new):
        return current
    proposed = math.ceil(new * pods)
    if (new < 1.0 and proposed > current) or (new > 1.0 and proposed < current):
        return current
    return proposed


def usage_ratio_replicas(current: int, usage_ratio: float, ready: int, tol: Tolerances) -> int:
    """getUsageRatioReplicaCount (Object/External Value targets): scales the Ready pods."""
    if current == 0:
        return math.ceil(usage_ratio)
    if tol.within(usage_ratio):
        return current
    return math.ceil(usage_ratio * ready)


def external_per_pod_replicas(usage: int, target: int, pods: int, tol: Tolerances) -> int:
    """GetExternalPerPodMetricReplicas (AverageValue): the total over the target per pod,
    measured against every pod of the scale (status.replicas)."""
    if tol.within(usage / (target * pods)):
        return pods
    return math.ceil(usage / target)
