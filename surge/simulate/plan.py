"""From a ScalingExperiment spec to what the clock runs: one VariantPlan per variant.

Every check that needs the whole spec (a variant without an HPA, an unknown pool, an
unsupported metric) happens here, before anything runs, with the field and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from surge.api.experiment import HpaSpec, ScalingExperimentSpec, Variant
from surge.api.simulation import Signal, Simulation
from surge.simulate.capacity import Pool, pool_for
from surge.simulate.errors import SimulationError
from surge.simulate.hpa import Behavior, parse_behavior
from surge.simulate.keda import KedaPlan, plan_scaled_object
from surge.simulate.replicas import Metric, Tolerances, parse_metrics


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The metrics pipeline as the HPA sees it, for comparing with a real cluster
    (surge/simulate/pipeline.py): metrics-server scrapes every `scrape_s` seconds from
    `scrape_offset_s` on, each scrape reading a pod's CPU usage at that instant, and the
    HPA's first sync is at `first_sync_s` (seconds on the trace clock)."""

    scrape_s: float
    scrape_offset_s: float
    first_sync_s: float
    first_metric_scrape: int = 2
    """The scrape (counted from the pod's creation) after which a pod has a metric: 2 for a
    kubelet (metrics-server needs two points); 3 for kwok, whose CPU counter starts at 0 at
    the first scrape, a point metrics-server drops."""
    first_poll_s: float = 0.0
    """KEDA's first poll of a ScaledObject (when it is created; its HPA syncs first one
    sync period later). With a pipeline, Pods/External metrics and KEDA's polls read the
    signal of the second before the instant, as a live query does, not a period's mean."""
    keda_write_s: float = 0.0
    """How long after its instant a KEDA poll's write lands (it first fetches the metric,
    then reads and writes the scale; the differential test measured 0.1-0.5 s), while the
    HPA reads the scale as its sync starts: the order of a poll and a sync is that of the
    poll's write and the sync's instant."""
    pods_metric_scrape: int | None = None
    """The scrape (counted from the pod's creation, on the same ticker) from which a pod has
    a Pods metric (a custom-metrics series); None: `first_metric_scrape`. The Pods
    differential test gives a pod its annotation from its second scrape on (a Prometheus
    rate() needs two samples), and its value is the live one of the second before the sync."""
    creation_poll_s: float | None = None
    """One poll before the loop of `first_poll_s`: KEDA's poll at the ScaledObject's
    creation when the test then restarts the loop by changing its spec (a new generation
    starts a new scale loop, scale_handler.go HandleScalableObject), so that polls and the
    HPA's syncs never fall on one instant."""


@dataclass(frozen=True, slots=True)
class Settings:
    sync_s: int
    tolerance: float
    downscale_window_s: float
    initial_replicas: int | None
    pipeline: Pipeline | None = None
    """None: the HPA syncs at t = syncPeriod, 2 × syncPeriod, … and reads the exact mean of
    the last sync period (docs/simulator.md)."""
    configurable_tolerance: bool = True
    """The HPAConfigurableTolerance feature gate (tolerancesForHpa): with it, a behavior's
    scaleUp/scaleDown `tolerance` replaces the controller's. Beta and on by default since
    Kubernetes 1.35 (alpha and off in 1.33-1.34): False mirrors an older controller."""
    signals: dict[str, Signal] = field(default_factory=dict)
    """spec.simulation.signals: metric or trigger name -> the signal it reads."""


@dataclass(frozen=True, slots=True)
class VariantPlan:
    name: str
    pool: Pool
    min_replicas: int
    max_replicas: int
    metrics: tuple[Metric, ...]
    behavior: Behavior | None
    tolerances: Tolerances
    hpa: dict[str, Any]
    """The HPA spec in its wire form (what the YAML output shows); for a ScaledObject, the
    HPA KEDA creates."""
    keda: KedaPlan | None = None
    """KEDA's scale loop, for a ScaledObject variant."""


def settings_of(spec: ScalingExperimentSpec) -> Settings:
    sim = spec.simulation or Simulation()
    if sim.sync_period < 1 or sim.sync_period != int(sim.sync_period):
        raise SimulationError(
            f"spec.simulation.syncPeriod: {sim.sync_period:g}s; use whole seconds, e.g. 15s"
        )
    return Settings(
        int(sim.sync_period),
        sim.tolerance,
        sim.downscale_stabilization,
        sim.initial_replicas,
        signals=dict(sim.signals),
    )


def plan_variant(
    spec: ScalingExperimentSpec,
    index: int,
    variant: Variant,
    settings: Settings,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> VariantPlan:
    where = f"spec.variants[{index}]"
    if variant.scaled_object is not None:
        pool = pool_for(spec, index, variant, overrides)
        at = f"{where}.scaledObject"
        keda, hpa = plan_scaled_object(variant.scaled_object, at, settings.signals)
        return plan_hpa(variant.name, pool, hpa, settings, f"{at} (its HPA)", keda)
    if variant.hpa is None:
        raise SimulationError(
            f"{where} ({variant.name}) has no hpa or scaledObject: the simulator replays HPA "
            f"and KEDA decisions; give it {where}.hpa (minReplicas, maxReplicas, metrics, "
            "behavior) or .scaledObject, or leave it out with --variant NAME for the others"
        )
    pool = pool_for(spec, index, variant, overrides)
    return plan_hpa(variant.name, pool, variant.hpa, settings, f"{where}.hpa")


def plan_hpa(
    name: str,
    pool: Pool,
    hpa: HpaSpec,
    settings: Settings,
    where: str,
    keda: KedaPlan | None = None,
) -> VariantPlan:
    behavior = parse_behavior(hpa.behavior, f"{where}.behavior", settings.downscale_window_s)
    up = down = None
    if behavior is not None and settings.configurable_tolerance:  # tolerancesForHpa
        up, down = behavior.up.tolerance, behavior.down.tolerance
    return VariantPlan(
        name=name,
        pool=pool,
        min_replicas=hpa.min_replicas or 1,
        max_replicas=hpa.max_replicas,
        metrics=_metrics(hpa, where, settings, keda is not None),
        behavior=behavior,
        tolerances=Tolerances(
            settings.tolerance if up is None else up, settings.tolerance if down is None else down
        ),
        hpa=hpa.wire(),
        keda=keda,
    )


def _metrics(hpa: HpaSpec, where: str, settings: Settings, keda: bool) -> tuple[Metric, ...]:
    metrics = parse_metrics(hpa.metrics, f"{where}.metrics", settings.signals)
    # KEDA serves each value as a quantity of "%.3f" (quantityFromFloat64): rounded.
    return tuple(replace(m, rounded=keda and m.source == "external") for m in metrics)


def plan_all(
    spec: ScalingExperimentSpec,
    only: list[str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> tuple[Settings, list[VariantPlan]]:
    """The settings and the plans of the chosen variants (all by default)."""
    settings = settings_of(spec)
    names = [v.name for v in spec.variants]
    for name in only or []:
        if name not in names:
            raise SimulationError(
                f"--variant {name}: no such variant; choose from {', '.join(names)}"
            )
    plans = [
        plan_variant(spec, i, v, settings, overrides)
        for i, v in enumerate(spec.variants)
        if not only or v.name in only
    ]
    return settings, plans
