"""The replica calculator: the documented algorithm, tolerance, unready and missing pods."""

from __future__ import annotations

import pytest

from surge.simulate.errors import SimulationError
from surge.simulate.replicas import (
    Metric,
    PodView,
    Tolerances,
    desired_replicas,
    parse_metrics,
    plain_replicas,
    resource_replicas,
)

TOL = Tolerances(0.1, 0.1)


def test_desired_is_ceil_current_times_ratio() -> None:
    # ceil[currentReplicas × currentMetricValue / desiredMetricValue]: 200m against 100m doubles.
    assert plain_replicas(3, 3, 0, 0, 200, 100, TOL) == 6
    assert plain_replicas(4, 4, 0, 0, 50, 100, TOL) == 2


@pytest.mark.parametrize(("util", "expected"), [(54, 10), (55, 10), (56, 12), (45, 10), (44, 9)])
def test_tolerance_of_ten_percent(util: int, expected: int) -> None:
    # Target 50 %: ratios within [0.9, 1.1] keep the count.
    assert resource_replicas(10, 10, 0, 0, util * 10, 1000, 50, TOL) == expected


def test_configurable_tolerance_per_direction() -> None:
    assert resource_replicas(10, 10, 0, 0, 520, 1000, 50, Tolerances(0.01, 0.1)) == 11


def test_unready_pods_count_as_zero_on_scale_up() -> None:
    # 2 Ready pods at 100 % (target 50 %) and 2 starting: the recount over 4 pods gives
    # 50 %, within tolerance, so no change.
    assert resource_replicas(4, 2, 2, 0, 1000, 1000, 50, TOL) == 4
    # At 150 % the recount is 75 % over 4 pods: ceil(1.5 × 4).
    assert resource_replicas(4, 2, 2, 0, 1500, 1000, 50, TOL) == 6
    # Without them, 2 pods at 150 % ask for 6 as well, but at 100 % for 4.
    assert resource_replicas(2, 2, 0, 0, 1000, 1000, 50, TOL) == 4


def test_unready_pods_are_ignored_on_scale_down() -> None:
    assert resource_replicas(6, 4, 2, 0, 200, 1000, 50, TOL) == 2


def test_missing_pods_count_as_the_target_on_scale_down_and_zero_on_scale_up() -> None:
    # 2 pods at half the target, 2 without a metric: (5 + 5 + 10 + 10) / 4 = 7.5 -> 3 pods.
    assert plain_replicas(4, 2, 0, 2, 5000, 10000, TOL) == 3
    # Scale-up: 2 pods at 3× the target, 2 missing as 0: mean 1.5× over 4 pods -> 6.
    assert plain_replicas(4, 2, 0, 2, 30000, 10000, TOL) == 6


def test_missing_cpu_pods_on_scale_down_use_the_larger_of_100_percent_and_target() -> None:
    # target 50 %: missing pods count at 100 %, which flips the direction: keep the count.
    assert resource_replicas(4, 2, 0, 2, 100, 1000, 50, TOL) == 4


def test_no_usable_metric_leaves_the_scale_alone() -> None:
    view = PodView(pending=0, starting=3, fresh=0, ready=0, served_per_pod=0, offered_rps=10)
    cpu = Metric("cpu", "Utilization", 50)
    assert desired_replicas(cpu, 3, view, TOL, cpu_per_request=0.05, pod_cpu_request=1.0) is None


def test_cpu_metric_from_the_load() -> None:
    # 10 pods serving 10 rps each at 50m per request: 50 % of a 1-core request.
    view = PodView(0, 0, 0, 10, served_per_pod=10.0, offered_rps=100.0)
    target = Metric("cpu", "Utilization", 25)
    assert desired_replicas(target, 10, view, TOL, cpu_per_request=0.05, pod_cpu_request=1) == 20


def test_external_value_metric_scales_the_ready_pods() -> None:
    view = PodView(0, 0, 0, 4, served_per_pod=25.0, offered_rps=100.0)
    total = Metric("external", "Value", 50)
    assert desired_replicas(total, 4, view, TOL, cpu_per_request=0.05, pod_cpu_request=1) == 8
    per_pod = Metric("external", "AverageValue", 10)
    assert desired_replicas(per_pod, 4, view, TOL, cpu_per_request=0.05, pod_cpu_request=1) == 10


def test_metric_parsing() -> None:
    assert parse_metrics([], "m") == (Metric("cpu", "Utilization", 80),)
    pods = {"type": "Pods", "pods": {"target": {"type": "AverageValue", "averageValue": "500m"}}}
    assert parse_metrics([pods], "m") == (Metric("pods", "AverageValue", 0.5),)
    memory = {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 60}},
    }
    with pytest.raises(SimulationError, match=r"m\[0\].resource.name: 'memory' is not modelled"):
        parse_metrics([memory], "m")
