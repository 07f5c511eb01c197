"""The simulator against real KEDA and the real HPA (tests/e2e/test_keda_simulator.py): a
scenario (one Deployment, its ScaledObject with a metrics-api trigger, the trigger's value
over time), the seeded random batch, the simulation with the cluster's clock, and the
comparison at every KEDA poll and HPA sync instant.

Pure: no cluster here. Clock: each scenario has its own, in seconds: t = CREATED_S is KEDA's
first request for its value (the poll at the ScaledObject's creation; the HPA KEDA makes
syncs from one period later: t = 16, 31, …, late by up to a second or so of drift). At
t = RESTART_S the test changes the ScaledObject's pollingInterval (3600 s at creation) to the
scenario's: the new generation starts a new scale loop, polling at t = 8.5, 8.5 + P, …
(P a multiple of 5). Syncs fall 1 s past a multiple of 5 and polls 3.5 s past one, so the two
never meet on one instant (where their order would be a race), and the value changes
every 15 s at t ≡ 6.25 (mod 15), at least 2.25 s from every instant either side.
"""

from __future__ import annotations

import bisect
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from surge.api.experiment import ScaledObjectSpec
from surge.simulate.capacity import Pool, Slo
from surge.simulate.keda import plan_scaled_object
from surge.simulate.plan import Pipeline, Settings, plan_hpa
from surge.simulate.run import simulate

