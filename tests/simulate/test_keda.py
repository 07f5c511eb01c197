"""KEDA's rules as the simulator mirrors them (surge/simulate/keda.py), one test per rule, each
naming the KEDA v2.21.0 function it follows."""

from __future__ import annotations

from typing import Any

import pytest

from surge.api.experiment import ScaledObjectSpec
from surge.simulate.capacity import Pool, Slo
from surge.simulate.errors import SimulationError
from surge.simulate.keda import KedaPlan, KedaScaler, Trigger, plan_scaled_object
from surge.simulate.plan import Pipeline, Settings, plan_hpa
from surge.simulate.run import simulate

SIGNALS: dict[str, Any] = {"queue": "queueDepth", "s0-prometheus": "inFlight"}


def _so(**fields: Any) -> ScaledObjectSpec:
    trigger = {"type": "prometheus", "name": "queue", "metadata": {"threshold": "10"}}
    return ScaledObjectSpec.model_validate({"triggers": [trigger], **fields})


def _plan(lo: int, cooldown: int = 60, polling: int = 10) -> KedaPlan:
    return KedaPlan(lo, polling, cooldown, (Trigger("queue", "queueDepth", 1.0),))


def test_the_hpa_keda_creates() -> None:
    # newHPAForScaledObject: minReplicas max(minReplicaCount, 1) (GetHPAMinReplicas),
    # maxReplicas default 100 (GetHPAMaxReplicas), an External AverageValue metric per
    # trigger with the threshold as its target, behavior passed on.
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 0}}
    keda, hpa = plan_scaled_object(_so(minReplicaCount=0, behavior=behavior), "so", SIGNALS)
    assert (hpa.min_replicas, hpa.max_replicas, hpa.behavior) == (1, 100, behavior)
    (metric,) = hpa.metrics
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "10"}
    assert (keda.polling_s, keda.cooldown_s, keda.min_replica_count) == (30, 300, 0)
    _, hpa = plan_scaled_object(_so(minReplicaCount=3, maxReplicaCount=7), "so", SIGNALS)
    assert (hpa.min_replicas, hpa.max_replicas) == (3, 7)


def test_metric_type_value_and_cpu_triggers() -> None:
    # GetMetricTargetType: a trigger's metricType Value gives a Value target; cpu triggers
    # are Resource metrics (cpu_memory_scaler.go) and never active on their own.
    value = {"type": "metrics-api", "metricType": "Value", "name": "queue",
             "metadata": {"targetValue": "4", "activationTargetValue": "2"}}  # fmt: skip
    cpu = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}
    so = ScaledObjectSpec.model_validate({"triggers": [value, cpu]})
    keda, hpa = plan_scaled_object(so, "so", SIGNALS)
    assert hpa.metrics[0]["external"]["target"] == {"type": "Value", "value": "4"}
    assert hpa.metrics[1]["resource"]["target"]["averageUtilization"] == 60
    assert keda.triggers[0].activation == 2.0 and keda.triggers[1].signal is None
    only_cpu, _ = plan_scaled_object(ScaledObjectSpec.model_validate({"triggers": [cpu]}), "so", {})
    # getScaledObjectState: a ScaledObject of cpu/memory triggers only is always active.
    assert only_cpu.active({"requestRate": 0.0, "inFlight": 0.0, "queueDepth": 0.0})


def test_activation_is_strictly_above_the_threshold() -> None:
    # prometheus_scaler.go GetMetricsAndActivity: `val > activationThreshold`.
    plan = _plan(0)
    assert not plan.active({"requestRate": 9.0, "inFlight": 9.0, "queueDepth": 1.0})
    assert plan.active({"requestRate": 0.0, "inFlight": 0.0, "queueDepth": 1.001})


def test_unknown_trigger_signal_and_type_are_errors_naming_the_fix() -> None:
    with pytest.raises(SimulationError, match=r"spec.simulation.signals.queue: queueDepth"):
        plan_scaled_object(_so(), "so", {})
    kafka = ScaledObjectSpec.model_validate({"triggers": [{"type": "kafka"}]})
    with pytest.raises(SimulationError, match=r"triggers\[0\].type: 'kafka' is not modelled"):
        plan_scaled_object(kafka, "so", SIGNALS)
    no_threshold = ScaledObjectSpec.model_validate({"triggers": [{"type": "prometheus"}]})
    with pytest.raises(SimulationError, match=r"metadata.threshold: required"):
        plan_scaled_object(no_threshold, "so", SIGNALS)


