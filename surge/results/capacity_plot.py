"""The capacity curve of a sweep, for reports: latency against the rate per replica. Pure
(drawing is surge.results.plots.render_png's)."""

from __future__ import annotations

from surge.api.results import RunResults
from surge.api.results.sweep import SweepStep
from surge.results.numbers import fmt_num
from surge.results.plots import HLine, Line, PlotSpec

_QUANTILES = ("p50", "p95", "p99")


def _x(step: SweepStep) -> float:
    """Rate per replica, or the whole rate when the replicas are unknown."""
    per = step.rate_per_replica
    return float(per if per is not None else step.rate)


def _q(step: SweepStep, q: str) -> float | None:
    value: float | None = getattr(step.latency, q)
    return value


def capacity_spec(results: RunResults) -> PlotSpec | None:
    """Latency p50/p95/p99 (ms) of every judged step against its rate per replica, the
    failing steps marked, latency thresholds as the SLO lines. None without a sweep."""
    all_steps = results.sweep.steps if results.sweep is not None else []
    steps = sorted((s for s in all_steps if not s.interrupted), key=_x)
    if not steps:
        return None
    lines = [
        Line(f"latency {q}", [(_x(s), float(v)) for s in steps if (v := _q(s, q)) is not None])
        for q in _QUANTILES
    ]
    failing = [
        (_x(s), float(s.latency.p99)) for s in steps if not s.passed and s.latency.p99 is not None
    ]
    if failing:
        lines.append(Line("failing step (p99)", failing, markers=True))
    slo = [
        HLine(t.expression, float(t.limit) * 1000.0)
        for t in results.thresholds
        if t.metric.startswith("latency.")
    ]
    per_replica = all(s.rate_per_replica is not None for s in steps)
    return PlotSpec(
        name="capacity",
        title="Capacity curve",
        ylabel="latency (ms, from intended send)",
        lines=lines,
        hlines=slo,
        xlabel="requests per second per replica" if per_replica else "requests per second",
    )


def capacity_rows(results: RunResults) -> list[tuple[str, ...]]:
    """One row per step: rate, per replica, achieved, p50, p95, p99, errors, verdict."""
    rows = []
    for s in results.sweep.steps if results.sweep is not None else []:
        mark = "saturated" if s.saturated else ("✓ held" if s.passed else "✗ broke")
        err = s.error_rate
        rows.append(
            (
                fmt_num(s.rate),
                fmt_num(s.rate_per_replica),
                fmt_num(s.achieved_rps),
                *(fmt_num(_q(s, q), " ms") for q in _QUANTILES),
                "-" if err is None else f"{err * 100:.2f}%",
                fmt_num(s.cpu_seconds_per_request, " s"),
                "interrupted" if s.interrupted else mark,
            )
        )
    return rows


CAPACITY_HEAD = ("rate", "per replica", "achieved", "p50", "p95", "p99", "errors",
                 "CPU s/request", "thresholds")  # fmt: skip


def capacity_headline(results: RunResults) -> str | None:
    """'max sustainable 68.75 req/s (68.75 per replica), within 6.25 req/s'; None: no sweep."""
    sweep, cap = results.sweep, results.capacity
    if sweep is None:
        return None
    best = sweep.max_sustainable_rps
    if best is None:
        return "no rate held every threshold"
    per = cap.max_sustainable_rps_per_replica if cap is not None else None
    text = f"max sustainable {best:.4g} req/s"
    text += f" ({per:.4g} per replica)" if per is not None else " (per replica: unknown)"
    if sweep.lower_bound:
        return text + " or more (every step up to maxRate held)"
    return text + f", within {sweep.resolution_rps or 0:.3g} req/s"
