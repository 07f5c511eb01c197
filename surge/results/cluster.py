"""From query samples to the results' `cluster` section and flat metrics. Pure.

The flat names are those of surge.api.thresholds.METRICS (replicas.*, cpu.*, gpu.*),
so thresholds such as `replicas.max <= 8` read them directly. A query that returned
nothing leaves its metrics None (a threshold on them fails) and its name in noData.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from surge.api.thresholds import METRICS
from surge.results.timeline import (
    Sample,
    Window,
    clip,
    downsample,
    first_rise,
    integral,
    series_stats,
    time_to_peak,
    value_changes,
)

MAX_STORED_POINTS = 120
"""Stored series are downsampled to this many points: status stays well under etcd's
object size limit even with every query present."""

CLUSTER_METRICS: tuple[str, ...] = (
    "replicas.min",
    "replicas.max",
    "replicas.mean",
    "replicas.scale_events",
    "replicas.time_to_scale_up",
    "cpu.mean",
    "cpu.max",
    "gpu.mean",
    "gpu.max",
)

UNITS: dict[str, str] = {
    "replicas": "replicas",
    "hpa_current_replicas": "replicas",
    "hpa_desired_replicas": "replicas",
    "cpu": "cores",
    "memory": "bytes",
    "gpu_util": "percent",
    "gpu_memory": "MiB",
    "loadgen_rps": "per second",
    "loadgen_errors_rps": "per second",
    "loadgen_in_flight": "requests",
    "loadgen_latency_p95": "seconds",
}
# Where each known query lands in the section; other names go to section["extra"].
_SECTION_PATH: dict[str, tuple[str, str | None]] = {
    "replicas": ("replicas", None),
    "hpa_current_replicas": ("hpa", "currentReplicas"),
    "hpa_desired_replicas": ("hpa", "desiredReplicas"),
    "cpu": ("cpu", None),
    "memory": ("memory", None),
    "gpu_util": ("gpu", None),
    "gpu_memory": ("gpu", "memory"),
    "loadgen_rps": ("loadgen", "rps"),
    "loadgen_errors_rps": ("loadgen", "errorsRps"),
    "loadgen_in_flight": ("loadgen", "inFlight"),
    "loadgen_latency_p95": ("loadgen", "latencyP95"),
}


@dataclass(frozen=True, slots=True)
class QueryOutcome:
    """One range query's answer: samples, or an empty list and the reason."""

    name: str
    promql: str
    samples: list[Sample] = field(default_factory=list)
    reason: str | None = None
    """Why there are no samples ('no data', 'query failed: ...'); None when there are."""

    @property
    def has_data(self) -> bool:
        return bool(self.samples)


@dataclass(frozen=True, slots=True)
class ClusterMetrics:
    section: dict[str, Any]
    """results.cluster (ClusterSection) as JSON, series downsampled (t: seconds from the start)."""
    metrics: dict[str, float | None]
    """Flat metrics for results.metrics.update(...); None = no data."""
    no_data: dict[str, str]
    """Query name -> reason, for every query that returned nothing."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Query name -> why it was not sent."""


def _rounded(x: float) -> float:
    return round(x, 6)


def stored_series(samples: Sequence[Sample], window: Window, max_points: int) -> list[list[float]]:
    """[[seconds from window start, value], ...], at most max_points long."""
    return [[_rounded(t - window.start), v] for t, v in downsample(samples, max_points)]


def stored_stats(
    samples: Sequence[Sample], window: Window, unit: str, max_points: int
) -> dict[str, Any] | None:
    """min, max, time-weighted mean, last and the stored series; None without samples."""
    stats = series_stats(samples, window.end)
    if stats is None:
        return None
    return {
        "unit": unit,
        "min": stats.min,
        "max": stats.max,
        "mean": _rounded(stats.mean),
        "last": stats.last,
        "series": stored_series(samples, window, max_points),
    }


