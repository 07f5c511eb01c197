"""The simulator against a real HPA (tests/e2e/test_hpa_simulator.py): the trace, the three
behaviours, the simulation that mirrors the cluster's metrics pipeline, and the comparison.

Pure: no cluster here. The e2e drives the cluster, records what the Deployments did, and
hands the record to `compare`.

Clock: seconds since the trace started (t = 0). The load is piecewise constant on 5-second
blocks; metrics-server scrapes in the middle of a block (t ≡ 2.5 mod 5, first at
SCRAPE_OFFSET_S) and the HPA syncs at block boundaries (first at FIRST_SYNC_S), so neither a
scrape nor a sync sits on a change of load or of the scrape the sync reads.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from surge.api.experiment import HpaSpec
from surge.simulate.capacity import Pool, Slo
from surge.simulate.plan import Pipeline, Settings, plan_hpa
from surge.simulate.run import simulate

SYNC_S = 15  # kube-controller-manager's --horizontal-pod-autoscaler-sync-period (up.sh)
SCRAPE_S = 15.0  # metrics-server's --metric-resolution (up.sh)
SCRAPE_OFFSET_S = 12.5
FIRST_SYNC_S = 20.0
HPA_CREATED_S = FIRST_SYNC_S - SYNC_S  # the controller first syncs an HPA one period after
BLOCK_S = 5
DURATION_S = 320
CPU_PER_REQUEST_M = 10  # milli-cores per request per second
POD_REQUEST_M = 200
TARGET_UTILIZATION = 50  # 10 requests per second per pod
MIN_REPLICAS, MAX_REPLICAS = 2, 15
SAMPLE_AFTER_SYNC_S = 7.0
"""The real count is read this long after each sync instant: mid-way to the next sync."""
REQUIRED_MATCH = 0.95

KNOTS = [(0, 20.0), (60, 20.0), (150, 120.0), (210, 120.0), (230, 30.0), (DURATION_S, 30.0)]
"""(t, requests per second): steady, ramp up, plateau, drop, low plateau."""

BEHAVIORS: dict[str, dict[str, Any] | None] = {
    "default": None,
    "slow-up": {
        "scaleUp": {
            "stabilizationWindowSeconds": 30,
            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}],
        }
    },
    "fast-down": {
        "scaleDown": {
            "stabilizationWindowSeconds": 30,
            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 15}],
        }
    },
}


def rates() -> list[float]:
    """The offered requests per second of each second: the knots' curve, held per block."""
    xs, ys = zip(*KNOTS, strict=True)
    per_block = [float(np.interp(b * BLOCK_S, xs, ys)) for b in range(DURATION_S // BLOCK_S)]
    return [per_block[t // BLOCK_S] for t in range(DURATION_S)]


def usage_milli(rps: float, ready: int) -> int:
    """What each Ready pod reports (the even split), as the simulator computes it:
    int(served per pod × CPU per request) in milli-cores."""
    return int(rps / ready * CPU_PER_REQUEST_M) if ready else 0


def metrics() -> list[dict[str, Any]]:
    target = {"type": "Utilization", "averageUtilization": TARGET_UTILIZATION}
    return [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]


def hpa_spec(behavior: dict[str, Any] | None) -> dict[str, Any]:
    """The autoscaling/v2 HPA spec of a behaviour (without scaleTargetRef)."""
    spec: dict[str, Any] = {
        "minReplicas": MIN_REPLICAS,
        "maxReplicas": MAX_REPLICAS,
        "metrics": metrics(),
    }
    if behavior is not None:
        spec["behavior"] = behavior
    return spec


def settings() -> Settings:
    pipe = Pipeline(SCRAPE_S, SCRAPE_OFFSET_S, FIRST_SYNC_S, first_metric_scrape=3)
    return Settings(SYNC_S, 0.1, 300.0, MIN_REPLICAS, pipe)


def pool() -> Pool:
    """KWOK pods: Ready about a second after they are created, on nodes with room to spare;
    maxRps so high that every request is served (the usage is the offered load)."""
    return Pool(
        name="cpu",
        cpu_per_request=CPU_PER_REQUEST_M / 1000,
        pod_cpu_request=POD_REQUEST_M / 1000,
        max_rps=1e6,
        base_latency_s=0.1,
        startup_s=1.0,
        node_provisioning_s=0.0,
        pods_per_node=110,
        initial_nodes=None,
        price=None,
    )


def simulated(name: str) -> list[tuple[int, int]]:
    """(sync second, spec.replicas after the sync) of the behaviour, as simulated."""
    hpa = HpaSpec.model_validate(hpa_spec(BEHAVIORS[name]))
    plan = plan_hpa(name, pool(), hpa, settings(), f"behaviours[{name}]")
    out = simulate(plan, settings(), rates(), Slo(None, "none"))
    return [(p.t, p.replicas) for p in out.timeline if p.t >= FIRST_SYNC_S]


def value_at(record: list[tuple[float, int]], t: float) -> int:
    """The last recorded value at or before t (record sorted by time)."""
    i = bisect.bisect_right([r[0] for r in record], t)
    if i == 0:
        raise ValueError(f"nothing recorded before t = {t:g} s")
    return record[i - 1][1]


@dataclass(frozen=True)
class Comparison:
    name: str
    instants: list[int]
    real: list[int]
    sim: list[int]
    scale_offsets: list[float]
    """Each real change of spec.replicas, in seconds after the sync instant before it."""

    @property
    def matches(self) -> int:
        return sum(abs(a - b) <= 1 for a, b in zip(self.real, self.sim, strict=True))

    @property
    def ratio(self) -> float:
        return self.matches / len(self.instants)

    def as_json(self) -> dict[str, Any]:
        return {
            "behavior": BEHAVIORS[self.name],
            "syncInstants": self.instants,
            "real": self.real,
            "simulated": self.sim,
            "withinOneReplica": self.matches,
            "ratio": round(self.ratio, 4),
            "realScaleOffsetsAfterSync": [round(x, 2) for x in self.scale_offsets],
        }


def compare(name: str, record: list[tuple[float, int]]) -> Comparison:
    """The real spec.replicas (record: (t, value) polled through the run) against the
    simulated one at every sync instant whose sample time lies inside the trace."""
    sim = [(t, r) for t, r in simulated(name) if t + SAMPLE_AFTER_SYNC_S < DURATION_S]
    real = [value_at(record, t + SAMPLE_AFTER_SYNC_S) for t, _ in sim]
    offsets = []
    for (_, a), (t1, b) in itertools.pairwise(record):
        if a != b and t1 > FIRST_SYNC_S - 1:
            since = (t1 - FIRST_SYNC_S) % SYNC_S
            offsets.append(since if since < SYNC_S - 2 else since - SYNC_S)
    return Comparison(name, [t for t, _ in sim], real, [r for _, r in sim], offsets)


def plot(c: Comparison, record: list[tuple[float, int]], path: str) -> None:
    """Real spec.replicas (polled), the simulated count after each sync, and the load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    xs, ys = zip(*record, strict=True)
    ax.step(xs, ys, where="post", label="real HPA (Deployment spec.replicas)", color="C0")
    ax.plot(c.instants, c.sim, "o", ms=5, mfc="none", color="C3", label="surge simulate, at syncs")
    ax.set_xlabel("seconds since the trace started")
    ax.set_ylabel("replicas")
    ax.set_xlim(0, DURATION_S)
    ax.set_ylim(0, MAX_REPLICAS + 1)
    load = ax.twinx()
    load.plot(range(DURATION_S), rates(), color="0.6", lw=1, label="load (requests/s)")
    load.set_ylabel("requests per second")
    load.set_ylim(0, math.ceil(max(rates()) * 1.15))
    ax.set_zorder(load.get_zorder() + 1)
    ax.patch.set_visible(False)
    lines = ax.get_legend_handles_labels()
    more = load.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    ax.set_title(f"{c.name}: within ±1 replica at {c.matches}/{len(c.instants)} syncs")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
