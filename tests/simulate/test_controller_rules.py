"""Rules of the real HPA controller that the model once got wrong (issue #26), each stated
as the controller behaves and tied to the upstream function it mirrors
(kubernetes v1.36.3, pkg/controller/podautoscaler/horizontal.go and replica_calculator.go).
The differential run against a real controller (tests/e2e/test_hpa_simulator.py) found
or confirmed each of them."""

from __future__ import annotations

from typing import Any

from surge.api.experiment import HpaSpec
from surge.simulate.capacity import Pool, Slo
from surge.simulate.hpa import HpaController, combine_proposals, parse_behavior
from surge.simulate.plan import Settings, plan_hpa
from surge.simulate.replicas import Tolerances, plain_replicas, resource_replicas
from surge.simulate.run import simulate

TOL = Tolerances(0.1, 0.1)


def _ctrl(behavior: dict[str, Any] | None, lo: int = 1, hi: int = 100) -> HpaController:
    return HpaController(lo, hi, parse_behavior(behavior, "behavior", 300.0), 300.0)


def _run(ctrl: HpaController, start: int, desired: list[int], t0: int = 0) -> list[int]:
    out, current = [], start
    for i, d in enumerate(desired):
        current = ctrl.decide(float(t0 + i * 15), current, d)
        out.append(current)
    return out


# -- 1. recordInitialRecommendation ---------------------------------------------------------


def test_first_sync_records_the_current_count_so_the_start_holds_one_window_legacy() -> None:
    # reconcileAutoscaler calls recordInitialRecommendation(currentReplicas) before the
    # metrics: 10 replicas whose load needs 4 stay at 10 for the whole 300 s downscale window.
    steps = _run(_ctrl(None, lo=2, hi=15), 10, [4] * 22, t0=20)
    assert steps[:20] == [10] * 20  # syncs t = 20 .. 305
    assert steps[20] == 4  # t = 320: the sample of t = 20 is Before(320 - 300)


def test_first_sync_records_the_current_count_with_a_behavior() -> None:
    # The same with a behavior: the scale-down window (100 s) starts at the first sync.
    ctrl = _ctrl({"scaleDown": {"stabilizationWindowSeconds": 100}}, lo=2, hi=15)
    steps = _run(ctrl, 10, [4] * 10, t0=20)
    times = [20 + 15 * i for i in range(10)]
    assert dict(zip(times, steps, strict=True)) == {t: (10 if t <= 110 else 4) for t in times}


def test_the_initial_recommendation_is_recorded_once() -> None:
    # Only while the HPA has no recommendations (a[key] == nil): a later count is not one.
    ctrl = _ctrl({"scaleDown": {"stabilizationWindowSeconds": 30}})
    assert _run(ctrl, 8, [2, 2, 2, 2, 2]) == [8, 8, 2, 2, 2]
    assert ctrl.decide(75.0, 6, 2) == 2  # an outside change to 6 is not a recommendation


def test_a_deployment_started_above_need_holds_in_the_simulation() -> None:
    # The run-level view: 10 Ready pods at t = 0, load for 4 at 50 % of a 1-core request.
    pool = Pool("cpu", 0.05, 1.0, 20.0, 0.1, 1.0, 0.0, 110, None, None)
    hpa = HpaSpec.model_validate(
        {
            "minReplicas": 2,
            "maxReplicas": 15,
            "metrics": [_cpu(50)],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 100}},
        }
    )
    settings = Settings(15, 0.1, 300.0, 10)
    out = simulate(plan_hpa("v", pool, hpa, settings, "hpa"), settings, [40.0] * 200, Slo(None, ""))
    counts = {p.t: p.replicas for p in out.timeline if p.t}
    assert counts[15] == counts[90] == 10 and counts[105] == 10  # the t = 15 sample holds
    assert counts[120] == 4  # Before(120 - 100)


# -- 2. missing pods at a ratio of exactly 1 ------------------------------------------------


def test_plain_metric_at_target_ignores_missing_pods() -> None:
    # calcPlainMetricReplicas fills in missing pods only when usageRatio < 1.0 (as the
    # target) or > 1.0 (as 0); at exactly 1.0 the recount is the ratio itself: hold 6.
    assert plain_replicas(6, 4, 0, 2, 100, 100, TOL) == 6
    # Off target, they count: 0 on a scale-up (recount 150*4/6 = 100: within tolerance) ...
    assert plain_replicas(6, 4, 0, 2, 150, 100, TOL) == 6
    assert plain_replicas(6, 4, 0, 2, 200, 100, TOL) == 8  # 133 % of 6 pods
    # ... the target on a scale-down: (4 * 50 + 2 * 100) / 6 = 66 → ceil(0.66 * 6) = 4.
    assert plain_replicas(6, 4, 0, 2, 50, 100, TOL) == 4


