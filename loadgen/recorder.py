"""Recording one worker's requests: HDR histograms, counts, per-second series, Prometheus.

Which requests count: those whose intended send time (open loop) or actual send time
(closed loop) falls in the measured window [warmup, end). Warm-up requests are sent
and show in Prometheus, but not in any result.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from surge.api.thresholds import Threshold
from surge.loadgen.client import Outcome
from surge.loadgen.summary import WorkerSummary, encode_histogram, new_histogram, record_seconds

_SLO_FAMILIES = {"latency": "latency_s", "ttft": "ttft_s", "tpot": "tpot_s"}
_SLO_STATS = ("p50", "p75", "p90", "p95", "p99", "p999", "max")


@dataclass(frozen=True, slots=True)
class SloBounds:
    """Per-request bounds for goodput, in seconds (None: no bound on that metric)."""

    latency_s: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None

    def met(self, latency_s: float, ttft_s: float | None, tpot_s: float | None) -> bool:
        if self.latency_s is not None and latency_s > self.latency_s:
            return False
        if self.ttft_s is not None and (ttft_s is None or ttft_s > self.ttft_s):
            return False
        return self.tpot_s is None or tpot_s is None or tpot_s <= self.tpot_s

    @property
    def empty(self) -> bool:
        return self.latency_s is None and self.ttft_s is None and self.tpot_s is None


def slo_bounds(thresholds: Iterable[Threshold]) -> SloBounds:
    """The goodput rule: every upper bound on a latency, TTFT or TPOT quantile
    (`latency.p95 < 800ms`, `ttft.max <= 1s`, ...) becomes a per-request bound; with
    several on one metric the tightest wins. Means, minimums and other metrics don't."""
    bounds: dict[str, float] = {}
    for t in thresholds:
        family, _, stat = t.metric.partition(".")
        if family in _SLO_FAMILIES and stat in _SLO_STATS and t.op in ("<", "<="):
            key = _SLO_FAMILIES[family]
            bounds[key] = min(bounds.get(key, t.limit), t.limit)
    return SloBounds(**bounds)


class PromMetrics:
    """Prometheus series on an own CollectorRegistry, labelled loadtest, variant, worker."""

    def __init__(self, labels: dict[str, str], in_flight: Any) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        names = list(labels)
        self._requests = Counter(
            "surge_requests",
            "Requests finished, by outcome (ok or an error class).",
            [*names, "outcome"],
            registry=self.registry,
        )
        buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
        self.latency = Histogram(
            "surge_request_latency_seconds",
            "End-to-end latency (open loop: from the intended send).",
            names,
            buckets=buckets,
            registry=self.registry,
        ).labels(**labels)
        self.ttft = Histogram(
            "surge_ttft_seconds",
            "Time to first content token.",
            names,
            buckets=buckets,
            registry=self.registry,
        ).labels(**labels)
        gauge = Gauge(
            "surge_in_flight", "Requests outstanding.", names, registry=self.registry
        ).labels(**labels)
        gauge.set_function(in_flight)
        self.dropped = Counter(
            "surge_dropped",
            "Open-loop arrivals dropped because maxInFlight were outstanding.",
            names,
            registry=self.registry,
        ).labels(**labels)
        self.outcome = {
            o: self._requests.labels(**labels, outcome=o)
            for o in ("ok", "connect", "timeout", "http_4xx", "http_5xx", "protocol")
        }


class Interval:
    __slots__ = ("dropped", "errors", "hist", "ok")

    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.dropped = 0
        self.hist: HdrHistogram | None = None


class Recorder:
    """Collects one worker's results. Times are monotonic seconds; t0 is the load start."""

    def __init__(
        self,
        summary: WorkerSummary,
        *,
        t0: float,
        window_start_s: float,
        window_end_s: float,
        open_loop: bool,
        slo: SloBounds,
        prom: PromMetrics | None = None,
    ) -> None:
        self.summary = summary
        self.t0 = t0
        self.window_start_s = window_start_s
        self.window_end_s = window_end_s
        self.open_loop = open_loop
        self.slo = slo
        self.prom = prom
        self.counts = summary.counts
        h = summary.hists
        self._latency, self._service, self._lag = h["latency"], h["service"], h["schedule_lag"]
        self._ttft, self._tpot, self._itl = h["ttft"], h["tpot"], h["itl"]
        self.intervals: dict[int, Interval] = {}

    def _interval(self, t: float) -> Interval:
        sec = max(int(t - self.t0), 0)
        iv = self.intervals.get(sec)
        if iv is None:
            iv = self.intervals[sec] = Interval()
        return iv

    def in_window(self, rel_s: float) -> bool:
        return self.window_start_s <= rel_s < self.window_end_s

    def drop(self, intended_rel_s: float, now: float) -> None:
        self.counts["dropped_total"] += 1
        if self.prom is not None:
            self.prom.dropped.inc()
        if self.in_window(intended_rel_s):
            self.counts["dropped"] += 1
            self._interval(now).dropped += 1

    def record(self, intended_at: float, out: Outcome) -> None:
        """One finished request; intended_at is its due time (monotonic; = sent_at closed)."""
        c = self.counts
        c["sent_total"] += 1
        latency = out.done_at - (intended_at if self.open_loop else out.sent_at)
        if self.prom is not None:
            self.prom.outcome[out.error or "ok"].inc()
            if out.error is None:
                self.prom.latency.observe(latency)
                if out.first_token_at is not None:
                    self.prom.ttft.observe(out.first_token_at - out.sent_at)
        rel = (intended_at if self.open_loop else out.sent_at) - self.t0
        if not self.in_window(rel):
            return
        c["sent"] += 1
        iv = self._interval(out.done_at)
        if self.open_loop:
            record_seconds(self._lag, out.sent_at - intended_at)
        if out.error is not None:
            c[out.error] += 1
            iv.errors += 1
            return
        c["ok"] += 1
        iv.ok += 1
        record_seconds(self._latency, latency)
        record_seconds(self._service, out.done_at - out.sent_at)
        if iv.hist is None:
            iv.hist = new_histogram()
        record_seconds(iv.hist, latency)
        ttft = tpot = None
        times = out.chunk_times
        if times:
            c["streamed"] += 1
            ttft = times[0] - out.sent_at
            record_seconds(self._ttft, ttft)
            for a, b in itertools.pairwise(times):
                record_seconds(self._itl, b - a)
            tokens = out.output_tokens
            c["tokens"] += tokens
            c["tokens_from_usage" if out.usage_tokens is not None else "tokens_from_chunks"] += 1
            if tokens >= 2:
                tpot = (times[-1] - times[0]) / (tokens - 1)
                record_seconds(self._tpot, tpot)
        if self.slo.met(latency, ttft, tpot):
            c["good"] += 1

    def take_intervals(self, before_sec: int) -> list[dict[str, Any]]:
        """Progress records for every finished second < before_sec (removed once taken)."""
        out = []
        series = self.summary.series
        for sec in sorted(s for s in self.intervals if s < before_sec):
            iv = self.intervals.pop(sec)
            for key, val in (("ok", iv.ok), ("errors", iv.errors), ("dropped", iv.dropped)):
                seq = series.setdefault(key, [])
                if len(seq) <= sec:
                    seq.extend([0] * (sec + 1 - len(seq)))
                seq[sec] += val
            out.append(
                {
                    "s": sec,
                    "ok": iv.ok,
                    "err": iv.errors,
                    "drop": iv.dropped,
                    "h": encode_histogram(iv.hist) if iv.hist is not None else None,
                }
            )
        return out
