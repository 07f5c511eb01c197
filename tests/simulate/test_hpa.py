"""The HPA model against the Kubernetes documentation's behaviour examples
(concepts/workloads/autoscaling/horizontal-pod-autoscale, "Configurable scaling behavior")."""

from __future__ import annotations

from typing import Any

import pytest

from surge.simulate.errors import SimulationError
from surge.simulate.hpa import HpaController, parse_behavior


def _ctrl(behavior: dict[str, Any] | None, lo: int = 1, hi: int = 1000) -> HpaController:
    return HpaController(lo, hi, parse_behavior(behavior, "behavior", 300.0), 300.0)


def _run(ctrl: HpaController, start: int, desired: list[int], sync: int = 15) -> list[int]:
    out, current = [], start
    for i, d in enumerate(desired):
        current = ctrl.decide(float(i * sync), current, d)
        out.append(current)
    return out


def test_default_scale_up_is_4_pods_or_100_percent_per_15s_whichever_is_more() -> None:
    # Defaults: Pods 4 / 15 s and Percent 100 / 15 s, selectPolicy Max, no window.
    assert _run(_ctrl({}), 1, [100] * 5) == [5, 10, 20, 40, 80]


def test_default_scale_down_waits_for_the_300s_stabilization_window() -> None:
    ctrl = _ctrl({})
    steps = _run(ctrl, 10, [10] + [2] * 25)
    # The recommendation of 10 made at t=0 holds the count until it leaves the window
    # (t > 0 + 300), then 100% per 15 s lets it drop at once.
    assert steps[:20] == [10] * 20
    assert steps[20] == 2  # t = 300


def test_scale_down_window_picks_the_highest_recommendation_in_the_window() -> None:
    ctrl = _ctrl({"scaleDown": {"stabilizationWindowSeconds": 60}})
    steps = _run(ctrl, 10, [10, 8, 6, 4, 4, 4, 4])
    # The t=0 recommendation leaves the window at t=60 (kept only while t > now - 60).
    assert steps == [10, 10, 10, 10, 8, 6, 4]


def test_pods_per_period_policy_limits_scale_down() -> None:
    rules = {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 60}],
    }
    steps = _run(_ctrl({"scaleDown": rules}), 20, [1] * 9)
    # 4 pods per 60 s: the event at t stays in the period until t + 60.
    assert steps == [16, 16, 16, 16, 12, 12, 12, 12, 8]


def test_two_policies_select_max_and_min() -> None:
    # The documentation's example: Pods 4 and Percent 10 per 60 s, from 80 replicas.
    policies = [
        {"type": "Pods", "value": 4, "periodSeconds": 60},
        {"type": "Percent", "value": 10, "periodSeconds": 60},
    ]
    down = {"stabilizationWindowSeconds": 0, "policies": policies}
    assert _run(_ctrl({"scaleDown": down}), 80, [1])[0] == 72  # Max: the bigger change
    assert _run(_ctrl({"scaleDown": {**down, "selectPolicy": "Min"}}), 80, [1])[0] == 76
    # Below 40 replicas the Pods policy allows more than 10 %.
    assert _run(_ctrl({"scaleDown": down}), 30, [1])[0] == 26


def test_percent_scale_down_truncates_and_counts_the_period() -> None:
    down = {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
    }
    steps = _run(_ctrl({"scaleDown": down}), 100, [1] * 5)
    assert steps == [90, 90, 90, 90, 81]


def test_select_policy_disabled_never_scales_that_way() -> None:
    no_down = _ctrl({"scaleDown": {"selectPolicy": "Disabled"}})
    assert _run(no_down, 10, [1] * 30) == [10] * 30
    assert _run(_ctrl({"scaleDown": {"selectPolicy": "Disabled"}}), 10, [20])[0] == 20
    no_up = _ctrl({"scaleUp": {"selectPolicy": "Disabled"}})
    assert _run(no_up, 3, [20] * 4) == [3] * 4


def test_scale_up_window_takes_the_lowest_recommendation() -> None:
    ctrl = _ctrl({"scaleUp": {"stabilizationWindowSeconds": 30}})
    # At t=15 the recommendation of 2 from t=0 is in the window; at t=30 it has left.
    assert _run(ctrl, 2, [2, 8, 8, 8, 8]) == [2, 2, 6, 8, 8]


def test_min_and_max_bound_the_result() -> None:
    assert _run(_ctrl({}, lo=2, hi=6), 4, [100, 100]) == [6, 6]
    # Out of range replicas are brought back regardless of the metrics.
    assert _ctrl({}, lo=3, hi=6).decide(0.0, 10, None) == 6
    assert _ctrl({}, lo=3, hi=6).decide(0.0, 1, None) == 3


def test_no_behavior_keeps_the_legacy_limits() -> None:
    # normalizeDesiredReplicas: at most max(2 × current, 4) per sync, no scale-down rate.
    ctrl = _ctrl(None)
    assert _run(ctrl, 1, [100] * 4) == [4, 8, 16, 32]
    legacy = _ctrl(None)
    steps = _run(legacy, 10, [10] + [1] * 22)
    # stabilizeRecommendation drops a sample once it is Before(now - 300 s). Real syncs are
    # queued 15 s after the previous one ends, so the sample of t = 0 is before the cutoff
    # at the 20th sync (t = 300 on the grid, a little later on the wall clock): down at 300.
    assert steps[19] == 10 and steps[20] == 1


def test_bad_behavior_names_the_field() -> None:
    with pytest.raises(SimulationError, match=r"behavior.scaleUp.selectPolicy"):
        parse_behavior({"scaleUp": {"selectPolicy": "Fastest"}}, "behavior", 300)
    with pytest.raises(SimulationError, match=r"policies\[0\].type"):
        parse_behavior(
            {"scaleDown": {"policies": [{"type": "Nodes", "value": 1, "periodSeconds": 15}]}},
            "behavior",
            300,
        )
