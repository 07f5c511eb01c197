"""`surge simulate --search`: every HPA on the grid of spec.simulation.search, simulated;
the Pareto front of cost against SLO-violation seconds, and the HPA of the chosen point.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from surge.api.experiment import HpaSpec, ScalingExperimentSpec
from surge.api.simulation import SearchGrid
from surge.simulate.capacity import Slo, pool_for
from surge.simulate.errors import SimulationError
from surge.simulate.plan import Settings, plan_hpa
from surge.simulate.run import Outcome, simulate

MAX_POINTS = 5000
_TARGET_FIELD = {"Utilization": "averageUtilization", "AverageValue": "averageValue"}
_TARGET_FIELD |= {"Value": "value"}


@dataclass(frozen=True, slots=True)
class Candidate:
    hpa: HpaSpec
    outcome: Outcome

    @property
    def cost_key(self) -> float:
        """Cost where a price is known, else replica-seconds (same order on one pool)."""
        cost = self.outcome.cost
        return self.outcome.replica_seconds if cost is None else cost


@dataclass(frozen=True, slots=True)
class SearchResult:
    base: str
    candidates: list[Candidate]
    front: list[Candidate]
    chosen: Candidate
    max_violation_s: float


def grid_points(spec: ScalingExperimentSpec, grid: SearchGrid) -> tuple[int, list[HpaSpec]]:
    """(index of the base variant, the HPA specs of the grid), min > max pairs skipped."""
    names = [v.name for v in spec.variants]
    name = grid.variant or names[0]
    if name not in names:
        raise SimulationError(
            f"spec.simulation.search.variant: {name!r} is not a variant; "
            f"choose from {', '.join(names)}"
        )
    index = names.index(name)
    base = spec.variants[index].hpa
    if base is None:
        raise SimulationError(
            f"spec.simulation.search.variant: {name} has no hpa to start from; pick a variant "
            "with an hpa"
        )
    behavior = base.behavior or {}
    dims: list[list[Any]] = [
        grid.min_replicas or [base.min_replicas or 1],
        grid.max_replicas or [base.max_replicas],
        list(grid.target_utilization) or [None],
        list(grid.scale_up) or [behavior.get("scaleUp")],
        list(grid.scale_down) or [behavior.get("scaleDown")],
        list(grid.scale_up_window) or [None],
        list(grid.scale_down_window) or [None],
    ]
    size = 1
    for d in dims:
        size *= len(d)
    if size > MAX_POINTS:
        raise SimulationError(
            f"spec.simulation.search: {size} points; the limit is {MAX_POINTS}; give fewer "
            "values per list"
        )
    uses_behavior = base.behavior is not None or any(
        (grid.scale_up, grid.scale_down, grid.scale_up_window, grid.scale_down_window)
    )
    out: list[HpaSpec] = []
    for lo, hi, target, up, down, up_w, down_w in itertools.product(*dims):
        if lo > hi:
            continue
        spec_b: dict[str, Any] | None = None
        if uses_behavior:
            spec_b = {}
            for key, rules, window in (("scaleUp", up, up_w), ("scaleDown", down, down_w)):
                if rules is not None or window is not None:
                    spec_b[key] = copy.deepcopy(rules or {})
                    if window is not None:
                        spec_b[key]["stabilizationWindowSeconds"] = int(window)
        metrics = _with_target(base.metrics, target)
        out.append(HpaSpec(min_replicas=lo, max_replicas=hi, metrics=metrics, behavior=spec_b))
    return index, out


def _with_target(metrics: list[dict[str, Any]], target: int | None) -> list[dict[str, Any]]:
    """The metrics with the first one's target value replaced (an empty list means the
    default, 80% CPU, written out so the value can change)."""
    out = copy.deepcopy(metrics) or [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]
    if target is None:
        return out if metrics else []
    first = out[0]
    body = next((v for k, v in first.items() if k != "type" and isinstance(v, dict)), None)
    tgt = (body or {}).get("target")
    if not isinstance(tgt, dict) or tgt.get("type") not in _TARGET_FIELD:
        raise SimulationError(
            "spec.simulation.search.targetUtilization: the base variant's first metric has no "
            "target to vary; give it a target (averageUtilization, averageValue or value)"
        )
    field = _TARGET_FIELD[tgt["type"]]
    tgt[field] = target if field == "averageUtilization" else str(target)
    return out


def pareto(candidates: list[Candidate]) -> list[Candidate]:
    """The points no other point beats on both SLO-violation seconds and cost."""
    ranked = sorted(candidates, key=lambda c: (c.outcome.violation_s, c.cost_key))
    front: list[Candidate] = []
    best = float("inf")
    for c in ranked:
        if c.cost_key < best:
            front.append(c)
            best = c.cost_key
    return front


def choose(front: list[Candidate], max_violation_s: float) -> Candidate:
    """The cheapest point within the allowed violation, else the fewest violations."""
    ok = [c for c in front if c.outcome.violation_s <= max_violation_s]
    if ok:
        return min(ok, key=lambda c: (c.cost_key, c.outcome.violation_s))
    return min(front, key=lambda c: (c.outcome.violation_s, c.cost_key))


def run_search(
    spec: ScalingExperimentSpec,
    settings: Settings,
    rates: list[float],
    slo: Slo,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> SearchResult:
    grid = (spec.simulation.search if spec.simulation else None) or SearchGrid()
    index, hpas = grid_points(spec, grid)
    variant = spec.variants[index]
    pool = pool_for(spec, index, variant, overrides)
    candidates: list[Candidate] = []
    for i, hpa in enumerate(hpas):
        name = f"{variant.name}-s{i + 1}"
        plan = plan_hpa(name, pool, hpa, settings, f"spec.simulation.search (point {i + 1})")
        candidates.append(Candidate(hpa, simulate(plan, settings, rates, slo)))
    if not candidates:
        raise SimulationError("spec.simulation.search: every point has minReplicas > maxReplicas")
    front = pareto(candidates)
    chosen = choose(front, grid.max_violation_seconds)
    return SearchResult(variant.name, candidates, front, chosen, grid.max_violation_seconds)


def hpa_manifest(spec: ScalingExperimentSpec, hpa: HpaSpec) -> dict[str, Any]:
    """The autoscaling/v2 HorizontalPodAutoscaler to apply for a chosen point."""
    target = spec.target_ref
    body: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": target.deployment,
        },
        **hpa.wire(),
    }
    if not body.get("metrics"):
        body.pop("metrics", None)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target.hpa or target.deployment},
        "spec": body,
    }