SYNC_S = 15  # --horizontal-pod-autoscaler-sync-period (up.sh)
CREATED_S = 1.0
FIRST_SYNC_S = CREATED_S + SYNC_S
RESTART_S = 8.5
BLOCK_S = 15
BLOCK_START_S = 6.25
DURATION_S = 320
BLOCKS = int((DURATION_S - BLOCK_START_S) // BLOCK_S) + 2
TOLERANCE = 0.1
DOWNSCALE_WINDOW_S = 300.0
SAMPLE_AFTER_S = 2.2
"""The real count is read this long after each instant, or just before the next one."""
KEDA_WRITE_S = 0.4
"""A poll's write lands this long after its instant (measured 0.1-0.5 s: runs 5 and 7 of
docs/simulator.md); the HPA reads the scale as its sync starts."""
CREATION_POLLING_S = 3600
"""pollingInterval at creation, until the test sets the scenario's at RESTART_S."""


def block_of(t: float, first_s: float = BLOCK_START_S) -> int:
    """The index of the value block at time t: [0, first_s), [first_s, first_s + 15), …"""
    return min(BLOCKS - 1, max(0, int((t - first_s) // BLOCK_S) + 1))


def sync_instants() -> list[float]:
    return [FIRST_SYNC_S + k * SYNC_S for k in range(DURATION_S // SYNC_S + 1)]


def poll_instants(polling: int, phase_s: float) -> list[float]:
    """The creation poll, then the restarted loop's, from `phase_s` every `polling`."""
    return [CREATED_S] + [phase_s + k * polling for k in range(int(DURATION_S // polling) + 1)]


def best_boundary(polling: int, phase_s: float, earliest_s: float) -> float:
    """The first value change, at or after `earliest_s`, for the measured phase of KEDA's
    restarted loop: the one (on a 0.05 s grid over one block) whose every change, every
    15 s, lies farthest from the window each instant reads: a poll reads its instant (the
    simulator the second before it, so from 2 s before), a sync up to 1.5 s late too."""
    windows = [(t - 2.0, t + 1.5) for t in sync_instants()]
    windows += [(t - 2.0, t + 0.5) for t in poll_instants(polling, phase_s)]

    def margin(b: float) -> float:
        edges = [b + j * BLOCK_S for j in range(int((DURATION_S - b) // BLOCK_S) + 1)]
        return min(max(lo - e, e - hi) for e in edges for lo, hi in windows)

    candidates = [earliest_s + i * 0.05 for i in range(int(BLOCK_S / 0.05))]
    return max(candidates, key=margin)


SEED_ENV = "SURGE_KEDA_SEED"
SIGNAL = "value"
"""Every trigger is named `value`, read as requestRate: the served value, as it is."""


def seed_from_env() -> int:
    """$SURGE_KEDA_SEED, else today's date as YYYYMMDD."""
    raw = os.environ.get(SEED_ENV)
    return int(raw) if raw else int(datetime.now(UTC).strftime("%Y%m%d"))


@dataclass(frozen=True)
class Scenario:
    name: str
    initial: int
    scaled_object: dict[str, Any]
    """The ScaledObject's spec fields the simulator reads (wire form; triggers without url)."""
    blocks: tuple[float, ...]
    """The trigger's value in each BLOCK_S-second block."""
    poll_phase_s: float = RESTART_S
    """When KEDA's restarted scale loop first polled (the e2e measures it)."""
    first_change_s: float = BLOCK_START_S
    """When block 0 ends (the e2e sets it once it knows poll_phase_s: best_boundary)."""

    def values(self) -> list[float]:
        """The value of each second (a second straddling a boundary takes the block of its
        middle; no instant reads one)."""
        return [self.blocks[block_of(t + 0.5, self.first_change_s)] for t in range(DURATION_S)]

    def value_at(self, t: float) -> float:
        return self.blocks[block_of(t, self.first_change_s)]

    def spec(self, url: str) -> dict[str, Any]:
        """The ScaledObject's spec for the cluster at creation (pollingInterval
        CREATION_POLLING_S), its trigger reading `url`."""
        so = self.scaled_object
        spec = {k: v for k, v in so.items() if k not in ("triggers", "behavior")}
        spec["pollingInterval"] = CREATION_POLLING_S
        trigger = {**so["triggers"][0]}
        trigger["metadata"] = {**trigger["metadata"], "url": url, "valueLocation": "value"}
        spec["triggers"] = [trigger]
        if so.get("behavior") is not None:
            spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": so["behavior"]}}
        return spec

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "initialReplicas": self.initial,
            "scaledObject": self.scaled_object,
            "blockSeconds": BLOCK_S,
            "blocks": list(self.blocks),
            "pollPhaseSeconds": self.poll_phase_s,
            "firstChangeSeconds": self.first_change_s,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Scenario:
        return cls(
            raw["name"],
            raw["initialReplicas"],
            raw["scaledObject"],
            tuple(raw["blocks"]),
            raw.get("pollPhaseSeconds", RESTART_S),
            raw.get("firstChangeSeconds", BLOCK_START_S),
        )


def pool() -> Pool:
    """KWOK pods, Ready a second after they are created; nothing queues."""
    return Pool("keda", 0.01, 0.2, 1e6, 0.1, 1.0, 0.0, 150, None, None)


def simulated(s: Scenario) -> list[tuple[int, int]]:
    """(second, spec.replicas) at every write, by KEDA's poll or the HPA's sync."""
    so = ScaledObjectSpec.model_validate(s.scaled_object)
    keda, hpa = plan_scaled_object(so, f"scenarios[{s.name}]", {SIGNAL: "requestRate"})
    pipe = Pipeline(
        15.0,
        0.0,
        FIRST_SYNC_S,
        first_poll_s=s.poll_phase_s,
        keda_write_s=KEDA_WRITE_S,
        creation_poll_s=CREATED_S,
    )
    settings = Settings(SYNC_S, TOLERANCE, DOWNSCALE_WINDOW_S, s.initial, pipe)
    plan = plan_hpa(s.name, pool(), hpa, settings, f"scenarios[{s.name}]", keda)
    out = simulate(plan, settings, s.values(), Slo(None, "none"))
    return [(0, s.initial), *out.changes]


def instants(s: Scenario) -> list[float]:
    """Every HPA sync instant, KEDA's creation poll and, with minReplicaCount 0, every
    poll of its restarted loop, whose sample lies inside the trace."""
    polling = int(s.scaled_object.get("pollingInterval") or 30)
    at = {CREATED_S} | set(sync_instants())
    if s.scaled_object.get("minReplicaCount", 0) == 0:
        # Above minReplicaCount > 0 a poll decides nothing (RequestScale), in KEDA and here.
        at |= set(poll_instants(polling, s.poll_phase_s))
    return sorted(t for t in at if t + SAMPLE_AFTER_S < DURATION_S)


def value_at(record: list[tuple[float, int]], t: float) -> int:
    i = bisect.bisect_right([r[0] for r in record], t)
    if i == 0:
        raise ValueError(f"nothing recorded before t = {t:g} s")
    return record[i - 1][1]


@dataclass(frozen=True)
class Comparison:
    scenario: Scenario
    instants: list[float]
    real: list[int]
    sim: list[int]

    @property
    def exact(self) -> int:
        return sum(a == b for a, b in zip(self.real, self.sim, strict=True))

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.as_json(),
            "instants": self.instants,
            "real": self.real,
            "simulated": self.sim,
            "exact": self.exact,
        }


def compare(s: Scenario, record: list[tuple[float, int]]) -> Comparison:
    """The real spec.replicas after each instant against the simulated count after that
    instant's decisions (made in the second the instant falls in). A poll and a sync less
    than 1.2 s apart are one comparison, after both (the simulator orders them by their
    instants; KEDA's and the HPA's writes come up to ~0.5 s after theirs).
    The real count is read SAMPLE_AFTER_S after the instant, or 0.5 s before the next one if
    sooner: the HPA KEDA made syncs up to ~0.4 s ahead of the scenario's clock (it exists
    before the first poll)."""
    sim = [(float(t), r) for t, r in simulated(s)]
    at: list[float] = []
    for t in instants(s):
        if at and t - at[-1] < 1.2:
            at[-1] = t
        else:
            at.append(t)
    until = [*at[1:], DURATION_S]
    real = [
        value_at(record, min(t + SAMPLE_AFTER_S, nxt - 0.5))
        for t, nxt in zip(at, until, strict=True)
    ]
    # The simulated state once the instant's writes landed (a poll's KEDA_WRITE_S later).
    return Comparison(s, at, real, [value_at(sim, float(int(t + KEDA_WRITE_S))) for t in at])


# -- the seeded batch -----------------------------------------------------------------------


def _rules(rng: random.Random, up: bool) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    if rng.random() < 0.7:
        rules["stabilizationWindowSeconds"] = rng.choice([0, 15, 30, 60] if up else [0, 30, 60])
    if rng.random() < 0.6:
        period = rng.choice([15, 30, 60])
        if rng.random() < 0.5:
            policy = {"type": "Pods", "value": rng.randint(1, 4), "periodSeconds": period}
        else:
            percent = rng.choice([50, 100, 200]) if up else rng.choice([20, 50, 100])
            policy = {"type": "Percent", "value": percent, "periodSeconds": period}
        rules["policies"] = [policy]
    return rules


def _trace(rng: random.Random, target: float, top: int, activation: float) -> tuple[float, ...]:
    """Idle stretches (0, or at/below the activation threshold), steps, ramps and spikes
    in units of the target, up to 0.85 × top replicas' worth."""
    out: list[float] = []
    while len(out) < BLOCKS:
        kind = rng.choice(["idle", "idle", "step", "ramp", "spike"])
        n = rng.randint(1, 4)
        if kind == "idle":
            out += [rng.choice([0.0, activation])] * n
        elif kind == "step":
            out += [target * rng.uniform(0.3, 0.85 * top)] * n
        elif kind == "ramp":
            a, b = (target * rng.uniform(0.3, 0.85 * top) for _ in range(2))
            out += [a + (b - a) * (i + 1) / n for i in range(n)]
        else:
            base = target * rng.uniform(0.3, 0.5 * top)
            out += [base * rng.uniform(1.8, 3.0)] + [base] * n
    return tuple(round(x, 1) for x in out[:BLOCKS])


def random_batch(seed: int, count: int) -> list[Scenario]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        target = float(rng.choice([5, 8, 10, 15, 20]))
        value_type = rng.random() < 0.3
        lo = rng.choice([0, 0, 0, 1, 2])
        hi = rng.randint(max(lo, 1) + 3, 10)
        activation = rng.choice([0.0, 0.0, 2.0, round(target / 2, 1)])
        meta = {"targetValue": f"{target:g}", "activationTargetValue": f"{activation:g}"}
        trigger: dict[str, Any] = {"type": "metrics-api", "name": SIGNAL, "metadata": meta}
        if value_type:
            trigger["metricType"] = "Value"
        so: dict[str, Any] = {
            "triggers": [trigger],
            "minReplicaCount": lo,
            "maxReplicaCount": hi,
            "pollingInterval": rng.choice([5, 10, 15, 20, 30]),
            "cooldownPeriod": rng.choice([0, 10, 20, 30, 45, 60, 90]),
        }
        if rng.random() < 0.7:
            so["behavior"] = {
                k: _rules(rng, k == "scaleUp")
                for k in ("scaleUp", "scaleDown")
                if rng.random() < 0.8
            }
        blocks = _trace(rng, target, hi, activation)
        initial = rng.randint(1, hi)
        out.append(Scenario(f"k{i:02d}", initial, so, blocks))
    return out


def near_sync(t: float) -> bool:
    """Inside an HPA sync's window (its instant, up to 0.5 s early and 2 s late)."""
    since = (t - FIRST_SYNC_S) % SYNC_S
    return t > FIRST_SYNC_S - 0.5 and (since <= 2.0 or since >= SYNC_S - 0.5)
