"""The capacity curve of a sweep, for reports: latency against the rate per replica. Pure
(drawing is surge.results.plots.render_png's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from surge.results.plots import HLine, Line, PlotSpec

_QUANTILES = ("p50", "p95", "p99")


def _x(step: Mapping[str, Any]) -> float:
    """Rate per replica, or the whole rate when the replicas are unknown."""
    per = step.get("ratePerReplica")
    return float(per if per is not None else step["rate"])


def capacity_spec(
    results: Mapping[str, Any], thresholds: Sequence[Mapping[str, Any]]
) -> PlotSpec | None:
    """Latency p50/p95/p99 (ms) of every judged step against its rate per replica, the
    failing steps marked, latency thresholds as the SLO lines. None without a sweep."""
    sweep = results.get("sweep") or {}
    steps = sorted((s for s in sweep.get("steps") or [] if not s.get("interrupted")), key=_x)
    if not steps:
        return None
    lines = [
        Line(
            f"latency {q}",
            [(_x(s), float(s["latency"][q])) for s in steps if s["latency"][q] is not None],
        )
        for q in _QUANTILES
    ]
    failing = [
        (_x(s), float(s["latency"]["p99"]))
        for s in steps
        if not s["passed"] and s["latency"]["p99"] is not None
    ]
    if failing:
        lines.append(Line("failing step (p99)", failing, markers=True))
    slo = [
        HLine(str(t.get("expression")), float(t["limit"]) * 1000.0)
        for t in thresholds
        if str(t.get("metric", "")).startswith("latency.") and t.get("limit") is not None
    ]
    per_replica = all(s.get("ratePerReplica") is not None for s in steps)
    return PlotSpec(
        name="capacity",
        title="Capacity curve",
        ylabel="latency (ms, from intended send)",
        lines=lines,
        hlines=slo,
        xlabel="requests per second per replica" if per_replica else "requests per second",
    )


def capacity_rows(results: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row per step: rate, per replica, achieved, p50, p95, p99, errors, verdict."""

    def num(v: Any, unit: str = "") -> str:
        return "-" if v is None else f"{float(v):.4g}{unit}"

    rows = []
    for s in (results.get("sweep") or {}).get("steps") or []:
        lat = s["latency"]
        mark = "saturated" if s.get("saturated") else ("✓ held" if s["passed"] else "✗ broke")
        err = s.get("errorRate")
        rows.append(
            (
                num(s["rate"]),
                num(s.get("ratePerReplica")),
                num(s.get("achievedRps")),
                *(num(lat[q], " ms") for q in _QUANTILES),
                "-" if err is None else f"{err * 100:.2f}%",
                num(s.get("cpuSecondsPerRequest"), " s"),
                "interrupted" if s.get("interrupted") else mark,
            )
        )
    return rows


CAPACITY_HEAD = ("rate", "per replica", "achieved", "p50", "p95", "p99", "errors",
                 "CPU s/request", "thresholds")  # fmt: skip


def capacity_headline(results: Mapping[str, Any]) -> str | None:
    """'max sustainable 68.75 req/s (68.75 per replica), within 6.25 req/s'; None: no sweep."""
    sweep, cap = results.get("sweep"), results.get("capacity") or {}
    if not sweep:
        return None
    best = sweep.get("maxSustainableRps")
    if best is None:
        return "no rate held every threshold"
    per = cap.get("maxSustainableRpsPerReplica")
    text = f"max sustainable {best:.4g} req/s"
    text += f" ({per:.4g} per replica)" if per is not None else " (per replica: unknown)"
    if sweep.get("lowerBound"):
        return text + " or more (every step up to maxRate held)"
    return text + f", within {sweep.get('resolutionRps') or 0:.3g} req/s"
