"""What one replica serves, how slow it gets, and what it costs: one `Pool` per variant.

The capacity comes from spec.simulation.capacity.<pool>, or from a file of the same shape
(a capacity sweep's output; `surge simulate --capacity FILE`) that overrides it per pool.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from surge.api.experiment import ScalingExperimentSpec, Variant
from surge.api.manifests import describe_errors
from surge.api.simulation import PoolCapacity, parse_quantity
from surge.api.thresholds import parse_threshold
from surge.simulate.errors import SimulationError

DEFAULT_POOL = "default"
RHO_MAX = 0.99
"""Utilization above which the queueing term stops growing and the backlog takes over."""
LN20 = math.log(20.0)


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    cpu_per_request: float
    pod_cpu_request: float
    max_rps: float
    """μ: requests per second one Ready pod serves at saturation."""
    base_latency_s: float
    """p95 at light load."""
    startup_s: float
    node_provisioning_s: float
    pods_per_node: int
    initial_nodes: int | None
    price: float | None
    """Per replica-hour; None when neither the variant nor spec.cost names one."""
    slots: int | None = None
    """Requests one pod serves at once; None: the M/M/1 shape (docs/simulator.md)."""
    service_time_s: float = 0.0
    """How long one request holds a slot (slots pools only)."""

    def p95(self, offered: float, ready: int, backlog: float) -> float:
        """Predicted p95 latency in seconds, inf with no Ready pod. M/M/1 pools: a queueing
        term per pod, base / (1 - ρ), plus the time to drain the backlog; slots pools (a
        fluid queue in front of ready × slots servers): base + backlog / capacity."""
        if ready <= 0:
            return math.inf
        capacity = ready * self.max_rps
        if self.slots is not None:
            return self.base_latency_s + backlog / capacity
        rho = min(offered / capacity, RHO_MAX)
        return self.base_latency_s / (1.0 - rho) + backlog / capacity

    def in_service_s(self, offered: float, ready: int) -> float:
        """W, the mean time a served request spends in a pod (Little's law: in service =
        served × W): serviceTime for slots pools; the M/M/1 mean sojourn, the p95's
        queueing term / ln 20, otherwise."""
        if self.slots is not None:
            return self.service_time_s
        if ready <= 0:
            return 0.0
        rho = min(offered / (ready * self.max_rps), RHO_MAX)
        return self.base_latency_s / (1.0 - rho) / LN20

    def rps_at_slo(self, slo_p95_s: float | None) -> float:
        """Per-replica rate at which the predicted p95 equals the SLO (no backlog):
        base / (1 - ρ) = SLO ⇒ ρ = 1 - base / SLO; a slots pool meets any SLO above its
        service time up to RHO_MAX·μ. Without a latency SLO: RHO_MAX·μ."""
        if slo_p95_s is None:
            return RHO_MAX * self.max_rps
        if self.slots is not None:
            return RHO_MAX * self.max_rps if self.base_latency_s <= slo_p95_s else 0.0
        rho = min(RHO_MAX, 1.0 - self.base_latency_s / slo_p95_s)
        return max(rho, 0.0) * self.max_rps


@dataclass(frozen=True, slots=True)
class Slo:
    p95_s: float | None
    """The latency thresholds as one p95 bound; None: only overload violates."""
    source: str
    judged_from_s: float = 0.0
    """The load's warm-up: seconds before it are simulated but not judged (no violation
    seconds, no worst p95), as the live verdict leaves the warm-up out."""


def slo_of(spec: ScalingExperimentSpec) -> Slo:
    """The strictest latency threshold, as a p95 bound. The model's latency has an
    exponential tail, so the q-quantile is p95 · ln(1/(1-q)) / ln(20)."""
    best: tuple[float, str] | None = None
    for text in spec.load_test.thresholds:
        t = parse_threshold(text)
        family, _, stat = t.metric.partition(".")
        if family != "latency" or t.op not in ("<", "<=") or stat in ("max", "min"):
            continue
        if stat == "mean":
            factor = 1.0 / LN20
        else:
            q = float("0." + stat[1:]) if stat != "p999" else 0.999
            factor = math.log(1.0 / (1.0 - q)) / LN20
        bound = t.limit / factor
        if best is None or bound < best[0]:
            best = (bound, t.expression)
    warmup = spec.load_test.load.warmup
    if best is None:
        return Slo(None, "no latency threshold: a second violates the SLO when overloaded", warmup)
    return Slo(best[0], best[1], warmup)


def pool_name(spec: ScalingExperimentSpec, variant: Variant) -> str:
    return (variant.node_selector or {}).get(spec.cost.pool_label, DEFAULT_POOL)


def load_capacity_file(path: Path) -> dict[str, dict[str, Any]]:
    """A JSON or YAML mapping pool -> PoolCapacity fields (what a sweep writes). Its fields
    override the spec's pool field by field (pool_for), so a sweep's maxRps and baseLatency
    combine with the spec's cpuPerRequest; a pool named `default` applies to every pool the
    file does not name."""
    try:
        raw: Any = yaml.safe_load(path.read_text()) if path.suffix != ".json" else None
        if raw is None and path.suffix == ".json":
            raw = json.loads(path.read_text())
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SimulationError(f"{path}: cannot read it as JSON or YAML ({exc})") from None
    if isinstance(raw, dict) and isinstance(raw.get("capacity"), dict):
        raw = raw["capacity"]
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise SimulationError(f"{path}: expected a mapping of pool name to capacity fields")
    known = set(PoolCapacity.model_fields) | {
        str(f.alias) for f in PoolCapacity.model_fields.values() if f.alias
    }
    for name, body in raw.items():
        unknown = sorted(set(body) - known)
        if unknown:
            raise SimulationError(
                f"{path}: {name}.{unknown[0]}: not a capacity field (see spec.simulation.capacity)"
            )
    return {str(k): dict(v) for k, v in raw.items()}


def _merged(
    spec_pool: PoolCapacity | None, override: dict[str, Any] | None, where: str
) -> PoolCapacity | None:
    if override is None:
        return spec_pool
    base = spec_pool.model_dump(by_alias=True, exclude_none=True) if spec_pool else {}
    try:
        return PoolCapacity.model_validate({**base, **override})
    except ValidationError as exc:
        first = describe_errors(exc)[0]
        raise SimulationError(
            f"{where}.{first.path}: {first.message} (the spec's pool with the capacity file's "
            "fields over it)"
        ) from None


def pool_for(
    spec: ScalingExperimentSpec,
    index: int,
    variant: Variant,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Pool:
    """The Pool a variant runs on, or SimulationError naming the missing field."""
    name = pool_name(spec, variant)
    table = dict(spec.simulation.capacity if spec.simulation else {})
    files = overrides or {}
    override = files.get(name, files.get(DEFAULT_POOL))
    cap = _merged(table.get(name), override, f"spec.simulation.capacity.{name}")
    table.update({k: v for k, v in [(name, cap)] if v is not None})
    if cap is None:
        label = spec.cost.pool_label
        how = (
            f"its nodeSelector {label}={name}"
            if name != DEFAULT_POOL
            else f"no nodeSelector {label}"
        )
        known = ", ".join(sorted(table)) or "none"
        raise SimulationError(
            f"spec.variants[{index}] ({variant.name}) runs on pool {name!r} ({how}), but "
            f"spec.simulation.capacity has no {name!r} (it has: {known}); add "
            f"spec.simulation.capacity.{name} with cpuPerRequest and podCpuRequest"
        )
    where = f"spec.simulation.capacity.{name}"
    request = cap.pod_cpu_request
    if request is None:
        raw = ((variant.resources or {}).get("requests") or {}).get("cpu")
        if raw is None:
            raise SimulationError(
                f"{where}.podCpuRequest: unset, and spec.variants[{index}].resources.requests.cpu "
                "is unset too; set one (CPU utilization is usage over the request)"
            )
        try:
            request = parse_quantity(raw)
        except ValueError as exc:
            raise SimulationError(f"spec.variants[{index}].resources.requests.cpu: {exc}") from None
    if request <= 0 or cap.cpu_per_request <= 0:
        raise SimulationError(f"{where}: cpuPerRequest and podCpuRequest must be above 0")
    if cap.slots is not None and cap.service_time is not None:
        # A pod serving `slots` requests at once, each for serviceTime (GPU slots).
        max_rps = cap.max_rps if cap.max_rps is not None else cap.slots / cap.service_time
        base = cap.base_latency if cap.base_latency is not None else cap.service_time
    else:
        max_rps = cap.max_rps if cap.max_rps is not None else request / cap.cpu_per_request
        base = cap.base_latency if cap.base_latency is not None else LN20 / max_rps
    price = variant.cost_per_replica_hour
    if price is None:
        price = spec.cost.per_pool.get(name)
    return Pool(
        name=name,
        cpu_per_request=cap.cpu_per_request,
        pod_cpu_request=request,
        max_rps=max_rps,
        base_latency_s=base,
        startup_s=cap.startup,
        node_provisioning_s=cap.node_provisioning,
        pods_per_node=cap.pods_per_node,
        initial_nodes=cap.initial_nodes,
        price=price,
        slots=cap.slots,
        service_time_s=cap.service_time or 0.0,
    )
