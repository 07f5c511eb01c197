"""Simulate, then confirm: with spec.simulation.liveTopK the experiment replays its own load
through `surge simulate` for every variant before anything is applied, ranks the predictions
by the objective and runs only the top K live (the baseline too). Pure: the frozen spec in,
status rows out, no API calls (docs/experiments.md, "Simulate, then confirm").
"""

from __future__ import annotations

import math
from typing import Literal

from surge.api.experiment import ScalingExperimentSpec
from surge.api.experiment_status import (
    MAX_PREDICTED_POINTS,
    MAX_PREDICTED_TOTAL,
    ComparisonRow,
    Prediction,
)
from surge.operator.experiment.variants import Objective
from surge.simulate.capacity import Slo, slo_of
from surge.simulate.errors import SimulationError
from surge.simulate.plan import Settings, VariantPlan, plan_all
from surge.simulate.run import Point, simulate
from surge.simulate.trace import from_stages

__all__ = [
    "SimulationError",
    "check",
    "live_spec",
    "predict",
    "predicted_series",
    "rank",
    "select",
    "summary",
    "with_predicted",
]


def _sig(x: float | None, digits: int = 6) -> float | None:
    """Six significant digits, as `surge simulate` prints them; None for inf/NaN."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _live_top_k(spec: ScalingExperimentSpec) -> int | None:
    return spec.simulation.live_top_k if spec.simulation is not None else None


def _plans(spec: ScalingExperimentSpec) -> tuple[Settings, list[VariantPlan], Slo]:
    for i, v in enumerate(spec.variants):
        # Checked here, worded for the operator: the simulator's own message names a CLI flag.
        if v.hpa is None and v.scaled_object is None:
            raise SimulationError(
                f"spec.variants[{i}].hpa: {v.name} has neither an hpa nor a scaledObject, and "
                "spec.simulation.liveTopK ranks the variants by replaying their autoscalers; "
                "give it one, or unset liveTopK"
            )
    settings, plans = plan_all(spec)
    return settings, plans, slo_of(spec)


def _check_load(spec: ScalingExperimentSpec) -> None:
    """The runs replay the loadTest's own curve; a trace in a ConfigMap or Prometheus is read
    by each run's admission, after this point, so there is no curve to simulate yet."""
    trace = spec.load_test.load.trace
    if trace is not None and not trace.resolved:
        where = "configMapRef" if trace.config_map_ref is not None else "prometheus"
        raise SimulationError(
            f"spec.loadTest.load.trace.{where}: the curve is read when each run starts, and "
            "spec.simulation.liveTopK simulates before that; give the curve inline as "
            "load.trace.points ({tSeconds, rps} for each CSV line), or unset liveTopK"
        )


MAX_VARIANT_SECONDS = 720_000
"""Variants × seconds of load the operator simulates for liveTopK at the default 15 s sync
(about 1 s of CPU: the simulator steps each variant through each second of the load)."""
SYNC_COST_S = 9.0
"""A sync costs about this many simulated seconds of stepping (measured: 1.4 µs a
variant-second plus 12.6 µs a sync), so shorter sync periods weigh more."""


def sync_weight(sync_period_s: float) -> float:
    """The cost of a variant-second at this sync period relative to the default 15 s."""
    return (1 + SYNC_COST_S / sync_period_s) / (1 + SYNC_COST_S / 15.0)


def check(spec: ScalingExperimentSpec) -> None:
    """Cheap (nothing is simulated): raises SimulationError, naming the field, when liveTopK
    is set and the spec cannot be simulated, so a queued experiment fails at once."""
    if _live_top_k(spec) is None:
        return
    _check_load(spec)
    sync = spec.simulation.sync_period if spec.simulation is not None else 15.0
    seconds = math.ceil(spec.load_test.load.duration_s)
    work = len(spec.variants) * seconds * sync_weight(sync)
    if work > MAX_VARIANT_SECONDS:
        raise SimulationError(
            f"spec.simulation.liveTopK: {len(spec.variants)} variants × {seconds}s of load at "
            f"a {sync:g}s sync is {work:,.0f} variant-seconds (at a 15s sync's cost) to "
            f"simulate, more than the operator does ({MAX_VARIANT_SECONDS:,}); run "
            "`surge simulate` locally, or simulate fewer variants, a shorter load or a "
            "longer syncPeriod"
        )
    _plans(spec)


def predicted_series(
    timeline: list[Point], end_s: float, cap: int = MAX_PREDICTED_POINTS
) -> tuple[list[list[float]], float]:
    """The simulated timeline as [seconds since the load began, replicas] at each change
    (the first point always kept), at most `cap` points, and up to when it is complete:
    `end_s` (the load's length), or the time of the first change left out."""
    out: list[list[float]] = []
    for p in timeline:
        if out and out[-1][1] == p.replicas:
            continue
        if len(out) == cap:
            return out, float(p.t)
        out.append([float(p.t), float(p.replicas)])
    return out, end_s


