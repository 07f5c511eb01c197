"""Alice's Prometheus metrics: one registry per app, never the global one."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class _ProcessCpu(Collector):
    """alice_cpu_seconds_total: process CPU (user+system, all threads), read at scrape."""

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "alice_cpu_seconds", "CPU time used by the Alice process (user+system)."
        )
        family.add_metric([], time.process_time())
        yield family


class AgentMetrics:
    """Alice's Prometheus metrics, on a registry of their own (never the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            "alice_request_duration_seconds",
            "Time from arrival at the handler to the last byte, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.requests = Counter(
            "alice_requests", "Requests by endpoint and HTTP status.", ["endpoint", "status"],
            registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "alice_requests_in_flight", "Requests inside the server, queued ones included.",
            registry=r,
        )  # fmt: skip
        self.queued = Gauge(
            "alice_requests_queued", "Requests waiting for a concurrency slot.", registry=r
        )
        # What an autoscaler on in-flight work or slot utilization reads (docs/agent.md):
        # busy / slots is the utilization of a GPU-slot (or max_concurrency) server.
        self.slots = Gauge(
            "alice_slots", "Concurrency slots (--gpu-slots or --max-concurrency); 0 = unlimited.",
            registry=r,
        )  # fmt: skip
        self.slots_busy = Gauge(
            "alice_slots_busy", "Admitted requests, each holding a slot until it answers.",
            registry=r,
        )  # fmt: skip
        self.replicas = Gauge(
            "alice_replicas",
            "Replicas this Alice stands for (--replicas-file, a test device); 1 otherwise.",
            registry=r,
        )
        self.replicas.set(1)
        self.queue_wait_seconds = Histogram(
            "alice_queue_wait_seconds",
            "Time from arrival (after any stall hold) to admission to a slot.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.busy_cpu = Counter(
            "alice_busy_cpu_seconds", "CPU time burnt by the configured per-request work.",
            registry=r,
        )  # fmt: skip
        self.output_tokens = Counter(
            "alice_output_tokens", "Completion tokens sent by /v1/chat/completions.", registry=r
        )
        r.register(_ProcessCpu())
        ProcessCollector(registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
