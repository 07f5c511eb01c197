"""A KEDA ScaledObject, as KEDA v2.21.0 runs it: the HPA it makes, and its own scale loop.

KEDA turns a ScaledObject into an autoscaling/v2 HPA (controllers/keda/hpa.go
newHPAForScaledObject): minReplicas max(minReplicaCount, 1) (GetHPAMinReplicas),
maxReplicas maxReplicaCount else 100 (GetHPAMaxReplicas), one External metric per trigger
(AverageValue unless the trigger's metricType says Value, the threshold as its target;
cpu triggers as Resource metrics, cpu_memory_scaler.go), and the behavior of
advanced.horizontalPodAutoscalerConfig. The HPA controller does the rest while the
Deployment has replicas (surge/simulate/hpa.py). Below one replica KEDA scales itself, every
pollingInterval (`KedaScaler.poll`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from surge.api.experiment import HpaSpec, ScaledObjectSpec
from surge.api.simulation import Signal, parse_quantity
from surge.simulate.errors import SimulationError

DEFAULT_POLLING_S = 30
"""apis/keda/v1alpha1/withtriggers_types.go defaultPollingInterval."""
DEFAULT_COOLDOWN_S = 300
"""pkg/scaling/executor/scale_executor.go defaultCooldownPeriod."""
DEFAULT_MAX_REPLICAS = 100
"""apis/keda/v1alpha1/scaledobject_types.go defaultHPAMaxReplicas."""
INITIAL_COOLDOWN_S = 0
"""defaultInitialCooldownPeriod: with no lastActiveTime, an inactive object scales to 0 at once."""

# type -> (the threshold field, the activation field) in the trigger's metadata.
THRESHOLDS = {
    "prometheus": ("threshold", "activationThreshold"),
    "metrics-api": ("targetValue", "activationTargetValue"),
}


@dataclass(frozen=True, slots=True)
class Trigger:
    """One trigger as KEDA's scale loop sees it: the signal it reads and its activation."""

    key: str
    """Its name in spec.simulation.signals: the trigger's name, else s<index>-<type>."""
    signal: Signal | None
    """None for a cpu trigger (a Resource metric: never active on its own)."""
    activation: float


@dataclass(frozen=True, slots=True)
class KedaPlan:
    min_replica_count: int
    polling_s: int
    cooldown_s: int
    triggers: tuple[Trigger, ...]

    def active(self, values: Mapping[Signal, float]) -> bool:
        """getScaledObjectState: active when any External trigger's value exceeds its
        activation (GetMetricsAndActivity: `val > activationThreshold`); a ScaledObject
        whose triggers are all cpu/memory is always active."""
        external = [t for t in self.triggers if t.signal is not None]
        if not external:
            return True
        return any(values[t.signal] > t.activation for t in external if t.signal is not None)


def _number(meta: dict[str, Any], field: str, where: str, default: float | None) -> float:
    raw = meta.get(field)
    if raw is None:
        if default is None:
            raise SimulationError(f"{where}.metadata.{field}: required (the HPA's target)")
        return default
    try:
        return parse_quantity(raw)
    except ValueError as exc:
        raise SimulationError(f"{where}.metadata.{field}: {exc}") from None


def _trigger(
    raw: dict[str, Any], index: int, where: str, signals: Mapping[str, Signal]
) -> tuple[Trigger, dict[str, Any]]:
    """The trigger and its HPA metric (prometheus_scaler.go, metrics_api_scaler.go
    GetMetricSpecForScaling; cpu_memory_scaler.go)."""
    kind = raw["type"]
    meta = raw.get("metadata") or {}
    metric_type = raw.get("metricType", "AverageValue")
    if kind == "cpu":
        if metric_type not in ("Utilization", "AverageValue"):
            raise SimulationError(
                f"{where}.metricType: {metric_type!r}; use Utilization or AverageValue"
            )
        value = meta.get("value")
        if value is None:
            raise SimulationError(f"{where}.metadata.value: required for a cpu trigger")
        target: dict[str, Any] = (
            {"type": "Utilization", "averageUtilization": int(_number(meta, "value", where, None))}
            if metric_type == "Utilization"
            else {"type": "AverageValue", "averageValue": str(value)}
        )
        metric = {"type": "Resource", "resource": {"name": "cpu", "target": target}}
        return Trigger(f"s{index}-cpu", None, 0.0), metric
    if kind not in THRESHOLDS:
        known = ", ".join([*THRESHOLDS, "cpu"])
        raise SimulationError(
            f"{where}.type: {kind!r} is not modelled; the simulator models {known} triggers"
        )
    if metric_type not in ("AverageValue", "Value"):
        raise SimulationError(f"{where}.metricType: {metric_type!r}; use AverageValue or Value")
    threshold_field, activation_field = THRESHOLDS[kind]
    threshold = _number(meta, threshold_field, where, None)
    if threshold <= 0:
        raise SimulationError(f"{where}.metadata.{threshold_field}: must be above 0")
    activation = _number(meta, activation_field, where, 0.0)
    key = raw.get("name") or f"s{index}-{kind}"
    if key not in signals:
        raise SimulationError(
            f"{where}: no signal for trigger {key!r}; add spec.simulation.signals.{key}: "
            "queueDepth, inFlight or requestRate (what its query measures)"
        )
    field = "averageValue" if metric_type == "AverageValue" else "value"
    metric = {
        "type": "External",
        "external": {
            "metric": {"name": key},
            "target": {"type": metric_type, field: f"{threshold:g}"},
        },
    }
    return Trigger(key, signals[key], activation), metric