def test_scale_from_zero_to_min_or_one_when_active() -> None:
    # scaleFromZeroOrIdle: max(minReplicaCount, 1); an active poll above 0 changes nothing.
    assert KedaScaler(_plan(0)).poll(0, 0, True) == 1
    assert KedaScaler(_plan(2)).poll(0, 0, True) == 2
    assert KedaScaler(_plan(0)).poll(0, 4, True) == 4


def test_scale_to_zero_after_the_cooldown() -> None:
    # scaleToZeroOrIdle: only with minReplicaCount 0, once lastActiveTime + cooldownPeriod
    # is before now; lastActiveTime is stored with whole seconds, so exactly cooldown later
    # (on the poll grid) it is before now.
    keda = KedaScaler(_plan(0, cooldown=30))
    assert keda.poll(0, 3, True) == 3
    assert [keda.poll(t, 3, False) for t in (10, 20)] == [3, 3]
    assert keda.poll(30, 3, False) == 0
    # Without any active poll yet, initialCooldownPeriod (0) since creation: at once.
    assert KedaScaler(_plan(0)).poll(0, 5, False) == 0
    # minReplicaCount above 0: KEDA leaves scaling down to the HPA.
    assert KedaScaler(_plan(2)).poll(500, 5, False) == 5


def test_inactive_below_min_goes_to_min() -> None:
    # RequestScale: no active trigger and replicas below minReplicaCount: set it.
    assert KedaScaler(_plan(2)).poll(0, 0, False) == 2


def _pool() -> Pool:
    return Pool("gpu", 0.001, 1.0, 1e6, 0.1, 1.0, 0.0, 100, None, None)


def _simulate(so: ScaledObjectSpec, rates: list[float], initial: int) -> list[tuple[int, int]]:
    keda, hpa = plan_scaled_object(so, "so", {"s0-metrics-api": "requestRate"})
    settings = Settings(15, 0.1, 300.0, initial, signals={"s0-metrics-api": "requestRate"})
    plan = plan_hpa("v", _pool(), hpa, settings, "so", keda)
    return simulate(plan, settings, rates, Slo(None, "none")).changes


def test_the_hpa_is_disabled_at_zero_and_keda_polls_first() -> None:
    # The KEDA poll and the HPA sync of one instant: KEDA writes first (its poll is at the
    # instant, the HPA's sync a little after), so an activation at t = 30 is scaled on by
    # the HPA at once; while at 0 the HPA writes nothing (ScalingDisabled).
    trigger = {"type": "metrics-api", "metadata": {"targetValue": "5"}}
    so = ScaledObjectSpec.model_validate(
        {"triggers": [trigger], "minReplicaCount": 0, "pollingInterval": 10, "cooldownPeriod": 0}
    )
    rates = [0.0] * 25 + [23.0] * 35
    # t = 0: inactive, no lastActiveTime: 2 -> 0. t = 30 (reading second 29): active, 0 -> 1,
    # and the HPA's sync of the same instant on: the mean of its period, (10 × 0 + 5 × 23) /
    # 15 = 7.67 over a target of 5 per pod: 2; then 23 / 5: 5, at most max(2 × 2, 4) = 4.
    assert _simulate(so, rates, 2) == [(0, 0), (30, 1), (30, 2), (45, 4)]


def test_with_a_pipeline_a_poll_acts_when_its_write_lands() -> None:
    # The differential test: KEDA's poll writes 0.1-0.5 s after its instant, the HPA reads
    # the scale as its sync starts. A poll at 29.95 and a sync at 30.0: with the write 0.4 s
    # later (30.35) the HPA reads 0 replicas (ScalingDisabled) and scales on only at 45;
    # counted at its instant (second 29) the poll's 0 -> 1 comes first and the HPA scales on
    # at 30.
    trigger = {"type": "metrics-api", "metadata": {"targetValue": "5"}}
    so = ScaledObjectSpec.model_validate(
        {"triggers": [trigger], "minReplicaCount": 0, "pollingInterval": 10}
    )
    keda, hpa = plan_scaled_object(so, "so", {"s0-metrics-api": "requestRate"})
    rates = [0.0] * 20 + [23.0] * 40

    def run(write_s: float) -> list[tuple[int, int]]:
        pipe = Pipeline(15.0, 0.0, 15.0, first_poll_s=9.95, keda_write_s=write_s)
        settings = Settings(15, 0.1, 300.0, 2, pipe)
        plan = plan_hpa("v", _pool(), hpa, settings, "so", keda)
        return simulate(plan, settings, rates, Slo(None, "none")).changes

    assert run(0.0) == [(9, 0), (29, 1), (30, 4), (45, 5)]
    assert run(0.4) == [(10, 0), (30, 1), (45, 4)]
