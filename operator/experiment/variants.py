"""ScalingExperiment variants as pure functions: desired specs, restores, cost and ranking.

The original Deployment and HPA specs are snapshotted once; every variant's spec is
computed from that snapshot (never from the live object), so variants never leak into
each other and restoring is writing the snapshot back.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from statistics import mean
from typing import Any, Literal

from surge.api.experiment import Cost, HpaSpec, Variant
from surge.api.experiment_status import COMPARED, ComparisonRow, RunRow

Objective = Literal["cheapest-passing", "lowest-p95", "highest-sustainable-rate"]


def quantities(resources: dict[str, Any]) -> dict[str, Any]:
    """Resource quantities as strings ("1", "500m"): YAML reads `nvidia.com/gpu: 1` as an
    int, and the API (and its Python client) take quantities as strings."""
    return {
        part: {k: str(v) for k, v in (values or {}).items()}
        if part in ("requests", "limits")
        else values
        for part, values in resources.items()
    }


def apply_variant(original: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """The Deployment spec a variant runs with (camelCase JSON, as the API serves it).

    Semantics (those of a strategic merge patch): nodeSelector, tolerations and affinity
    replace the original's when given; resources replace requests/limits of the first
    container key by key; env entries merge by name; replicas apply when set.
    """
    spec = copy.deepcopy(original)
    pod = spec.setdefault("template", {}).setdefault("spec", {})
    if variant.node_selector is not None:
        pod["nodeSelector"] = dict(variant.node_selector)
    if variant.tolerations is not None:
        pod["tolerations"] = list(variant.tolerations)
    if variant.affinity is not None:
        pod["affinity"] = dict(variant.affinity)
    container = (pod.get("containers") or [{}])[0]
    if variant.resources is not None:
        res = container.setdefault("resources", {})
        wanted = quantities(variant.resources)
        for part in ("requests", "limits"):
            if part in wanted:
                res[part] = {**(res.get(part) or {}), **wanted[part]}
    if variant.env is not None:
        env = {e["name"]: e for e in container.get("env") or []}
        env.update({e["name"]: e for e in variant.env})
        container["env"] = list(env.values())
    if variant.replicas is not None:
        spec["replicas"] = variant.replicas
    return spec


def apply_hpa(
    original: dict[str, Any] | None, hpa: HpaSpec | None, deployment: str
) -> dict[str, Any] | None:
    """The HPA spec (autoscaling/v2) a variant runs with; None keeps the original as is."""
    if hpa is None:
        return None
    spec: dict[str, Any] = (
        copy.deepcopy(original)
        if original
        else {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        }
    )
    spec["maxReplicas"] = hpa.max_replicas
    if hpa.min_replicas is not None:
        spec["minReplicas"] = hpa.min_replicas
    if hpa.metrics:
        spec["metrics"] = list(hpa.metrics)
    if hpa.behavior is not None:
        spec["behavior"] = dict(hpa.behavior)
    return spec


def price_per_replica_hour(variant: Variant, cost: Cost) -> float | None:
    """The variant's own price, else its pool's (from nodeSelector[cost.poolLabel])."""
    if variant.cost_per_replica_hour is not None:
        return variant.cost_per_replica_hour
    pool = (variant.node_selector or {}).get(cost.pool_label)
    return cost.per_pool.get(pool) if pool is not None else None


def run_cost(
    replica_seconds: float | None, price: float | None, requests: int | None
) -> tuple[float | None, float | None, float | None]:
    """(replicaHours, cost, costPer1kRequests): replicaHours = replica-seconds / 3600;
    cost = replicaHours × price; costPer1kRequests = cost / (requests / 1000). None where an
    input is missing."""
    hours = None if replica_seconds is None else replica_seconds / 3600.0
    total = None if hours is None or price is None else hours * price
    per_1k = None if total is None or not requests else total / (requests / 1000.0)
    return hours, total, per_1k


@dataclass(frozen=True)
class Spread:
    mean: float
    low: float
    high: float

    def overlaps(self, other: Spread) -> bool:
        return self.low <= other.high and other.low <= self.high


def spread(values: list[float | None]) -> Spread | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return None
    return Spread(mean(known), min(known), max(known))


def aggregate(name: str, runs: list[RunRow]) -> ComparisonRow:
    """One row of the comparison table: mean and [low, high] of each metric over
    repetitions; passed only when every repetition passed."""
    values: dict[str, Any] = {}
    for key in COMPARED:
        s = spread([getattr(r, key) for r in runs])
        values[key] = None if s is None else s.mean
        values[f"{key}_range"] = None if s is None else [s.low, s.high]
    return ComparisonRow(
        name=name,
        repetitions=len(runs),
        passed=bool(runs) and all(r.passed for r in runs),
        **values,
    )


_METRIC_OF: dict[str, str] = {
    "cheapest-passing": "cost_per1k_requests",
    "lowest-p95": "p95_ms",
    "highest-sustainable-rate": "achieved_rps",
}


def _key(row: ComparisonRow, objective: Objective) -> tuple[float, ...]:
    value = getattr(row, _METRIC_OF[objective])
    if objective == "highest-sustainable-rate":
        return (0 if row.passed else 1, -(value if value is not None else -math.inf))
    return (0 if row.passed else 1, value if value is not None else math.inf)


def rank(rows: list[ComparisonRow], objective: Objective) -> list[ComparisonRow]:
    """Rows best first: passing variants before failing ones, then by the objective."""
    return sorted(rows, key=lambda r: (_key(r, objective), r.name))


def recommendation(ranked: list[ComparisonRow], objective: Objective) -> str:
    """One line: the winner, why, and whether the runner-up is statistically apart."""
    passing = [r for r in ranked if r.passed]
    if not passing:
        return "No variant met the SLO; none is recommended."
    best = passing[0]
    field = _METRIC_OF[objective]
    alias = ComparisonRow.model_fields[field].alias or field
    value = getattr(best, field)
    shown = "n/a" if value is None else f"{value:.4g}"
    line = f"{best.name}: passes the SLO with the best {alias} ({shown})"
    if len(passing) > 1:
        other = passing[1]
        a, b = getattr(best, f"{field}_range"), getattr(other, f"{field}_range")
        if a and b and Spread(0, *a).overlaps(Spread(0, *b)):
            line += f"; indistinguishable from {other.name} (their spreads overlap)"
        else:
            line += f"; ahead of {other.name}"
    return line + "."
