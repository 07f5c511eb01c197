"""Scenarios for the differential test of the simulator against the real HPA controller
(tests/e2e/test_hpa_simulator.py): three fixed ones (a Deployment started above what its load
needs, with and without a behavior; a Pods-style AverageValue exactly at target while new
pods have no metric) and a seeded random batch.

The random batch varies what the controller decides on: behaviours (policies of both types,
selectPolicy Max/Min/Disabled, windows, periods, per-direction tolerance), min/max, a start
above, at or below the need (sometimes outside min/max), CPU Utilization or AverageValue
targets, and traces made of steps, ramps, spikes and flapping inside the tolerance band.
A second seeded batch (`pods_batch`) scales on Pods metrics (in-flight or request rate per
pod, served by hack/cluster/podmetrics from annotations the test writes).
Windows and periods are multiples of 5 s: a boundary then falls either on the sync grid
(where the real clock's drift decides it, docs/simulator.md) or 5 s away from it.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime
from typing import Any

from surge.api.simulation import Signal
from tests.support.hpa_compare import BLOCK_S, DURATION_S, POD_REQUEST_M, SERVICE_S, Scenario

CPU_PER_REQUEST_M = 10
BLOCKS = DURATION_S // BLOCK_S
SEED_ENV = "SURGE_HPA_SEED"


def seed_from_env() -> int:
    """$SURGE_HPA_SEED, else today's date as YYYYMMDD (one batch a day, reproducible)."""
    raw = os.environ.get(SEED_ENV)
    return int(raw) if raw else int(datetime.now(UTC).strftime("%Y%m%d"))


def _utilization(percent: int) -> dict[str, Any]:
    return {"type": "Utilization", "averageUtilization": percent}


def fixed() -> list[Scenario]:
    """10 replicas whose load needs 4 (40 req/s at 10 per pod), held for 320 s: the
    controller's initial recommendation holds 10 for one scale-down window. And 4 replicas
    at 60 req/s against 100m (10 req/s) each: up to 6 at the first sync, after which the 4
    old pods report exactly the target while the 2 new ones have no metric yet; with the
    ratio exactly 1.0 the controller ignores the missing pods and holds 6 (counting them
    would propose 4, and a 0 s scale-down window would take it)."""
    blocks = (40.0,) * BLOCKS
    window = {"scaleDown": {"stabilizationWindowSeconds": 100}}
    at_target = {"type": "AverageValue", "averageValue": "100m"}
    no_window = {"scaleDown": {"stabilizationWindowSeconds": 0}}
    return [
        Scenario("above-need", 2, 15, 10, _utilization(50), None, blocks),
        Scenario("above-need-window", 2, 15, 10, _utilization(50), window, blocks),
        Scenario("at-target-missing", 1, 10, 4, at_target, no_window, (60.0,) * BLOCKS),
    ]


def per_pod_rps(target: dict[str, Any]) -> float:
    """The requests per second one pod serves at the target."""
    if target["type"] == "Utilization":
        return float(target["averageUtilization"]) / 100 * POD_REQUEST_M / CPU_PER_REQUEST_M
    return int(str(target["averageValue"]).removesuffix("m")) / CPU_PER_REQUEST_M


def _policy(rng: random.Random, up: bool) -> dict[str, Any]:
    period = rng.choice([15, 30, 45, 60, 90])
    if rng.random() < 0.5:
        return {"type": "Pods", "value": rng.randint(1, 4), "periodSeconds": period}
    percent = rng.choice([25, 50, 100, 200]) if up else rng.choice([10, 20, 50, 100])
    return {"type": "Percent", "value": percent, "periodSeconds": period}


def _rules(rng: random.Random, up: bool) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    if rng.random() < 0.7:
        windows = [0, 0, 15, 30, 60] if up else [0, 15, 30, 45, 60, 100, 120, 200]
        rules["stabilizationWindowSeconds"] = rng.choice(windows)
    if rng.random() < 0.7:
        rules["policies"] = [_policy(rng, up) for _ in range(rng.randint(1, 2))]
        rules["selectPolicy"] = rng.choices(["Max", "Min", "Disabled"], [6, 3, 1])[0]
    if rng.random() < 0.15:
        rules["tolerance"] = rng.choice(["0.05", "0.2"])
    return rules


