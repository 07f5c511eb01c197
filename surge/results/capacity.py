"""A sweep's capacity: replicas, rate per replica and CPU per request for each step, the
one number (max sustainable rate per replica within the SLO), and the simulator's
capacity file. Pure (docs/metrics.md, "Capacity sweep").

Replicas per step come from the cluster section's replica series (kube-state-metrics,
over the step's window) when Prometheus answered, else from the count the caller read
(`surge run --replicas`, or the operator's read of the Deployment). CPU seconds per
request = ∫ cores dt over the step's window (the cpu series read as steps) ÷ the
requests completed in it; null without cpu samples in the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from surge.api.results import RunResults
from surge.api.results.cluster import ClusterSection
from surge.api.results.sweep import Capacity, SweepStep
from surge.results.timeline import Sample, Window, clip, integral

REPLICAS_CHANGED = (
    "the target's replicas changed during the sweep ({seen}): its autoscaler was not "
    "pinned, so no rate is per replica; pin it (HPA minReplicas = maxReplicas, or a "
    "ScalingExperiment variant with fixed replicas) and sweep again. Surge never changes "
    "the target itself"
)


def _series(cluster: ClusterSection | None, part: str) -> list[Sample]:
    """A stored cluster series in epoch seconds (stored: seconds from the window start)."""
    body = getattr(cluster, part, None) if cluster is not None else None
    if cluster is None or body is None:
        return []
    start = cluster.window.start
    return [(float(start) + float(t), float(v)) for t, v in body.series]


def _in_window(samples: Sequence[Sample], window: Window) -> list[Sample]:
    """The samples inside the window, led by the one in force at its start (step reading)."""
    before = [s for s in samples if s[0] <= window.start]
    if not before:
        return clip(samples, window)
    inside = [s for s in clip(samples, window) if s[0] > window.start]
    return [(window.start, before[-1][1]), *inside]


def step_cluster(step: SweepStep, cluster: ClusterSection | None) -> tuple[list[int], float | None]:
    """Replica counts seen and CPU core-seconds over one step's window (None: no data)."""
    win = Window(step.window.start, step.window.end)
    reps = _in_window(_series(cluster, "replicas"), win)
    cpu = _in_window(_series(cluster, "cpu"), win)
    return sorted({int(v) for _, v in reps}), integral(cpu, win.end) if cpu else None


def apply_capacity(results: RunResults, *, replicas: int | None, source: str = "given") -> None:
    """Fill each step's replicas, ratePerReplica and cpuSecondsPerRequest, and add
    results.capacity; in place. No-op without results.sweep. `replicas`: the count to use
    where Prometheus has none (`source` says where it came from)."""
    sweep = results.sweep
    if sweep is None:
        return
    seen: set[int] = set()
    for step in sweep.steps:
        counts, cpu = step_cluster(step, results.cluster)
        seen.update(counts)
        if counts:
            step.replicas, step.replicas_source = max(counts), "prometheus"
        else:
            step.replicas, step.replicas_source = replicas, source
        step.replicas_changed = len(counts) > 1
        n = step.replicas
        step.rate_per_replica = step.rate / n if n else None
        achieved = step.achieved_rps
        step.achieved_rps_per_replica = achieved / n if n and achieved is not None else None
        done = step.requests.completed
        step.cpu_seconds_per_request = cpu / done if cpu is not None and done else None
    if not seen and replicas is not None:
        seen.add(replicas)
    changed = len(seen) > 1
    best = sweep.max_sustainable_rps
    at = next((s for s in sweep.steps if s.rate == best and s.passed), None)
    per = None if at is None or changed else at.rate_per_replica
    results.capacity = Capacity(
        max_sustainable_rps=best,
        max_sustainable_rps_per_replica=per,
        replicas=None if changed else next(iter(seen), None),
        replicas_seen=sorted(seen),
        cpu_seconds_per_request=None if at is None else at.cpu_seconds_per_request,
        resolution_rps=sweep.resolution_rps,
        lower_bound=sweep.lower_bound,
        inconclusive=REPLICAS_CHANGED.format(seen=" → ".join(map(str, sorted(seen))))
        if changed
        else None,
    )
    summary = results.summary
    summary.max_sustainable_rps = best
    summary.max_sustainable_rps_per_replica = per
    if at is not None:  # the printer columns show the step at the capacity
        summary.target_rps = round(at.rate, 3)
        summary.achieved_rps = None if at.achieved_rps is None else round(at.achieved_rps, 3)
        summary.p95_ms = at.latency.p95
        summary.error_rate = at.error_rate


def capacity_file(results: RunResults, pool: str = "default") -> dict[str, Any]:
    """What `surge simulate --capacity FILE` reads: {"capacity": {pool: PoolCapacity}}.

    maxRps: the highest rate one replica completed (ok responses) in any judged step, its
    saturation throughput; baseLatency: the p95 of the lightest step; cpuPerRequest: the
    CPU seconds per request at the capacity, only when Prometheus measured it (the
    simulator requires it, so a file without it needs it added by hand)."""
    steps = [s for s in (results.sweep.steps if results.sweep else []) if not s.saturated]
    cap = results.capacity or Capacity()
    per = [s.achieved_rps_per_replica for s in steps if s.achieved_rps_per_replica]
    body: dict[str, Any] = {}
    if per:
        body["maxRps"] = round(max(per), 6)
    light = min(steps, key=lambda s: s.rate, default=None)
    if light is not None and light.latency.p95 is not None:
        body["baseLatency"] = f"{light.latency.p95:g}ms"
    if cap.cpu_seconds_per_request is not None:
        body["cpuPerRequest"] = round(float(cap.cpu_seconds_per_request), 9)
    return {
        "capacity": {pool: body},
        "source": {
            "loadtest": results.loadtest,
            "runId": results.run_id,
            "maxSustainableRpsPerReplica": cap.max_sustainable_rps_per_replica,
            "replicas": cap.replicas,
        },
    }
