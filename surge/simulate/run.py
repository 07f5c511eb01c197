"""The clock: one variant second by second, the HPA syncing every syncPeriod.

Each second: nodes that finished provisioning join, pods whose startup ended turn Ready,
the HPA syncs (on its period), Pending pods are placed on free nodes, and the offered
load is served by the Ready pods with a fluid queue (the backlog carries over). The
perfect autoscaler runs ceil(λ(t) / rate-at-SLO) Ready replicas, with no lag.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from surge.api.simulation import Signal
from surge.simulate import pipeline
from surge.simulate.capacity import LN20, RHO_MAX, Pool, Slo
from surge.simulate.hpa import HpaController, combine_proposals
from surge.simulate.keda import KedaScaler, describe
from surge.simulate.plan import Settings, VariantPlan
from surge.simulate.replicas import PodView, desired_replicas

METRIC_WINDOW_S = 15.0
"""metrics-server's --metric-resolution: a pod's first full CPU sample after it turns Ready."""
CPU_INITIALIZATION_S = 300.0
"""--horizontal-pod-autoscaler-cpu-initialization-period."""
NODE_UNNEEDED_S = 600.0
"""cluster-autoscaler --scale-down-unneeded-time: an empty node goes after this long."""
_LONG_AGO = -1e9


@dataclass(slots=True)
class Point:
    t: int
    replicas: int
    """spec.replicas after the sync (pods created, Pending and starting included)."""
    ready: int
    rps: float
    """Mean offered requests per second since the previous point."""
    latency_p95: float
    """The highest predicted p95 since the previous point (inf: no Ready pod)."""
    utilization: float
    """CPU utilization of a Ready pod, percent of its request."""


@dataclass(slots=True)
class Outcome:
    name: str
    pool: Pool
    timeline: list[Point] = field(default_factory=list)
    replica_seconds: float = 0.0
    requests: float = 0.0
    served: float = 0.0
    violation_s: int = 0
    p95_max: float = 0.0
    scale_events: int = 0
    replicas_min: int = 0
    replicas_max: int = 0
    keda: dict[str, Any] | None = None
    """For a ScaledObject variant: KEDA's parameters and the HPA it makes (keda.describe)."""
    changes: list[tuple[int, int]] = field(default_factory=list)
    """(second, spec.replicas) at every write, by the HPA or by KEDA's poll."""

    @property
    def cost(self) -> float | None:
        return None if self.pool.price is None else self.replica_seconds / 3600.0 * self.pool.price

    @property
    def cost_per_1k(self) -> float | None:
        cost = self.cost
        return None if cost is None or self.requests <= 0 else cost / (self.requests / 1000.0)


def violates(slo: Slo, p95: float, offered: float, capacity: float, backlog: float) -> bool:
    """A second violates a latency SLO when the predicted p95 exceeds it; without one,
    when the load exceeds what the Ready pods serve."""
    if slo.p95_s is not None:
        return p95 > slo.p95_s * (1 + 1e-9)
    return offered > 0 and (backlog > 1e-9 or offered > capacity)


