"""The load's signals (requestRate, inFlight, queueDepth), the slots queue model, and the
mapping of metrics to signals in spec.simulation.signals (docs/simulator.md, "Signals")."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from surge.api.experiment import HpaSpec
from surge.api.simulation import PoolCapacity
from surge.simulate.capacity import Pool, Slo
from surge.simulate.plan import Settings, plan_hpa
from surge.simulate.replicas import Metric, PodView, Tolerances, desired_replicas, parse_metrics
from surge.simulate.run import simulate

TOL = Tolerances(0.1, 0.1)


def _gpu(slots: int = 4, service_s: float = 2.0) -> Pool:
    """A pod serving `slots` requests at once, each for service_s: 2 req/s; little CPU."""
    return Pool("gpu", 0.002, 1.0, slots / service_s, service_s, 1.0, 0.0, 100, None, None,
                slots=slots, service_time_s=service_s)  # fmt: skip


def test_slots_and_service_time_go_together() -> None:
    PoolCapacity.model_validate({"cpuPerRequest": "2m", "slots": 4, "serviceTime": "2s"})
    with pytest.raises(ValidationError, match="slots and serviceTime go together"):
        PoolCapacity.model_validate({"cpuPerRequest": "2m", "slots": 4})


def test_a_slots_pool_queues_when_the_load_exceeds_its_slots() -> None:
    # capacity = ready × slots / serviceTime = 2 × 4 / 2 = 4 req/s; at 6 req/s the queue grows
    # by 2 a second, latency = serviceTime + queue / capacity, and CPU stays at 0.2 %.
    pool = _gpu()
    hpa = HpaSpec.model_validate({"minReplicas": 2, "maxReplicas": 2})
    settings = Settings(15, 0.1, 300.0, 2)
    out = simulate(plan_hpa("v", pool, hpa, settings, "hpa"), settings, [6.0] * 30, Slo(None, ""))
    assert out.served == pytest.approx(4.0 * 30)
    assert out.p95_max == pytest.approx(2.0 + 60.0 / 4.0)
    assert out.timeline[-1].utilization == pytest.approx(100 * 2.0 * 0.002 / 1.0)
    # Below capacity there is no queue: the latency is the service time.
    calm = simulate(plan_hpa("v", pool, hpa, settings, "hpa"), settings, [3.0] * 30, Slo(None, ""))
    assert calm.p95_max == pytest.approx(2.0)


def test_the_warm_up_is_simulated_but_not_judged() -> None:
    """A burst in the first 10 s (the warm-up) queues 2 req/s for 10 s, then the load falls
    to capacity and the queue drains: judged from t = 10, only the draining seconds count;
    judged from 0 the burst's seconds count too (the live verdict skips the warm-up)."""
    pool = _gpu()
    hpa = HpaSpec.model_validate({"minReplicas": 2, "maxReplicas": 2})
    settings = Settings(15, 0.1, 300.0, 2)
    rates = [6.0] * 10 + [2.0] * 40  # 20 queued by t = 10, drained at 2 req/s by t = 20
    plan = plan_hpa("v", pool, hpa, settings, "hpa")
    whole = simulate(plan, settings, rates, Slo(3.0, "latency.p95 < 3s"))
    judged = simulate(plan, settings, rates, Slo(3.0, "latency.p95 < 3s", judged_from_s=10.0))
    assert whole.p95_max == pytest.approx(2.0 + 20.0 / 4.0)  # at t = 9
    assert judged.p95_max == pytest.approx(2.0 + 18.0 / 4.0)  # at t = 10: 20 - 2 drained
    assert judged.violation_s < whole.violation_s
    assert whole.violation_s - judged.violation_s == 8  # t = 2..9: queue above 4 at p95 3 s
    assert judged.replica_seconds == whole.replica_seconds  # the cost is the whole run's