def plan_scaled_object(
    so: ScaledObjectSpec, where: str, signals: Mapping[str, Signal]
) -> tuple[KedaPlan, HpaSpec]:
    """The scale loop's parameters and the HPA KEDA creates for `so`."""
    triggers, metrics = [], []
    for i, raw in enumerate(so.triggers):
        trigger, metric = _trigger(raw, i, f"{where}.triggers[{i}]", signals)
        triggers.append(trigger)
        metrics.append(metric)
    lo = so.min_replica_count if so.min_replica_count is not None else 0
    hpa: dict[str, Any] = {
        "minReplicas": max(lo, 1),
        "maxReplicas": so.max_replica_count or DEFAULT_MAX_REPLICAS,
        "metrics": metrics,
    }
    if so.behavior is not None:
        hpa["behavior"] = so.behavior
    plan = KedaPlan(
        min_replica_count=lo,
        polling_s=so.polling_interval or DEFAULT_POLLING_S,
        cooldown_s=so.cooldown_period if so.cooldown_period is not None else DEFAULT_COOLDOWN_S,
        triggers=tuple(triggers),
    )
    return plan, HpaSpec.model_validate(hpa)


class KedaScaler:
    """KEDA's scale loop for one ScaledObject (pkg/scaling/scale_handler.go startScaleLoop →
    checkScalers → executor RequestScale), polled every pollingInterval from its creation.
    Times are seconds on the simulation clock."""

    def __init__(self, plan: KedaPlan) -> None:
        self.plan = plan
        self.last_active: float | None = None
        """status.lastActiveTime: None until the first active poll."""

    def poll(self, now: float, current: int, active: bool) -> int:
        """RequestScale (scale_scaledobjects.go): the replicas to write, `current` for none.

        Active: from 0 to max(minReplicaCount, 1) (scaleFromZeroOrIdle); lastActiveTime =
        now either way. Inactive: with minReplicaCount 0 and replicas up, to 0 once
        lastActiveTime + cooldownPeriod is before now (scaleToZeroOrIdle; with no
        lastActiveTime, creation + initialCooldownPeriod 0: at once); below
        minReplicaCount, to it. lastActiveTime is stored in status with whole seconds, so a
        poll exactly cooldownPeriod after the last active one finds it before now."""
        lo = self.plan.min_replica_count
        if active:
            self.last_active = now
            return max(lo, 1) if current == 0 else current
        if current > 0 and lo == 0:
            since = self.last_active if self.last_active is not None else now - INITIAL_COOLDOWN_S
            cooldown = self.plan.cooldown_s if self.last_active is not None else INITIAL_COOLDOWN_S
            return 0 if now - since >= cooldown else current
        if current < lo:
            return lo
        return current


def describe(plan: KedaPlan, hpa: dict[str, Any]) -> dict[str, Any]:
    """KEDA's parameters after defaulting and the HPA it makes, for the output."""
    return {
        "minReplicaCount": plan.min_replica_count,
        "pollingIntervalSeconds": plan.polling_s,
        "cooldownPeriodSeconds": plan.cooldown_s,
        "triggers": [
            {"name": t.key, "signal": t.signal, "activation": t.activation} for t in plan.triggers
        ],
        "hpa": hpa,
    }


def summary_line(name: str, keda: dict[str, Any]) -> str:
    """One line for the terminal: what KEDA does for this variant."""
    hpa = keda["hpa"]
    triggers = ", ".join(
        f"{t['name']} ({t['signal'] or 'cpu'}, active above {t['activation']:g})"
        for t in keda["triggers"]
    )
    return (
        f"{name} (KEDA): minReplicaCount {keda['minReplicaCount']}, pollingInterval "
        f"{keda['pollingIntervalSeconds']}s, cooldownPeriod {keda['cooldownPeriodSeconds']}s; "
        f"its HPA {hpa.get('minReplicas', 1)}..{hpa['maxReplicas']}; triggers: {triggers}"
    )
