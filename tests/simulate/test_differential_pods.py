"""The Pods-metric half of the HPA differential test (tests/e2e/test_hpa_simulator.py,
issue #30): its scenario generator, and the rule by which the load driver writes a pod's
`metrics.surge.dev/<metric>` annotation, checked against the simulator's pipeline."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import replace

import pytest

from surge.api.experiment import HpaSpec
from surge.simulate import pipeline
from surge.simulate.replicas import Metric, Tolerances, desired_replicas
from tests.support import hpa_compare as hc
from tests.support import hpa_scenarios as hs


def test_the_pods_batch_is_a_function_of_the_seed_and_leaves_the_cpu_batch_alone() -> None:
    a, b = hs.pods_batch(7, 16), hs.pods_batch(7, 16)
    assert a == b and a != hs.pods_batch(8, 16)
    assert len({s.name for s in a}) == 16
    assert all(s.name.startswith("p") for s in a)
    # Its own random stream: the CPU batch of a seed is what it was before the Pods batch
    # came (the digest of seed 7's batch computed on the tree before it, d76942a).
    cpu = json.dumps([s.as_json() for s in hs.random_batch(7, 32)], sort_keys=True)
    assert hashlib.sha256(cpu.encode()).hexdigest()[:16] == "d65be4090d1ee1d6"


@pytest.mark.parametrize("seed", [1, 2, 20261206])
def test_pods_scenarios_are_valid_hpas_on_both_signals(seed: int) -> None:
    signals = set()
    for s in hs.pods_batch(seed, 16):
        spec = s.hpa_spec()
        HpaSpec.model_validate(spec)
        metric = spec["metrics"][0]
        assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"
        assert metric["pods"]["metric"]["name"] == hc.PODS_METRICS[s.signal or "requestRate"]
        assert 1 <= s.min_replicas < s.max_replicas <= 10
        assert 1 <= s.initial <= s.max_replicas + 2
        assert hc.Scenario.from_json(s.as_json()) == s
        assert [t for t, _ in hc.simulated(s)][:3] == [20, 35, 50]
        signals.add(s.signal)
    assert signals == {"inFlight", "requestRate"}


def test_the_driver_writes_the_simulators_per_pod_value() -> None:
    # In flight: 0.5 s per request, so 30 req/s over 4 pods is 15 / 4 = 3.75 each.
    assert hc.pods_value_milli("inFlight", 30.0, 4) == 3750
    assert hc.pods_value_milli("requestRate", 10.0, 3) == 3333  # truncated, as the HPA reads it
    assert hc.pods_value_milli("requestRate", 10.0, 0) == 0


def test_a_pod_has_a_pods_metric_from_its_second_scrape_on() -> None:
    # Created at the sync of t = 20 (scrapes at 27.5, 42.5): missing at 35, there at 50.
    assert not hc.has_pods_metric(20.4, 35.0)
    assert hc.has_pods_metric(20.4, 50.0)
    # The creation time is read to the second: a second early changes nothing.
    assert hc.has_pods_metric(19.0, 50.0) and not hc.has_pods_metric(19.0, 35.0)
    assert hc.has_pods_metric(-40.0, 20.0)  # the trace's first pods
    pipe = hc.settings(4).pipeline
    assert pipe is not None
    # The simulator's view at the sync of t = 35: two old pods and two created at t = 20.
    ready = deque([(-1e9, -1e9)] * 2 + [(21.0, 20.0)] * 2)
    view = pipeline.view(pipe, 35.0, deque(), deque(), ready, 1.0, 4.0)
    assert view.no_series == 2
    assert pipeline.view(pipe, 50.0, deque(), deque(), ready, 1.0, 4.0).no_series == 0


def test_a_pods_metric_reads_the_live_second_and_counts_pods_without_a_series_missing() -> None:
    pipe = hc.settings(4).pipeline
    assert pipe is not None
    ready = deque([(-1e9, -1e9)] * 2 + [(21.0, 20.0)] * 2)
    view = pipeline.view(pipe, 35.0, deque(), deque(), ready, 9.0, 4.0)
    # served_per_pod is the scrape's (9 req/s, CPU); a Pods metric reads the live value.
    view = replace(view, served_now=2.0)
    metric = Metric("pods", "AverageValue", 1.0, "requestRate")
    tol = Tolerances(0.1, 0.1)
    # 2 pods with a value of 2 (ratio 2 > 1), 2 missing count as 0: (4 + 0) / 4 = 1.0,
    # inside the tolerance, so the count holds.
    got = desired_replicas(metric, 4, view, tol, cpu_per_request=0.01, pod_cpu_request=0.2)
    assert got == 4
    # At 1.5 per pod: the 2 missing pods count as 0, (3 + 0) / 4 = 0.75 flips the
    # direction, so the count holds; all 4 with a value would ask for ceil(1.5 × 4) = 6.
    view = replace(view, served_now=1.5)
    got = desired_replicas(metric, 4, view, tol, cpu_per_request=0.01, pod_cpu_request=0.2)
    assert got == 4
    view = replace(view, no_series=0)
    got = desired_replicas(metric, 4, view, tol, cpu_per_request=0.01, pod_cpu_request=0.2)
    assert got == 6
