"""Conditions and phase changes as pure functions over the status dict.

A condition keeps its lastTransitionTime while its status stays the same, so the
time a phase started can be read back from the condition that guards it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from surge.api.status import CONDITION_TYPES, Condition, ConditionStatus, Phase, can_transition


def now_rfc3339(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: str,
    generation: int | None = None,
) -> list[Condition]:
    """A new list with `type_` set; the transition time moves only when the status changes.
    Raises ValueError for a type not listed in CONDITION_TYPES."""
    if type_ not in CONDITION_TYPES:
        raise ValueError(f"unknown condition type {type_!r}")
    old = get_condition(conditions, type_)
    since = old.last_transition_time if old and old.status == status else now
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type_] + [new]


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def condition_is(conditions: list[Condition], type_: str, status: ConditionStatus) -> bool:
    c = get_condition(conditions, type_)
    return c is not None and c.status == status


class BackwardTransition(Exception):
    pass


def checked_phase(old: Phase | None, new: Phase) -> Phase:
    """`new`, or BackwardTransition when it would move the run backwards."""
    if not can_transition(old, new):
        raise BackwardTransition(f"refusing {old} -> {new.value}")
    return new
