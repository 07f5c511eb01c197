from __future__ import annotations

import pytest

from surge.api.status import Phase
from surge.operator.conditions import BackwardTransition, checked_phase, set_condition


def test_transition_time_moves_only_on_status_change() -> None:
    c1 = set_condition([], "TargetReady", "False", "Waiting", "a", "2026-01-01T00:00:00Z")
    c2 = set_condition(c1, "TargetReady", "False", "Waiting", "b", "2026-01-01T00:00:05Z")
    assert c2[0].last_transition_time == "2026-01-01T00:00:00Z"
    assert c2[0].message == "b"
    c3 = set_condition(c2, "TargetReady", "True", "TargetReady", "ok", "2026-01-01T00:00:09Z", 4)
    assert [c.model_dump(by_alias=True) for c in c3] == [
        {
            "type": "TargetReady",
            "status": "True",
            "reason": "TargetReady",
            "message": "ok",
            "lastTransitionTime": "2026-01-01T00:00:09Z",
            "observedGeneration": 4,
        }
    ]


def test_unknown_condition_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown condition type"):
        set_condition([], "Happy", "True", "", "", "2026-01-01T00:00:00Z")


def test_phase_never_moves_back() -> None:
    assert checked_phase(Phase.PENDING, Phase.RUNNING) == "Running"
    with pytest.raises(BackwardTransition):
        checked_phase(Phase.SUCCEEDED, Phase.RUNNING)
    with pytest.raises(BackwardTransition):
        checked_phase(Phase.ANALYZING, Phase.WAITING_FOR_TARGET)