def test_resource_metric_at_target_ignores_missing_pods() -> None:
    # GetResourceReplicas, the same rule: utilization exactly at target (50 % of 200m).
    assert resource_replicas(6, 4, 0, 2, 100, 200, 50, TOL) == 6
    # Below target, missing pods count as max(100 %, target) of their request.
    assert resource_replicas(6, 4, 0, 2, 40, 200, 50, TOL) == 6  # (160+400)*100/1200 = 46 %
    assert resource_replicas(6, 4, 0, 2, 10, 200, 50, TOL) == 5  # 36 % → ceil(0.72 * 6)


# -- 3. storeScaleEvent reuses only the last outdated slot ------------------------------------


def test_only_the_last_outdated_scale_event_is_replaced() -> None:
    # storeScaleEvent marks the events older than the longest policy period of their
    # direction outdated (markScaleEventsOutdated) and overwrites only the LAST of them;
    # getReplicasChangePerPeriod reads every event by its time, so an outdated scale-up
    # still lowers the period-start count of a longer scale-down period.
    ctrl = _ctrl(
        {
            "scaleUp": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 2, "periodSeconds": 20}],
            },
            "scaleDown": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 90}],
            },
        }
    )
    steps = _run(ctrl, 5, [6, 7, 7, 7, 8, 2])
    # Up at t = 0 and 15; at t = 60 both are outdated and the one of t = 15 is overwritten:
    # the events are (0, +1), (60, +1). At t = 75 the 90 s period started at 8 - 2 = 6,
    # so 1 pod per 90 s allows 5 (dropping every outdated event would allow only 6).
    assert steps == [6, 7, 7, 7, 8, 5]
    assert [(e.t, e.change) for e in ctrl.up_events] == [(0.0, 1), (60.0, 1)]


# -- 4. the window boundary on the real (drifting) sync clock -----------------------------


def test_a_recommendation_exactly_one_window_old_has_left_it() -> None:
    # Legacy stabilizeRecommendation keeps a sample unless timestamp.Before(cutoff); real syncs
    # are queued 15 s after the previous one ENDS, so 20 intervals last a little over 300 s
    # and the sample of 20 syncs ago is before the cutoff: the scale-down comes at t = 300.
    steps = _run(_ctrl(None), 10, [10] + [3] * 21)
    assert steps[19] == 10 and steps[20] == 3
    # With a behavior (timestamp.After(cutoff) to count) the rule was already the same.
    ctrl = _ctrl({"scaleDown": {"stabilizationWindowSeconds": 45}})
    assert _run(ctrl, 10, [10, 3, 3, 3, 3]) == [10, 10, 10, 3, 3]


# -- 5. tolerance and invalid metrics --------------------------------------------------------


def _cpu(target: int) -> dict[str, Any]:
    t = {"type": "Utilization", "averageUtilization": target}
    return {"type": "Resource", "resource": {"name": "cpu", "target": t}}


def test_a_behavior_tolerance_needs_the_feature_gate() -> None:
    # tolerancesForHpa reads behavior.scale{Up,Down}.tolerance only with the
    # HPAConfigurableTolerance gate (beta, on by default since 1.35; off before).
    pool = Pool("cpu", 0.05, 1.0, 20.0, 0.1, 1.0, 0.0, 110, None, None)
    behavior = {"scaleUp": {"tolerance": "0.5"}, "scaleDown": {"tolerance": "0.02"}}
    hpa = HpaSpec.model_validate({"maxReplicas": 9, "metrics": [_cpu(50)], "behavior": behavior})
    on = plan_hpa("v", pool, hpa, Settings(15, 0.1, 300.0, None), "hpa")
    off = plan_hpa("v", pool, hpa, Settings(15, 0.1, 300.0, None, None, False), "hpa")
    assert on.tolerances == Tolerances(0.5, 0.02)
    assert off.tolerances == Tolerances(0.1, 0.1)


def test_an_invalid_metric_blocks_a_scale_down_but_not_a_scale_up() -> None:
    # computeReplicasForMetrics: with any invalid metric, a proposal below spec.replicas is
    # an error (-1: no scaling, no recommendation); at or above it, the valid maximum wins.
    assert combine_proposals([3, None], 5) is None
    assert combine_proposals([7, None, 2], 5) == 7
    assert combine_proposals([5, None], 5) == 5
    assert combine_proposals([None, None], 5) is None
    assert combine_proposals([3, 4], 5) == 4
    ctrl = _ctrl({"scaleDown": {"stabilizationWindowSeconds": 0}})
    assert ctrl.decide(0.0, 5, combine_proposals([2, None], 5)) == 5
    assert ctrl.recommendations == [(0.0, 5)]  # only the initial one: nothing recorded
