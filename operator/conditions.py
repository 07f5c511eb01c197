"""Conditions and phase changes as pure functions over the status dict.

A condition keeps its lastTransitionTime while its status stays the same, so the
time a phase started can be read back from the condition that guards it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from surge.api.status import CONDITION_TYPES, Phase, can_transition


def now_rfc3339(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: str,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """A new list with `type_` set; the transition time moves only when the status changes."""
    if type_ not in CONDITION_TYPES:
        raise ValueError(f"unknown condition type {type_!r}")
    old = next((c for c in conditions if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status else now
    new = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        new["observedGeneration"] = generation
    return [c for c in conditions if c.get("type") != type_] + [new]


def get_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def condition_since(conditions: list[dict[str, Any]], type_: str) -> datetime | None:
    c = get_condition(conditions, type_)
    return parse_time(c.get("lastTransitionTime")) if c else None


class BackwardTransition(Exception):
    pass


def checked_phase(old: str | None, new: Phase) -> str:
    """`new` as a string, or BackwardTransition when it would move the run backwards."""
    old_phase = Phase(old) if old else None
    if not can_transition(old_phase, new):
        raise BackwardTransition(f"refusing {old} -> {new.value}")
    return new.value