def _behavior(rng: random.Random) -> dict[str, Any] | None:
    if rng.random() < 0.3:
        return None
    out = {}
    for key, up in (("scaleUp", True), ("scaleDown", False)):
        if rng.random() < 0.75:
            out[key] = _rules(rng, up)
    return out


def _trace(rng: random.Random, unit: float, top: int) -> tuple[float, ...]:
    """Blocks of offered load: steps, ramps, spikes and flapping, in units of one pod's
    load at the target (`unit`), levels between 0.3 and 0.85 × top pods; spikes above."""

    def level() -> float:
        return unit * rng.uniform(0.3, 0.85 * top)

    out: list[float] = []
    current = level()
    while len(out) < BLOCKS:
        kind = rng.choice(["step", "ramp", "spike", "flap"])
        n = rng.randint(3, 12)
        if kind == "step":
            current = level()
            out += [current] * n
        elif kind == "ramp":
            to = level()
            out += [current + (to - current) * (i + 1) / n for i in range(n)]
            current = to
        elif kind == "spike":
            out += [current * rng.uniform(1.8, 3.0)] * rng.randint(1, 3) + [current] * n
        else:  # flapping ±4 % around k pods at the target: inside the 10 % band
            k = max(1, round(current / unit))
            out += [k * unit * (1.04 if i % 2 else 0.96) for i in range(n)]
            current = k * unit
    return tuple(round(max(0.5, x), 1) for x in out[:BLOCKS])


def _start(rng: random.Random, blocks: tuple[float, ...], unit: float, lo: int, hi: int) -> int:
    """spec.replicas at t = 0: above, at or below the first block's need, or outside min/max."""
    need = max(1, round(blocks[0] / unit))
    start = rng.choice(["above", "at", "below", "outside"])
    return {
        "above": min(hi, need + rng.randint(2, 5)),
        "at": min(hi, max(lo, need)),
        "below": min(hi, max(lo, need - rng.randint(1, 3))),
        "outside": rng.choice([hi + 1, hi + 2, max(1, lo - 1)]),
    }[start]


def random_batch(seed: int, count: int) -> list[Scenario]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if rng.random() < 0.6:
            target = _utilization(rng.choice([40, 50, 60, 70, 80]))
        else:
            target = {"type": "AverageValue", "averageValue": f"{rng.choice(range(60, 161, 20))}m"}
        lo = rng.randint(1, 3)
        hi = rng.randint(lo + 3, 10)
        blocks = _trace(rng, per_pod_rps(target), hi)
        initial = _start(rng, blocks, per_pod_rps(target), lo, hi)
        out.append(Scenario(f"r{i:02d}", lo, hi, initial, target, _behavior(rng), blocks))
    return out


def pods_batch(seed: int, count: int) -> list[Scenario]:
    """Scenarios on a Pods metric (podmetrics): in-flight requests or requests per second per
    pod against an AverageValue (whole or milli values), with the CPU batch's behaviors,
    min/max, starts and traces. Its own random stream, so a seed's CPU batch is unchanged."""
    rng = random.Random(f"pods:{seed}")
    out = []
    for i in range(count):
        if rng.random() < 0.5:
            signal: Signal = "inFlight"
            value = rng.choice([1.5, 2, 2.5, 3, 4, 5, 7.5])
            unit = value / SERVICE_S  # requests per second one pod serves at the target
        else:
            signal = "requestRate"
            value = rng.choice([2, 4, 5, 7.5, 10, 12.5])
            unit = value
        text = f"{round(value * 1000)}m" if value != int(value) else str(int(value))
        target = {"type": "AverageValue", "averageValue": text}
        lo = rng.randint(1, 3)
        hi = rng.randint(lo + 3, 10)
        blocks = _trace(rng, unit, hi)
        initial = _start(rng, blocks, unit, lo, hi)
        behavior = _behavior(rng)
        out.append(Scenario(f"p{i:02d}", lo, hi, initial, target, behavior, blocks, signal))
    return out