def simulate(plan: VariantPlan, settings: Settings, rates: list[float], slo: Slo) -> Outcome:
    pool = plan.pool
    out = Outcome(plan.name, pool)
    if plan.keda is not None:
        out.keda = describe(plan.keda, plan.hpa)
    ctrl = HpaController(
        plan.min_replicas, plan.max_replicas, plan.behavior, settings.downscale_window_s
    )
    keda = KedaScaler(plan.keda) if plan.keda is not None else None
    mu, startup = pool.max_rps, pool.startup_s
    ppn = pool.pods_per_node
    unlimited_nodes = pool.node_provisioning_s <= 0
    first = settings.initial_replicas or plan.min_replicas
    # Pods as (ready_at, scheduled_at), oldest first; Pending pods by creation time.
    pending: deque[float] = deque()
    starting: deque[tuple[float, float]] = deque()
    ready: deque[tuple[float, float]] = deque([(_LONG_AGO, _LONG_AGO)] * first)
    nodes = pool.initial_nodes if pool.initial_nodes is not None else math.ceil(first / ppn)
    provisioning: deque[float] = deque()
    unneeded_since: float | None = None
    backlog = 0.0
    # Accumulated since the last sync: seconds, offered, served per Ready pod, worst p95,
    # in flight, queued.
    acc_n, acc_offered, acc_per_pod, acc_p95, acc_flight, acc_queue = 0, 0.0, 0.0, 0.0, 0.0, 0.0
    replicas = first
    out.replicas_min = out.replicas_max = first
    out.timeline.append(Point(0, first, first, rates[0] if rates else 0.0, 0.0, 0.0))
    sync, pipe = settings.sync_s, settings.pipeline
    first_sync = pipeline.first_sync(sync, pipe)
    # With a pipeline, a poll acts when its write lands, and a poll and a sync in one second
    # go in that order (Pipeline.keda_write_s).
    lands = pipe.first_poll_s + pipe.keda_write_s if pipe is not None else 0.0
    first_poll = math.floor(lands)
    once = pipe.creation_poll_s if pipe is not None else None
    creation_poll = math.floor(once) if once is not None else -1
    poll_after_sync = pipe is not None and lands % 1 > pipe.first_sync_s % 1
    per_pod_s: list[float] = []  # served per Ready pod, each second (what a scrape reads)
    # The signals of the second before (what a live query reads); t = 0 reads its own load.
    load0 = rates[0] if rates else 0.0
    last = (load0, load0 * pool.in_service_s(load0, first), 0.0)
    base, slots_s = pool.base_latency_s, pool.service_time_s
    slotted = pool.slots is not None
    judged_from = slo.judged_from_s

    def signals_now() -> dict[Signal, float]:
        return {"requestRate": last[0], "inFlight": last[1], "queueDepth": last[2]}

    def scale_to(new: int) -> None:
        nonlocal replicas
        if new > replicas:
            pending.extend([float(t)] * (new - replicas))
            out.scale_events += 1
        elif new < replicas:
            _delete(replicas - new, pending, starting, ready)
            out.scale_events += 1
        if new != replicas:
            out.changes.append((t, new))
        replicas = new
        out.replicas_min = min(out.replicas_min, new)
        out.replicas_max = max(out.replicas_max, new)

    for t, offered in enumerate(rates):
        while provisioning and provisioning[0] <= t:
            provisioning.popleft()
            nodes += 1
        while starting and starting[0][0] <= t:
            ready.append(starting.popleft())
        polls = keda is not None and (
            t == creation_poll or (t >= first_poll and (t - first_poll) % keda.plan.polling_s == 0)
        )
        if polls and keda is not None and not poll_after_sync:
            # KEDA's poll of this instant runs before the HPA's sync (docs/simulator.md).
            scale_to(keda.poll(float(t), replicas, keda.plan.active(signals_now())))
        if t >= first_sync and (t - first_sync) % sync == 0 and acc_n:
            per_pod = acc_per_pod / acc_n
            if pipe is None:
                view = _view(t, pending, starting, ready, per_pod, acc_offered / acc_n)
                view = replace(view, in_flight=acc_flight / acc_n, queue_depth=acc_queue / acc_n)
            else:
                at = pipeline.sync_instant(t, pipe)
                seen = per_pod_s[pipeline.sampled_second(pipeline.last_scrape(pipe, at))]
                view = pipeline.view(pipe, at, pending, starting, ready, seen, last[0])
                # A Pods metric is read live: the second before the sync instant.
                now = per_pod_s[pipeline.sampled_second(at)]
                view = replace(view, in_flight=last[1], queue_depth=last[2], served_now=now)
            if keda is not None and replicas == 0:
                # The HPA is disabled at 0 replicas (ScalingDisabled); KEDA scales from 0.
                ctrl.disabled(float(t))
                new = 0
            else:
                proposals = [
                    desired_replicas(
                        m,
                        replicas,
                        view,
                        plan.tolerances,
                        cpu_per_request=pool.cpu_per_request,
                        pod_cpu_request=pool.pod_cpu_request,
                    )
                    for m in plan.metrics
                ]
                new = ctrl.decide(float(t), replicas, combine_proposals(proposals, replicas))
            scale_to(new)
            util = 100.0 * per_pod * pool.cpu_per_request / pool.pod_cpu_request
            out.timeline.append(
                Point(t, new, len(ready), acc_offered / acc_n, acc_p95, round(util, 2))
            )
            acc_n, acc_offered, acc_per_pod, acc_p95, acc_flight, acc_queue = 0, 0, 0, 0, 0, 0
            if not unlimited_nodes:
                placed = len(starting) + len(ready)
                missing = math.ceil((placed + len(pending)) / ppn) - nodes - len(provisioning)
                if missing > 0:
                    provisioning.extend([t + pool.node_provisioning_s] * missing)
                # Nodes left empty for NODE_UNNEEDED_S go (cluster-autoscaler scale-down).
                spare = nodes - math.ceil(placed / ppn)
                if spare > 0 and not pending:
                    unneeded_since = t if unneeded_since is None else unneeded_since
                    if t - unneeded_since >= NODE_UNNEEDED_S:
                        nodes -= spare
                        unneeded_since = None
                else:
                    unneeded_since = None
        if polls and keda is not None and poll_after_sync:
            scale_to(keda.poll(float(t), replicas, keda.plan.active(signals_now())))
        if pending:
            free = len(pending) if unlimited_nodes else nodes * ppn - len(starting) - len(ready)
            for _ in range(min(free, len(pending))):
                pending.popleft()
                starting.append((t + startup, float(t)))
        n = len(ready)
        capacity = n * mu
        want = offered + backlog
        served = want if want < capacity else capacity
        backlog = want - served
        # Pool.p95 and Pool.in_service_s, inlined (this loop is the simulator's cost).
        if n:
            if slotted:
                p95 = base + backlog / capacity
                in_service = slots_s
            else:
                rho = offered / capacity
                queueing = base / (1.0 - (rho if rho < RHO_MAX else RHO_MAX))
                p95 = queueing + backlog / capacity
                in_service = queueing / LN20
            acc_per_pod += served / n
        else:
            p95 = math.inf
            in_service = 0.0
        # Little's law: in service = served × W, plus the queue (docs/simulator.md).
        flight = served * in_service + backlog
        last = (offered, flight, backlog)
        acc_flight += flight
        acc_queue += backlog
        per_pod_s.append(served / n if n else 0.0)
        acc_n += 1
        acc_offered += offered
        if p95 > acc_p95:
            acc_p95 = p95
        if t >= judged_from:  # the warm-up is simulated, not judged (as live)
            if violates(slo, p95, offered, capacity, backlog):
                out.violation_s += 1
            if p95 > out.p95_max:
                out.p95_max = p95
        out.replica_seconds += replicas
        out.requests += offered
        out.served += served
    return out


