"""The metrics pipeline of a real cluster, for `Settings.pipeline` (docs/simulator.md,
"Comparison with a real HPA").

metrics-server scrapes every node's kubelet (kwok here) every --metric-resolution seconds on
a fixed ticker. A pod's CPU usage is the rate of its cumulative counter between its last two
scrapes; kwok integrates the usage it reports at each scrape over the time since the one
before, so the rate is the usage at the last scrape instant. A pod therefore has a metric
only from its second scrape on (metrics-server needs two points; the third on kwok, see
`Pipeline.first_metric_scrape`), and the HPA, syncing on its
own clock, reads the value of the last scrape before the sync, up to one resolution old.
groupPods then calls a Ready pod whose metric is not one window newer than its readiness
unready (inside the CPU initialization period), and a pod without a metric missing.
A Pods metric (custom.metrics.k8s.io) is read live at the sync, the value of the second
before it; a pod has one from its `Pipeline.pods_metric_scrape`-th scrape on.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

from surge.simulate.plan import Pipeline
from surge.simulate.replicas import PodView

CPU_INITIALIZATION_S = 300.0
"""--horizontal-pod-autoscaler-cpu-initialization-period."""


def first_sync(sync_s: int, pipe: Pipeline | None) -> int:
    """The second of the first sync: syncPeriod, or the pipeline's first sync instant."""
    return sync_s if pipe is None else math.floor(pipe.first_sync_s)


def sync_instant(t: int, pipe: Pipeline) -> float:
    """The sync of second t at its exact instant (the first sync's fraction kept)."""
    return t + (pipe.first_sync_s - math.floor(pipe.first_sync_s))


def _ticks(pipe: Pipeline, at: float) -> int:
    """The index of the last scrape at or before `at` (the ticker runs before t = 0 too)."""
    return math.floor((at - pipe.scrape_offset_s) / pipe.scrape_s + 1e-9)


def last_scrape(pipe: Pipeline, at: float) -> float:
    """The last scrape instant at or before `at`."""
    return pipe.scrape_offset_s + _ticks(pipe, at) * pipe.scrape_s


def scrapes_between(pipe: Pipeline, after: float, until: float) -> int:
    """How many scrape instants lie in (after, until]."""
    return max(0, _ticks(pipe, until) - _ticks(pipe, after))


def sampled_second(scrape: float) -> int:
    """The second of the trace whose per-pod usage a scrape at `scrape` reads: the last full
    second before it (the load driver writes each second's usage as that second begins)."""
    return max(0, math.floor(scrape) - 1)


def view(
    pipe: Pipeline,
    at: float,
    pending: deque[float],
    starting: deque[tuple[float, float]],
    ready: deque[tuple[float, float]],
    per_pod: float,
    offered: float,
) -> PodView:
    """groupPods at the sync instant `at`, with metrics from the last scrape: pods scraped
    fewer than `first_metric_scrape` times since they were scheduled have no metric
    (missing); those whose metric is not one resolution newer than their readiness, inside
    the CPU initialization period, are unready (`fresh`)."""
    scrape = last_scrape(pipe, at)
    fresh = missing = no_series = 0
    series = pipe.pods_metric_scrape
    for ready_at, scheduled_at in ready:
        scrapes = scrapes_between(pipe, scheduled_at, at)
        if series is not None and scrapes < series:
            no_series += 1
        if scrapes < pipe.first_metric_scrape:
            missing += 1
        elif scheduled_at + CPU_INITIALIZATION_S > at and scrape < ready_at + pipe.scrape_s:
            fresh += 1
    full = len(ready) - fresh - missing
    view = PodView(len(pending), len(starting), fresh, full, per_pod, offered, missing)
    return view if series is None else replace(view, no_series=no_series)