def replica_summary(
    samples: Sequence[Sample], window: Window, max_points: int
) -> dict[str, Any] | None:
    """The replica timeline: min, max, time-weighted mean, time to first scale-up and to
    the peak (seconds from window start; null when it never scaled up), replica-seconds,
    scale events (value changes). None without samples."""
    base = stored_stats(samples, window, "replicas", max_points)
    if base is None:
        return None
    up = first_rise(samples, window.start)
    peak = time_to_peak(samples, window.start)
    return {
        **base,
        "timeToFirstScaleUpS": None if up is None else _rounded(up),
        "timeToPeakS": None if peak is None else _rounded(peak),
        "replicaSeconds": _rounded(integral(samples, window.end)),
        "scaleEvents": value_changes(samples),
    }


def flat_metrics(section: Mapping[str, Any]) -> dict[str, float | None]:
    """The METRICS names filled from the section; None where a query had no data."""
    rep = section.get("replicas")
    cpu = section.get("cpu")
    gpu = section.get("gpu")

    def pick(part: Mapping[str, Any] | None, key: str) -> float | None:
        value = part.get(key) if part else None
        return None if value is None else float(value)

    out: dict[str, float | None] = {
        "replicas.min": pick(rep, "min"),
        "replicas.max": pick(rep, "max"),
        "replicas.mean": pick(rep, "mean"),
        "replicas.scale_events": pick(rep, "scaleEvents"),
        "replicas.time_to_scale_up": pick(rep, "timeToFirstScaleUpS"),
        "cpu.mean": pick(cpu, "mean"),
        "cpu.max": pick(cpu, "max"),
        "gpu.mean": pick(gpu, "mean"),
        "gpu.max": pick(gpu, "max"),
    }
    assert set(out) <= set(METRICS), sorted(set(out) - set(METRICS))
    return out


def build_cluster(
    outcomes: Sequence[QueryOutcome],
    window: Window,
    *,
    step_s: float,
    skipped: Mapping[str, str] | None = None,
    max_points: int = MAX_STORED_POINTS,
) -> ClusterMetrics:
    """The `cluster` section and flat metrics from every query's outcome."""
    section: dict[str, Any] = {
        "window": {"start": window.start, "end": window.end, "stepSeconds": step_s},
        "queries": {o.name: o.promql for o in outcomes},
        "replicas": None,
        "hpa": {},
        "cpu": None,
        "memory": None,
        "gpu": None,
        "loadgen": {},
        "extra": {},
    }
    no_data: dict[str, str] = {}
    for o in outcomes:
        samples = clip(o.samples, window)
        if not samples:
            no_data[o.name] = o.reason or "no data in the measured window"
        if o.name == "replicas":
            section["replicas"] = replica_summary(samples, window, max_points)
            continue
        summary = stored_stats(samples, window, UNITS.get(o.name, ""), max_points)
        part, key = _SECTION_PATH.get(o.name, ("extra", o.name))
        if key is None:
            section[part] = summary
        elif part == "gpu" and key == "memory":
            continue  # placed after the loop, once gpu_util's summary exists
        else:
            section[part][key] = summary
    gpu_mem = next((o for o in outcomes if o.name == "gpu_memory"), None)
    if gpu_mem is not None:
        mem = stored_stats(clip(gpu_mem.samples, window), window, "MiB", max_points)
        if section["gpu"] is None:
            section["gpu"] = {"memory": mem} if mem else None
        else:
            section["gpu"]["memory"] = mem
    section["noData"] = sorted(no_data)
    section["noDataReasons"] = dict(sorted(no_data.items()))
    section["skipped"] = dict(skipped or {})
    return ClusterMetrics(section, flat_metrics(section), no_data, dict(skipped or {}))


def metrics_available_condition(cluster: ClusterMetrics) -> dict[str, str]:
    """The MetricsAvailable condition (type, status, reason, message) for status."""
    if not cluster.no_data:
        return {
            "type": "MetricsAvailable",
            "status": "True",
            "reason": "AllQueriesReturnedData",
            "message": f"{len(cluster.section['queries'])} queries returned data",
        }
    names = ", ".join(f"{n} ({r})" for n, r in sorted(cluster.no_data.items()))
    return {
        "type": "MetricsAvailable",
        "status": "False",
        "reason": "NoData",
        "message": f"no data for the measured window: {names}"[:1024],
    }
