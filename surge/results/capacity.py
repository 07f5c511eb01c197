"""A sweep's capacity: replicas, rate per replica and CPU per request for each step, the
one number (max sustainable rate per replica within the SLO), and the simulator's
capacity file. Pure: dicts in, dicts out (docs/metrics.md, "Capacity sweep").

Replicas per step come from the cluster section's replica series (kube-state-metrics,
over the step's window) when Prometheus answered, else from the count the caller read
(`surge run --replicas`, or the operator's read of the Deployment). CPU seconds per
request = ∫ cores dt over the step's window (the cpu series read as steps) ÷ the
requests completed in it; null without cpu samples in the window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from surge.results.timeline import Sample, Window, clip, integral

REPLICAS_CHANGED = (
    "the target's replicas changed during the sweep ({seen}): its autoscaler was not "
    "pinned, so no rate is per replica; pin it (HPA minReplicas = maxReplicas, or a "
    "ScalingExperiment variant with fixed replicas) and sweep again. Surge never changes "
    "the target itself"
)


def _series(cluster: Mapping[str, Any], part: str) -> list[Sample]:
    """A stored cluster series in epoch seconds (stored: seconds from the window start)."""
    body = cluster.get(part)
    start = (cluster.get("window") or {}).get("start")
    if not body or start is None:
        return []
    return [(float(start) + float(t), float(v)) for t, v in body.get("series") or []]


def _in_window(samples: Sequence[Sample], window: Window) -> list[Sample]:
    """The samples inside the window, led by the one in force at its start (step reading)."""
    before = [s for s in samples if s[0] <= window.start]
    if not before:
        return clip(samples, window)
    inside = [s for s in clip(samples, window) if s[0] > window.start]
    return [(window.start, before[-1][1]), *inside]


def step_cluster(step: Mapping[str, Any], cluster: Mapping[str, Any]) -> dict[str, Any]:
    """Replica counts seen and CPU core-seconds over one step's window (None: no data)."""
    win = Window(float(step["window"]["start"]), float(step["window"]["end"]))
    reps = _in_window(_series(cluster, "replicas"), win)
    cpu = _in_window(_series(cluster, "cpu"), win)
    return {
        "replicasSeen": sorted({int(v) for _, v in reps}),
        "cpuSeconds": integral(cpu, win.end) if cpu else None,
    }


def apply_capacity(results: dict[str, Any], *, replicas: int | None, source: str = "given") -> None:
    """Fill each step's replicas, ratePerReplica and cpuSecondsPerRequest, and add
    results["capacity"]; in place. No-op without results["sweep"]. `replicas`: the count
    to use where Prometheus has none (`source` says where it came from)."""
    sweep = results.get("sweep")
    if not sweep:
        return
    cluster = results.get("cluster") or {}
    seen: set[int] = set()
    for step in sweep["steps"]:
        got = step_cluster(step, cluster)
        counts = got["replicasSeen"]
        seen.update(counts)
        if counts:
            step["replicas"], step["replicasSource"] = max(counts), "prometheus"
        else:
            step["replicas"], step["replicasSource"] = replicas, source
        step["replicasChanged"] = len(counts) > 1
        n = step["replicas"]
        step["ratePerReplica"] = step["rate"] / n if n else None
        achieved = step.get("achievedRps")
        step["achievedRpsPerReplica"] = achieved / n if n and achieved is not None else None
        done = (step.get("requests") or {}).get("completed") or 0
        cpu = got["cpuSeconds"]
        step["cpuSecondsPerRequest"] = cpu / done if cpu is not None and done else None
    if not seen and replicas is not None:
        seen.add(replicas)
    changed = len(seen) > 1
    best = sweep.get("maxSustainableRps")
    at = next((s for s in sweep["steps"] if s["rate"] == best and s["passed"]), None)
    per = None if at is None or changed else at.get("ratePerReplica")
    results["capacity"] = {
        "maxSustainableRps": best,
        "maxSustainableRpsPerReplica": per,
        "replicas": None if changed else next(iter(seen), None),
        "replicasSeen": sorted(seen),
        "cpuSecondsPerRequest": None if at is None else at.get("cpuSecondsPerRequest"),
        "resolutionRps": sweep.get("resolutionRps"),
        "lowerBound": sweep.get("lowerBound"),
        "inconclusive": REPLICAS_CHANGED.format(seen=" → ".join(map(str, sorted(seen))))
        if changed
        else None,
    }
    summary = results.setdefault("summary", {})
    summary["maxSustainableRps"] = best
    summary["maxSustainableRpsPerReplica"] = per
    if at is not None:  # the printer columns show the step at the capacity
        summary["targetRps"] = round(at["rate"], 3)
        summary["achievedRps"] = at.get("achievedRps") and round(at["achievedRps"], 3)
        summary["p95Ms"] = at["latency"]["p95"]
        summary["errorRate"] = at.get("errorRate")


def capacity_file(results: Mapping[str, Any], pool: str = "default") -> dict[str, Any]:
    """What `surge simulate --capacity FILE` reads: {"capacity": {pool: PoolCapacity}}.

    maxRps: the highest rate one replica completed (ok responses) in any judged step, its
    saturation throughput; baseLatency: the p95 of the lightest step; cpuPerRequest: the
    CPU seconds per request at the capacity, only when Prometheus measured it (the
    simulator requires it, so a file without it needs it added by hand)."""
    sweep = results.get("sweep") or {}
    cap = results.get("capacity") or {}
    steps = [s for s in sweep.get("steps") or [] if not s.get("saturated")]
    per = [s["achievedRpsPerReplica"] for s in steps if s.get("achievedRpsPerReplica")]
    body: dict[str, Any] = {}
    if per:
        body["maxRps"] = round(max(per), 6)
    light = min(steps, key=lambda s: s["rate"], default=None)
    if light is not None and light["latency"]["p95"] is not None:
        body["baseLatency"] = f"{light['latency']['p95']:g}ms"
    if cap.get("cpuSecondsPerRequest") is not None:
        body["cpuPerRequest"] = round(float(cap["cpuSecondsPerRequest"]), 9)
    return {
        "capacity": {pool: body},
        "source": {
            "loadtest": results.get("loadtest"),
            "runId": results.get("runId"),
            "maxSustainableRpsPerReplica": cap.get("maxSustainableRpsPerReplica"),
            "replicas": cap.get("replicas"),
        },
    }