def _view(**kw: Any) -> PodView:
    base = dict(pending=0, starting=0, fresh=0, ready=4, served_per_pod=2.0, offered_rps=8.0)
    return PodView(**(base | kw))


def test_external_metrics_read_the_signal_total() -> None:
    # Little's law: inFlight = served × W + queue; External AverageValue: total / target.
    view = _view(in_flight=36.0, queue_depth=20.0)
    queue = Metric("external", "AverageValue", 5.0, "queueDepth")
    flight = Metric("external", "AverageValue", 3.0, "inFlight")
    rate = Metric("external", "AverageValue", 1.0)
    kw: dict[str, Any] = {"cpu_per_request": 0.002, "pod_cpu_request": 1.0}
    assert desired_replicas(queue, 4, view, TOL, **kw) == 4  # 20 / 5: at target
    assert desired_replicas(flight, 4, view, TOL, **kw) == 12  # ceil(36 / 3)
    assert desired_replicas(rate, 4, view, TOL, **kw) == 8  # 8 req/s over 1 each


def test_pods_metrics_read_each_pods_share() -> None:
    # Pods AverageValue: requestRate is what each pod serves (the documented meaning); the
    # others are the total over the Ready pods (even split): 36 / 4 = 9 in flight each.
    view = _view(in_flight=36.0, queue_depth=20.0)
    kw: dict[str, Any] = {"cpu_per_request": 0.002, "pod_cpu_request": 1.0}
    assert (
        desired_replicas(Metric("pods", "AverageValue", 3.0, "inFlight"), 4, view, TOL, **kw) == 12
    )
    assert desired_replicas(Metric("pods", "AverageValue", 2.0), 4, view, TOL, **kw) == 4
    assert (
        desired_replicas(Metric("pods", "AverageValue", 2.5, "queueDepth"), 4, view, TOL, **kw) == 8
    )


def test_signals_map_metric_names_and_unmapped_hpa_metrics_read_request_rate() -> None:
    raw = [
        {"type": "Pods", "pods": {"metric": {"name": "alice_inflight"},
                                  "target": {"type": "AverageValue", "averageValue": "4"}}},
        {"type": "External", "external": {"metric": {"name": "legacy_rps"},
                                          "target": {"type": "Value", "value": "100"}}},
    ]  # fmt: skip
    pods, external = parse_metrics(raw, "hpa.metrics", {"alice_inflight": "inFlight"})
    assert (pods.source, pods.signal) == ("pods", "inFlight")
    assert (external.source, external.signal) == ("external", "requestRate")


def test_an_inflight_hpa_scales_a_gpu_pool_that_cpu_never_would() -> None:
    # 4 slots × 2 s per pod: at 6 req/s, 2 pods serve 4 and the queue grows. The in-flight
    # HPA (target 4 per pod) scales up; CPU utilization is 0.4 % and never does.
    pool = _gpu()
    inflight = {"type": "Pods", "pods": {"metric": {"name": "inflight"},
                "target": {"type": "AverageValue", "averageValue": "4"}}}  # fmt: skip
    cpu = {"type": "Resource", "resource": {"name": "cpu",
           "target": {"type": "Utilization", "averageUtilization": 60}}}  # fmt: skip
    settings = Settings(15, 0.1, 300.0, 2, signals={"inflight": "inFlight"})
    rates = [6.0] * 300
    outs = {}
    for name, metric in (("inflight", inflight), ("cpu", cpu)):
        hpa = HpaSpec.model_validate({"minReplicas": 2, "maxReplicas": 10, "metrics": [metric]})
        outs[name] = simulate(
            plan_hpa(name, pool, hpa, settings, "hpa"), settings, rates, Slo(None, "")
        )
    assert outs["cpu"].replicas_max == 2 and math.isclose(outs["cpu"].served, 4.0 * 300)
    assert outs["inflight"].replicas_max >= 3
    assert outs["inflight"].served > outs["cpu"].served
