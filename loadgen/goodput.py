"""The goodput rule: which ok requests are good, from the thresholds (docs/metrics.md).

Every upper bound (`<` or `<=`) on a per-request timing's quantile or max (latency,
TTFT, time to first content token, TPOT, NTPOT) becomes a bound each request must meet;
with several on one metric the tightest wins. Means, minimums, ITL (a per-gap figure,
not a per-request one) and other metrics make no bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from surge.api.thresholds import Threshold

_SLO_FAMILIES = {
    "latency": "latency_s",
    "ttft": "ttft_s",
    "ttft_content": "ttft_content_s",
    "tpot": "tpot_s",
    "ntpot": "ntpot_s",
}
_SLO_STATS = ("p50", "p75", "p90", "p95", "p99", "p999", "max")


def _over(value: float | None, bound: float | None) -> bool:
    """value breaks bound; a request without the value (e.g. a single-token stream has
    no TPOT) is not held to a bound on it."""
    return bound is not None and value is not None and value > bound


@dataclass(frozen=True, slots=True)
class SloBounds:
    """Per-request bounds for goodput, in seconds (None: no bound on that metric)."""

    latency_s: float | None = None
    ttft_s: float | None = None
    ttft_content_s: float | None = None
    tpot_s: float | None = None
    ntpot_s: float | None = None

    def met(
        self,
        latency_s: float,
        ttft_s: float | None,
        tpot_s: float | None,
        ttft_content_s: float | None = None,
        ntpot_s: float | None = None,
    ) -> bool:
        if self.latency_s is not None and latency_s > self.latency_s:
            return False
        # A bound on the first token needs one: a reply that never streamed misses it.
        if self.ttft_s is not None and (ttft_s is None or ttft_s > self.ttft_s):
            return False
        if self.ttft_content_s is not None and (
            ttft_content_s is None or ttft_content_s > self.ttft_content_s
        ):
            return False
        return not (_over(tpot_s, self.tpot_s) or _over(ntpot_s, self.ntpot_s))

    @property
    def empty(self) -> bool:
        return all(
            b is None
            for b in (self.latency_s, self.ttft_s, self.ttft_content_s, self.tpot_s, self.ntpot_s)
        )


def slo_bounds(thresholds: Iterable[Threshold]) -> SloBounds:
    """The per-request bounds the thresholds imply (`latency.p95 < 800ms`, `ttft.max <= 1s`)."""
    bounds: dict[str, float] = {}
    for t in thresholds:
        family, _, stat = t.metric.partition(".")
        if family in _SLO_FAMILIES and stat in _SLO_STATS and t.op in ("<", "<="):
            key = _SLO_FAMILIES[family]
            bounds[key] = min(bounds.get(key, t.limit), t.limit)
    return SloBounds(**bounds)
