"""A worker's Prometheus series (surge_requests, latency and TTFT histograms, in flight,
dropped), fed in batches by the recorder (surge.loadgen.recorder)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from surge.loadgen.outcome import ERROR_CLASSES

OUTCOMES = ("ok", *ERROR_CLASSES)


class PromMetrics:
    """Prometheus series on an own CollectorRegistry, labelled loadtest, variant, worker.

    The recorder does not touch these per request: it tallies outcomes and keeps the
    latencies in lists, and `Recorder.flush` folds them in once a second (`add`). A
    scrape therefore sees values at most about one second old; every request is still
    counted and observed exactly once.
    """

    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

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
        buckets = self.BUCKETS
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
        # A worker's processes (multiproc) each set theirs at every flush; the parent serves
        # their sum. One process reads it at each scrape.
        self._in_flight = in_flight if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else None
        self._gauge = Gauge(
            "surge_in_flight",
            "Requests outstanding.",
            names,
            registry=self.registry,
            multiprocess_mode="livesum",
        ).labels(**labels)
        if self._in_flight is None:
            self._gauge.set_function(in_flight)
        self.dropped = Counter(
            "surge_dropped",
            "Open-loop arrivals dropped because maxInFlight were outstanding.",
            names,
            registry=self.registry,
        ).labels(**labels)
        self.outcome = {o: self._requests.labels(**labels, outcome=o) for o in OUTCOMES}
        self._bounds = np.asarray([float(b) for b in buckets], dtype=np.float64)

    def add(
        self,
        outcomes: dict[str, int],
        dropped: int,
        latencies_s: Sequence[float],
        ttfts_s: Sequence[float],
    ) -> None:
        """Fold a batch in: what `inc()`/`observe()` per request would have produced."""
        if self._in_flight is not None:
            self._gauge.set(self._in_flight())
        for name, n in outcomes.items():
            if n:
                self.outcome[name].inc(n)
        if dropped:
            self.dropped.inc(dropped)
        self.observe(latencies_s, ttfts_s)

    def observe(self, latencies_s: Sequence[float], ttfts_s: Sequence[float]) -> None:
        """observe() of each latency and TTFT (seconds) into its histogram, in one go."""
        for hist, values in ((self.latency, latencies_s), (self.ttft, ttfts_s)):
            if values:
                self._observe_many(hist, values)

    def _observe_many(self, hist: Any, values: Sequence[float]) -> None:
        buckets = getattr(hist, "_buckets", None)
        total = getattr(hist, "_sum", None)
        if buckets is None or total is None or len(buckets) != len(self._bounds) + 1:
            for v in values:  # another prometheus_client layout: the public, slower way
                hist.observe(v)
            return
        arr = np.asarray(values, dtype=np.float64)
        # observe() puts a value in the first bucket whose bound is >= it (+Inf last).
        counts = np.bincount(np.searchsorted(self._bounds, arr, side="left"))
        for i, n in enumerate(counts.tolist()):
            if n:
                buckets[i].inc(n)
        total.inc(float(arr.sum()))