def predict(spec: ScalingExperimentSpec) -> list[Prediction]:
    """Every variant under the loadTest's stages, unranked (rank 0, not live). Raises
    SimulationError naming the field when the spec cannot be simulated."""
    _check_load(spec)
    settings, plans, slo = _plans(spec)
    rates = from_stages(spec.load_test.load).rates
    # Every prediction's series shares MAX_PREDICTED_TOTAL points, so status stays small.
    cap = max(2, min(MAX_PREDICTED_POINTS, MAX_PREDICTED_TOTAL // max(1, len(plans))))
    out: list[Prediction] = []
    for plan in plans:
        o = simulate(plan, settings, rates, slo)
        series, series_end = predicted_series(o.timeline, float(len(rates)), cap)
        out.append(
            Prediction(
                variant=plan.name,
                rank=0,
                live=False,
                selection="Skipped",
                pool=plan.pool.name,
                cost=_sig(o.cost),
                cost_per1k_requests=_sig(o.cost_per_1k),
                replica_seconds=_sig(o.replica_seconds) or 0.0,
                slo_violation_seconds=o.violation_s,
                p95_ms=_sig(o.p95_max * 1000.0, 4),
                sustainable_rps=_sig(plan.max_replicas * plan.pool.rps_at_slo(slo.p95_s)) or 0.0,
                replica_series=series,
                replica_series_end_s=series_end,
            )
        )
    return out


def rank(predictions: list[Prediction], objective: Objective) -> list[Prediction]:
    """Best first, with `rank` set (1 = best). Cost means the predicted cost when every
    variant has a price, else replica-seconds (a missing price makes costs incomparable).

    - cheapest-passing: zero SLO-violation seconds first, by cost; then the rest by
      violation seconds, then cost;
    - lowest-p95: zero violation seconds first, then by the worst predicted p95;
    - highest-sustainable-rate: zero violation seconds first, then by the highest
      sustainable rate (maxReplicas × the per-replica rate within the SLO).
    Ties go to the cheaper, then to the name."""
    priced = all(p.cost is not None for p in predictions)

    def cost(p: Prediction) -> float:
        return p.cost if priced and p.cost is not None else p.replica_seconds

    def key(p: Prediction) -> tuple[float, ...]:
        failing = 1.0 if p.slo_violation_seconds > 0 else 0.0
        if objective == "lowest-p95":
            p95 = p.p95_ms if p.p95_ms is not None else math.inf
            return (failing, p95, p.slo_violation_seconds, cost(p))
        if objective == "highest-sustainable-rate":
            return (failing, -p.sustainable_rps, p.slo_violation_seconds, cost(p))
        return (float(p.slo_violation_seconds), cost(p))

    ordered = sorted(predictions, key=lambda p: (key(p), p.variant))
    return [p.model_copy(update={"rank": i}) for i, p in enumerate(ordered, start=1)]


def select(spec: ScalingExperimentSpec) -> list[Prediction]:
    """The ranked predictions with the live ones marked: the top liveTopK and the baseline.
    Empty when liveTopK is unset (every variant runs live, nothing is simulated)."""
    k = _live_top_k(spec)
    if k is None:
        return []
    out: list[Prediction] = []
    for p in rank(predict(spec), spec.objective):
        top = p.rank <= k
        base = p.variant == spec.baseline
        selection: Literal["TopK", "Baseline", "Skipped"] = (
            "TopK" if top else "Baseline" if base else "Skipped"
        )
        out.append(p.model_copy(update={"live": top or base, "selection": selection}))
    return out


def live_spec(spec: ScalingExperimentSpec, predictions: list[Prediction]) -> ScalingExperimentSpec:
    """The spec the runs follow: only the live variants, in the spec's order (so a, b, a, b
    still spreads drift). No predictions: the spec as it is."""
    if not predictions:
        return spec
    live = {p.variant for p in predictions if p.live}
    return spec.model_copy(update={"variants": [v for v in spec.variants if v.name in live]})


def summary(spec: ScalingExperimentSpec, predictions: list[Prediction]) -> str:
    """One line for the Simulated Event and the Accepted condition; "" without liveTopK."""
    k = _live_top_k(spec)
    if k is None or not predictions:
        return ""
    live = [p.variant for p in predictions if p.selection == "TopK"]
    base = [p.variant for p in predictions if p.selection == "Baseline"]
    skipped = [p.variant for p in predictions if not p.live]
    line = f"simulated {len(predictions)} variants, running top {k} live: {', '.join(live)}"
    if base:
        line += f" (and the baseline {base[0]})"
    return line + (f"; skipped: {', '.join(skipped)}" if skipped else "")


def with_predicted(rows: list[ComparisonRow], predictions: list[Prediction]) -> list[ComparisonRow]:
    """The comparison rows with each live variant's prediction beside its measurements."""
    by_name = {p.variant: p for p in predictions}
    out: list[ComparisonRow] = []
    for row in rows:
        p = by_name.get(row.name)
        if p is None:
            out.append(row)
            continue
        update = {
            "predicted_cost": p.cost,
            "predicted_cost_per1k_requests": p.cost_per1k_requests,
            "predicted_p95_ms": p.p95_ms,
            "predicted_slo_violation_seconds": p.slo_violation_seconds,
            "predicted_rank": p.rank,
        }
        out.append(row.model_copy(update=update))
    return out
