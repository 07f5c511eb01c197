"""Latency and output-length distributions for Alice, parsed from short strings.

Grammar (durations use surge's unit grammar: "50ms", "1.5s", "200us"):

    none                                   no delay
    fixed:50ms            (or just "50ms") always 50 ms
    normal:mean=100ms,sd=10ms              clipped at 0
    lognormal:median=80ms,sigma=0.5        exp(N(ln median, sigma))
    pareto:scale=20ms,alpha=1.5[,cap=10s]  classic Pareto (minimum = scale), capped

Output lengths: "fixed:64" (or "64") and "uniform:16-128" (both ends inclusive).

Everything here is pure: samplers take a numpy Generator so the server owns the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from surge.api.durations import format_duration, parse_duration

LatencyKind = Literal["none", "fixed", "normal", "lognormal", "pareto"]

# A heavy tail with alpha <= 1 has an infinite mean; the cap keeps one request
# from sleeping for hours and is part of the configured truth.
DEFAULT_PARETO_CAP_S = 10.0


@dataclass(frozen=True, slots=True)
class LatencySpec:
    """A delay distribution. All parameters in seconds, except `sigma`/`alpha` (unitless)."""

    kind: LatencyKind = "none"
    value_s: float = 0.0  # fixed
    mean_s: float = 0.0  # normal
    sd_s: float = 0.0  # normal
    median_s: float = 0.0  # lognormal
    sigma: float = 0.0  # lognormal
    scale_s: float = 0.0  # pareto minimum
    alpha: float = 0.0  # pareto shape
    cap_s: float = DEFAULT_PARETO_CAP_S  # pareto upper bound

    def describe(self) -> str:
        """The canonical spelling, accepted back by `parse_latency`."""
        d = format_duration
        match self.kind:
            case "none":
                return "none"
            case "fixed":
                return f"fixed:{d(self.value_s)}"
            case "normal":
                return f"normal:mean={d(self.mean_s)},sd={d(self.sd_s)}"
            case "lognormal":
                return f"lognormal:median={d(self.median_s)},sigma={self.sigma:g}"
            case "pareto":
                return f"pareto:scale={d(self.scale_s)},alpha={self.alpha:g},cap={d(self.cap_s)}"


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """Output length in tokens: `low == high` means fixed; both ends inclusive."""

    low: int = 64
    high: int = 64

    def describe(self) -> str:
        return f"fixed:{self.low}" if self.low == self.high else f"uniform:{self.low}-{self.high}"


def _params(body: str, allowed: set[str], text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in allowed:
            raise ValueError(f"{text!r}: expected parameters {sorted(allowed)}, got {part!r}")
        out[key.strip()] = value.strip()
    return out


def _need(params: dict[str, str], keys: tuple[str, ...], text: str) -> None:
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"{text!r}: missing {', '.join(missing)}")


def _positive(x: float, name: str, text: str, *, allow_zero: bool = True) -> float:
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{text!r}: {name} must be {'>= 0' if allow_zero else '> 0'}")
    return x


def parse_latency(text: str) -> LatencySpec:
    """Parse a latency distribution (grammar in the module docstring). Raises ValueError."""
    s = text.strip()
    kind, sep, body = s.partition(":")
    kind = kind.strip().lower()
    if not sep:
        if kind in ("", "none", "0"):
            return LatencySpec()
        return LatencySpec("fixed", value_s=_positive(parse_duration(s), "value", text))
    if kind == "fixed":
        return LatencySpec("fixed", value_s=_positive(parse_duration(body), "value", text))
    if kind == "normal":
        p = _params(body, {"mean", "sd"}, text)
        _need(p, ("mean", "sd"), text)
        return LatencySpec(
            "normal",
            mean_s=_positive(parse_duration(p["mean"]), "mean", text),
            sd_s=_positive(parse_duration(p["sd"]), "sd", text),
        )
    if kind == "lognormal":
        p = _params(body, {"median", "sigma"}, text)
        _need(p, ("median", "sigma"), text)
        return LatencySpec(
            "lognormal",
            median_s=_positive(parse_duration(p["median"]), "median", text, allow_zero=False),
            sigma=_positive(float(p["sigma"]), "sigma", text),
        )
    if kind == "pareto":
        p = _params(body, {"scale", "alpha", "cap"}, text)
        _need(p, ("scale", "alpha"), text)
        return LatencySpec(
            "pareto",
            scale_s=_positive(parse_duration(p["scale"]), "scale", text, allow_zero=False),
            alpha=_positive(float(p["alpha"]), "alpha", text, allow_zero=False),
            cap_s=_positive(
                parse_duration(p["cap"]) if "cap" in p else DEFAULT_PARETO_CAP_S, "cap", text
            ),
        )
    raise ValueError(
        f"{text!r}: unknown distribution {kind!r}; use none|fixed|normal|lognormal|pareto"
    )


def parse_tokens(text: str) -> TokenSpec:
    """Parse "fixed:64", "64" or "uniform:16-128". Raises ValueError."""
    s = text.strip()
    kind, sep, body = s.partition(":")
    try:
        if not sep:
            low = high = int(kind)
        elif kind == "fixed":
            low = high = int(body)
        elif kind == "uniform":
            a, dash, b = body.partition("-")
            if not dash:
                raise ValueError
            low, high = int(a), int(b)
        else:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{text!r} is not an output length; use fixed:64 or uniform:16-128"
        ) from None
    if low < 1 or high < low:
        raise ValueError(f"{text!r}: need 1 <= low <= high")
    return TokenSpec(low, high)


def sample_latency_s(spec: LatencySpec, rng: np.random.Generator) -> float:
    """Draw one delay in seconds (always >= 0)."""
    match spec.kind:
        case "none":
            return 0.0
        case "fixed":
            return spec.value_s
        case "normal":
            return max(0.0, float(rng.normal(spec.mean_s, spec.sd_s)))
        case "lognormal":
            return float(spec.median_s * math.exp(spec.sigma * float(rng.standard_normal())))
        case "pareto":
            # numpy's pareto is Lomax (minimum 0); +1 makes it the classic Pareto.
            return min(spec.cap_s, float(spec.scale_s * (1.0 + rng.pareto(spec.alpha))))


def sample_tokens(spec: TokenSpec, rng: np.random.Generator) -> int:
    """Draw one output length (inclusive range)."""
    if spec.low == spec.high:
        return spec.low
    return int(rng.integers(spec.low, spec.high + 1))


def stall_wait_s(elapsed_s: float, every_s: float, for_s: float) -> float:
    """Seconds a request arriving `elapsed_s` after server start is held by a stall.

    Stall k (k = 1, 2, ...) covers [k*every_s, k*every_s + for_s) since start; a
    request arriving inside it waits until it ends, outside it waits 0. The first
    period is clean so that start-up and warm-up are never stalled.
    """
    if every_s <= 0 or for_s <= 0 or elapsed_s < every_s:
        return 0.0
    into = elapsed_s % every_s
    return for_s - into if into < for_s else 0.0
