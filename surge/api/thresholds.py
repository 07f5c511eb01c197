"""SLO thresholds: the grammar `metric.stat <op> value[unit]`, parsed into a typed form.

Every metric name a threshold may use is listed in METRICS with its kind, so a
typo ("latncy.p95") is refused when the manifest is validated, not after a
one-hour run. Values are normalised to base units: seconds, ratios (0..1),
requests per second, plain counts.
"""

from __future__ import annotations

import difflib
import operator as _op
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    TIME = "time"  # seconds
    RATIO = "ratio"  # 0..1, written as 1% or 0.01
    RATE = "rate"  # per second
    COUNT = "count"
    VALUE = "value"  # a plain number with no unit (CPU cores, replicas)


_QUANTILES = ("p50", "p75", "p90", "p95", "p99", "p999", "max", "min", "mean")
_ERROR_CLASSES = ("connect", "timeout", "http_3xx", "http_4xx", "http_5xx", "protocol")
TIMING_FAMILIES = ("latency", "ttft", "ttft_content", "tpot", "itl", "ntpot", "schedule_lag")
"""Per-request timings, each with every quantile (docs/metrics.md has their formulas)."""


def _build_metrics() -> dict[str, Kind]:
    m: dict[str, Kind] = {}
    for family in TIMING_FAMILIES:
        for q in _QUANTILES:
            m[f"{family}.{q}"] = Kind.TIME
    m["errors.rate"] = Kind.RATIO
    m["errors.count"] = Kind.COUNT
    for cls in _ERROR_CLASSES:
        m[f"errors.{cls}.rate"] = Kind.RATIO
        m[f"errors.{cls}.count"] = Kind.COUNT
    m["throughput.rps"] = Kind.RATE
    m["throughput.achieved"] = Kind.RATIO  # achieved / target
    m["goodput.rps"] = Kind.RATE
    m["goodput.ratio"] = Kind.RATIO
    m["requests.count"] = Kind.COUNT
    m["dropped.count"] = Kind.COUNT
    m["requests.late"] = Kind.COUNT  # window arrivals sent after the window ended
    m["dropped.rate"] = Kind.RATIO
    m["tokens.output_rps"] = Kind.RATE
    m["tokens.input_rps"] = Kind.RATE
    for stat in ("min", "max", "mean"):
        m[f"replicas.{stat}"] = Kind.VALUE
    m["replicas.scale_events"] = Kind.COUNT
    m["replicas.time_to_scale_up"] = Kind.TIME
    for res in ("cpu", "gpu"):
        m[f"{res}.mean"] = Kind.VALUE
        m[f"{res}.max"] = Kind.VALUE
    return m


METRICS: dict[str, Kind] = _build_metrics()

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": _op.lt,
    "<=": _op.le,
    ">": _op.gt,
    ">=": _op.ge,
}

_TIME_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_EXPR = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(<=|>=|<|>|==|=|!=)?\s*(.*?)\s*$")
_NUM_UNIT = re.compile(r"^([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([A-Za-zµ%/]*)$")


@dataclass(frozen=True, slots=True)
class Threshold:
    """A parsed SLO: `metric op limit`, with `limit` in the metric's base unit."""

    expression: str
    metric: str
    op: str
    limit: float
    kind: Kind

    def check(self, measured: float) -> bool:
        return OPERATORS[self.op](measured, self.limit)


def parse_threshold(text: str) -> Threshold:
    """Parse e.g. 'latency.p95 < 800ms'. Raises ValueError naming the fix."""
    match = _EXPR.match(text)
    if not match or not match.group(1):
        raise ValueError(f"{text!r} is not a threshold; write e.g. 'latency.p95 < 800ms'")
    metric, op, raw = match.group(1), match.group(2), match.group(3)
    kind = METRICS.get(metric)
    if kind is None:
        close = difflib.get_close_matches(metric, METRICS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see docs/metrics.md for the names"
        raise ValueError(f"unknown metric {metric!r} in {text!r}; {hint}")
    if op is None:
        raise ValueError(f"{text!r} has no comparison; use one of <, <=, >, >=")
    if op not in OPERATORS:
        raise ValueError(f"operator {op!r} in {text!r} is not supported; use one of <, <=, >, >=")
    if not raw:
        raise ValueError(f"{text!r} has no limit after {op!r}")
    return Threshold(text.strip(), metric, op, _parse_value(raw, kind, text), kind)


def _parse_value(raw: str, kind: Kind, text: str) -> float:
    match = _NUM_UNIT.match(raw)
    if not match:
        raise ValueError(f"limit {raw!r} in {text!r} is not a number with an optional unit")
    number, unit = float(match.group(1)), match.group(2)
    if kind is Kind.TIME:
        if unit not in _TIME_UNITS:
            raise ValueError(f"limit {raw!r} in {text!r} needs a time unit; use e.g. 800ms or 1.5s")
        return number * _TIME_UNITS[unit]
    if kind is Kind.RATIO:
        if unit == "%":
            return number / 100.0
        if unit == "" and 0 <= number <= 1:
            return number
        raise ValueError(f"limit {raw!r} in {text!r} is a ratio; write it as 1% or 0.01")
    if kind is Kind.RATE:
        if unit in ("", "rps", "/s"):
            return number
        raise ValueError(f"limit {raw!r} in {text!r} is a rate; write it as 100 or 100rps")
    if unit:
        raise ValueError(f"limit {raw!r} in {text!r} takes no unit; write a plain number")
    return number


def format_value(value: float, kind: Kind) -> str:
    """Render a base-unit value for people: 0.8 s -> '800ms', 0.012 -> '1.2%'."""
    if kind is Kind.TIME:
        return f"{value * 1000:.4g}ms" if value < 10 else f"{value:.4g}s"
    if kind is Kind.RATIO:
        return f"{value * 100:.4g}%"
    if kind is Kind.RATE:
        return f"{value:.4g}/s"
    return f"{value:.4g}"