def _view(
    t: int,
    pending: deque[float],
    starting: deque[tuple[float, float]],
    ready: deque[tuple[float, float]],
    per_pod: float,
    offered: float,
) -> PodView:
    """groupPods' view: Ready pods newer than one metric window (and still inside the CPU
    initialization period) are the `fresh` ones; the deque is ordered by readiness."""
    fresh = 0
    for ready_at, scheduled_at in reversed(ready):
        if ready_at + METRIC_WINDOW_S <= t or scheduled_at + CPU_INITIALIZATION_S <= t:
            break
        fresh += 1
    return PodView(len(pending), len(starting), fresh, len(ready) - fresh, per_pod, offered)


def _delete(
    count: int,
    pending: deque[float],
    starting: deque[tuple[float, float]],
    ready: deque[tuple[float, float]],
) -> None:
    """The ReplicaSet's deletion order (controller.ActivePodsWithRanks), simplified:
    unscheduled pods first, then not-Ready ones, then the most recently Ready."""
    for queue in (pending, starting, ready):
        while count and queue:
            queue.pop()
            count -= 1


def perfect(pool: Pool, rates: list[float], slo: Slo, sync_s: int) -> Outcome:
    """replicas(t) = ceil(λ(t) / rate-at-SLO), Ready at once; its cost is the floor any
    autoscaler on this pool can reach at this SLO."""
    out = Outcome(f"perfect ({pool.name})", pool)
    per_replica = pool.rps_at_slo(slo.p95_s)
    if per_replica <= 0:  # the SLO is below the light-load latency: saturate instead
        per_replica = 0.99 * pool.max_rps
    acc_n, acc_offered, acc_p95 = 0, 0.0, 0.0
    first = math.ceil(rates[0] / per_replica - 1e-9) if rates else 0
    out.replicas_min = out.replicas_max = first
    out.timeline.append(Point(0, first, first, rates[0] if rates else 0.0, 0.0, 0.0))
    for t, offered in enumerate(rates):
        n = math.ceil(offered / per_replica - 1e-9)
        p95 = pool.p95(offered, n, 0.0) if offered > 0 else (pool.base_latency_s if n else 0.0)
        acc_n += 1
        acc_offered += offered
        acc_p95 = max(acc_p95, p95)
        if t >= slo.judged_from_s:
            if offered > 0 and violates(slo, p95, offered, n * pool.max_rps, 0.0):
                out.violation_s += 1
            out.p95_max = max(out.p95_max, p95)
        out.replica_seconds += n
        out.requests += offered
        out.served += offered
        out.replicas_min = min(out.replicas_min, n)
        out.replicas_max = max(out.replicas_max, n)
        if (t + 1) % sync_s == 0:
            util = 100.0 * (offered / n if n else 0.0) * pool.cpu_per_request / pool.pod_cpu_request
            out.timeline.append(Point(t + 1, n, n, acc_offered / acc_n, acc_p95, round(util, 2)))
            acc_n, acc_offered, acc_p95 = 0, 0.0, 0.0
    return out
