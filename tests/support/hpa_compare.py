"""The simulator against a real HPA (tests/e2e/test_hpa_simulator.py): a scenario (one
Deployment and its HPA, a load trace), the simulation that mirrors the cluster's metrics
pipeline, and the per-sync comparison. The scenarios themselves: tests/support/hpa_scenarios.py.

Pure: no cluster here. The e2e drives the cluster, records what the Deployments did, and
hands the record to `compare`.

Clock: seconds since the trace started (t = 0). metrics-server scrapes at t ≡ 12.5 (mod 15)
and reads each pod's usage annotation at that instant; the HPAs sync at t = 20, 35, 50, …
(created at t = 5), mid-way between scrapes. The load of the second before a scrape is what
that scrape reads (pipeline.sampled_second), in the simulator and in the e2e's load driver.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Any

from surge.api.experiment import HpaSpec
from surge.api.simulation import Signal
from surge.simulate import pipeline
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
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DOWNSCALE_WINDOW_S = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
PODS_METRICS: dict[Signal, str] = {"requestRate": "rps", "inFlight": "inflight"}
"""The Pods metric of each signal (spec.simulation.signals); its annotation is
metrics.surge.dev/<name> (hack/cluster/podmetrics)."""
PODS_METRIC_SCRAPE = 2
"""A pod has a Pods metric from its second scrape on (Pipeline.pods_metric_scrape)."""
SERVICE_S = 0.5
"""Pods scenarios run on a slots pool: each request in flight for 0.5 s, so in-flight =
0.5 × the rate exactly, and capacity to spare."""
SAMPLE_AFTER_SYNC_S = 7.0
"""The real count is read this long after each sync instant: mid-way to the next sync."""


@dataclass(frozen=True)
class Scenario:
    """One Deployment of KWOK pods (200m CPU request) and its autoscaling/v2 HPA on CPU or
    on a Pods metric."""

    name: str
    min_replicas: int
    max_replicas: int
    initial: int
    """spec.replicas when the trace starts (the pods Ready and scraped long before)."""
    target: dict[str, Any]
    """The cpu MetricTarget: Utilization or AverageValue."""
    behavior: dict[str, Any] | None
    blocks: tuple[float, ...]
    """Offered requests per second of each BLOCK_S-second block of the trace."""
    signal: Signal | None = None
    """None: the HPA scales on cpu; else on the Pods metric PODS_METRICS[signal], which
    the test writes as each pod's annotation (podmetrics) and `target` is its AverageValue."""

    def rates(self) -> list[float]:
        return [self.blocks[t // BLOCK_S] for t in range(DURATION_S)]

    def hpa_spec(self) -> dict[str, Any]:
        """The HPA's spec, without scaleTargetRef."""
        metric: dict[str, Any] = {
            "type": "Resource",
            "resource": {"name": "cpu", "target": self.target},
        }
        if self.signal is not None:
            name = PODS_METRICS[self.signal]
            metric = {"type": "Pods", "pods": {"metric": {"name": name}, "target": self.target}}
        spec: dict[str, Any] = {
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "metrics": [metric],
        }
        if self.behavior is not None:
            spec["behavior"] = self.behavior
        return spec

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "initialReplicas": self.initial,
            "target": self.target,
            "behavior": self.behavior,
            "blockSeconds": BLOCK_S,
            "blocks": list(self.blocks),
            **({} if self.signal is None else {"signal": self.signal}),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Scenario:
        return cls(
            raw["name"],
            raw["minReplicas"],
            raw["maxReplicas"],
            raw["initialReplicas"],
            raw["target"],
            raw["behavior"],
            tuple(raw["blocks"]),
            raw.get("signal"),
        )


def usage_milli(rps: float, ready: int) -> int:
    """What each Ready pod reports (the even split), with the simulator's arithmetic
    (surge/simulate/replicas.py: int(served per pod × cpu per request × 1000))."""
    return int(rps / ready * (CPU_PER_REQUEST_M / 1000) * 1000) if ready else 0


def usage_annotation(milli: int) -> str:
    """The kwok.x-k8s.io/usage-cpu that makes the HPA read `milli`: half a milli-core less.
    metrics-server's rate is kwok's counter over metrics-server's own scrape interval, off
    by about 1e-4 of the value either way, and the HPA rounds it up (MilliValue), so an
    annotation of exactly 88m was read as 89m whenever the rate came out a hair above
    (seed 20261206, r20: an AverageValue of 80m held at 88/80 = 1.1, the tolerance's edge,
    scaled up when read as 89m)."""
    return "0" if milli <= 0 else f"{milli * 1000 - 500}u"


def scrape_instants() -> list[float]:
    """Every scrape of the trace (t ≥ 0)."""
    return [SCRAPE_OFFSET_S + k * SCRAPE_S for k in range(int(DURATION_S // SCRAPE_S))]


def load_at_scrape(rates: list[float], scrape: float) -> float:
    """The rate a scrape reads: that of the last full second before it (pipeline.sampled_second)."""
    return rates[max(0, math.floor(scrape) - 1)]


def pods_value_milli(signal: Signal, rps: float, ready: int) -> int:
    """What each Ready pod's Pods metric reads, in milli-units, with the simulator's
    arithmetic: the signal's total (rps, or rps × SERVICE_S in flight) over the Ready pods,
    truncated (replicas.py: PodView.per_pod, then _milli)."""
    if not ready:
        return 0
    total = rps if signal == "requestRate" else rps * SERVICE_S
    return math.floor(round(total / ready * 1000, 6))


def has_pods_metric(created: float, sync: float) -> bool:
    """Whether a pod created at `created` (trace seconds; before 0: with the trace's first
    pods) has a Pods metric at the sync instant `sync` (pipeline.view)."""
    if created < 0:
        return True
    # The simulator's own scrape count, so the driver and the model cannot drift apart.
    return pipeline.scrapes_between(metrics_pipeline(), created, sync) >= PODS_METRIC_SCRAPE


def sync_instants() -> list[float]:
    """Every nominal HPA sync instant of the trace."""
    return [FIRST_SYNC_S + k * SYNC_S for k in range(int((DURATION_S - FIRST_SYNC_S) // SYNC_S))]


def metrics_pipeline() -> Pipeline:
    """The test cluster's metrics pipeline (up.sh's metrics-server and kwok)."""
    return Pipeline(
        SCRAPE_S,
        SCRAPE_OFFSET_S,
        FIRST_SYNC_S,
        first_metric_scrape=3,
        pods_metric_scrape=PODS_METRIC_SCRAPE,
    )


def settings(initial: int) -> Settings:
    pipe = metrics_pipeline()
    signals: dict[str, Signal] = {name: sig for sig, name in PODS_METRICS.items()}
    return Settings(SYNC_S, TOLERANCE, DOWNSCALE_WINDOW_S, initial, pipe, signals=signals)


def pool(pods_metric: bool = False) -> Pool:
    """KWOK pods: Ready about a second after they are created, on nodes with room to spare;
    maxRps so high that every request is served (the usage is the offered load). For a
    Pods metric, a slots pool (SERVICE_S per request)."""
    if pods_metric:
        slots = int(1e6 * SERVICE_S)
        return Pool("pods", 0.01, 0.2, 1e6, SERVICE_S, 1.0, 0.0, 150, None, None, slots, SERVICE_S)
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


def simulated(s: Scenario) -> list[tuple[int, int]]:
    """(sync second, spec.replicas after the sync), as simulated."""
    hpa = HpaSpec.model_validate(s.hpa_spec())
    plan = plan_hpa(
        s.name, pool(s.signal is not None), hpa, settings(s.initial), f"scenarios[{s.name}]"
    )
    out = simulate(plan, settings(s.initial), s.rates(), Slo(None, "none"))
    return [(p.t, p.replicas) for p in out.timeline if p.t >= FIRST_SYNC_S]


def value_at(record: list[tuple[float, int]], t: float) -> int:
    """The last recorded value at or before t (record sorted by time)."""
    i = bisect.bisect_right([r[0] for r in record], t)
    if i == 0:
        raise ValueError(f"nothing recorded before t = {t:g} s")
    return record[i - 1][1]


@dataclass(frozen=True)
class Comparison:
    scenario: Scenario
    instants: list[int]
    real: list[int]
    sim: list[int]

    @property
    def exact(self) -> int:
        return sum(a == b for a, b in zip(self.real, self.sim, strict=True))

    @property
    def within_one(self) -> int:
        return sum(abs(a - b) <= 1 for a, b in zip(self.real, self.sim, strict=True))

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.as_json(),
            "syncInstants": self.instants,
            "real": self.real,
            "simulated": self.sim,
            "exact": self.exact,
            "withinOneReplica": self.within_one,
        }


def compare(s: Scenario, record: list[tuple[float, int]]) -> Comparison:
    """The real spec.replicas (record: (t, value) polled through the run) against the
    simulated one at every sync instant whose sample time lies inside the trace."""
    sim = [(t, r) for t, r in simulated(s) if t + SAMPLE_AFTER_SYNC_S < DURATION_S]
    real = [value_at(record, t + SAMPLE_AFTER_SYNC_S) for t, _ in sim]
    return Comparison(s, [t for t, _ in sim], real, [r for _, r in sim])


def scale_offsets(record: list[tuple[float, int]]) -> list[float]:
    """Each real change of spec.replicas, in seconds after the sync instant before it (the
    premise of the mirror: the controller changes the count at the simulated instants)."""
    out = []
    for (_, a), (t1, b) in itertools.pairwise(record):
        if a != b and t1 > FIRST_SYNC_S - 1:
            since = (t1 - FIRST_SYNC_S) % SYNC_S
            out.append(since if since < SYNC_S - 2 else since - SYNC_S)
    return out


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
    ax.set_ylim(0, max(max(ys), max(c.sim)) + 1)
    rates = c.scenario.rates()
    load = ax.twinx()
    load.plot(range(DURATION_S), rates, color="0.6", lw=1, label="load (requests/s)")
    load.set_ylabel("requests per second")
    load.set_ylim(0, math.ceil(max(rates) * 1.15) + 1)
    ax.set_zorder(load.get_zorder() + 1)
    ax.patch.set_visible(False)
    lines = ax.get_legend_handles_labels()
    more = load.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="best", fontsize=8)
    ax.set_title(f"{c.scenario.name}: equal at {c.exact}/{len(c.instants)} syncs")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
