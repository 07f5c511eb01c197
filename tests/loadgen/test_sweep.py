"""The sweep's decisions (surge.loadgen.sweep): geometric steps, bisection, early stops."""

from __future__ import annotations

from surge.api.sweep import Sweep
from surge.loadgen.sweep import StepResult, next_rate, outcome


def _sweep(**kw: object) -> Sweep:
    base: dict[str, object] = {"startRate": 10, "maxRate": 160, "stepDuration": "10s"}
    return Sweep.model_validate(base | kw)


def _run(sweep: Sweep, capacity: float, saturates_at: float | None = None) -> list[StepResult]:
    """Drive the state machine against a target that holds every rate <= capacity."""
    steps: list[StepResult] = []
    while (rate := next_rate(sweep, steps)) is not None:
        sat = saturates_at is not None and rate >= saturates_at
        steps.append(StepResult(rate, rate <= capacity, sat))
        assert len(steps) <= sweep.max_steps
    return steps


def test_geometric_then_bisection() -> None:
    sw = _sweep(bisections=3)
    steps = _run(sw, capacity=70)
    assert [s.rate for s in steps] == [10, 20, 40, 80, 60, 70, 75]
    found = outcome(sw, steps)
    assert (found.max_sustainable_rps, found.first_failing_rps) == (70, 75)
    assert found.resolution_rps == 5 == (80 - 40) / 2**3
    assert found.stop == "Bisected" and not found.lower_bound


def test_last_geometric_step_is_clipped_to_max_rate() -> None:
    sw = _sweep(maxRate=100, factor=3)
    assert sw.geometric_rates == [10, 30, 90, 100]
    steps = _run(sw, capacity=1e9)
    assert [s.rate for s in steps] == [10, 30, 90, 100]
    found = outcome(sw, steps)
    assert found.stop == "ReachedMaxRate" and found.lower_bound
    assert found.max_sustainable_rps == 100 and found.resolution_rps is None


def test_start_rate_failing_stops_at_once() -> None:
    sw = _sweep()
    steps = _run(sw, capacity=5)
    assert [s.rate for s in steps] == [10]
    found = outcome(sw, steps)
    assert found.stop == "StartRateFailed" and found.max_sustainable_rps is None


def test_saturation_stops_and_leaves_a_lower_bound() -> None:
    sw = _sweep()
    steps = _run(sw, capacity=1e9, saturates_at=40)
    assert [s.rate for s in steps] == [10, 20, 40]
    found = outcome(sw, steps)
    assert found.stop == "GeneratorSaturated" and found.lower_bound
    assert found.max_sustainable_rps == 20


def test_no_bisections_stops_at_the_first_failure() -> None:
    sw = _sweep(bisections=0)
    steps = _run(sw, capacity=50)
    assert [s.rate for s in steps] == [10, 20, 40, 80]
    assert outcome(sw, steps).max_sustainable_rps == 40


def test_a_pass_above_a_failure_does_not_raise_the_capacity() -> None:
    sw = _sweep(bisections=2)
    # noise near the knee: 60 fails, then 70 passes; the capacity stays below 60
    steps = [StepResult(r, p) for r, p in ((10, True), (20, True), (40, True), (80, False))]
    assert next_rate(sw, steps) == 60
    steps.append(StepResult(60, False))
    assert next_rate(sw, steps) == 50
    steps.append(StepResult(50, True))
    assert next_rate(sw, steps) is None  # both bisections spent
    found = outcome(sw, [*steps, StepResult(70, True)])
    assert (found.max_sustainable_rps, found.first_failing_rps) == (50, 60)
