"""Durations as users write them ("500ms", "30s", "5m", "1h30m"), stored as seconds.

Kubernetes and Go write durations with units; a bare number is refused because
"30" could mean seconds or milliseconds and a load test must not guess.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

_UNIT_S = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(us|µs|ms|s|m|h))+$"
MAX_DURATION_S = 30 * 24 * 3600.0
"""No duration of a spec may exceed 30 days (720h): every wait and every load ends."""
MAX_DURATION_CHARS = 64


def parse_duration(text: str) -> float:
    """Return the duration in seconds. Raises ValueError with a hint on bad input."""
    s = text.strip()
    pos = 0
    total = 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if pos != len(s) or not s:
        raise ValueError(f"{text!r} is not a duration; use e.g. 5m or 300s")
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 300 -> '5m', 0.25 -> '250ms', 90 -> '90s'."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms" if ms >= 1 else f"{seconds * 1e6:g}us"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def _coerce(value: Any) -> float:
    if isinstance(value, bool):
        raise PydanticCustomError(
            "duration", "{value!r} is not a duration; use e.g. 5m or 300s", {"value": value}
        )
    if isinstance(value, int | float):
        if value == 0:
            return 0.0
        raise PydanticCustomError(
            "duration",
            "{value} has no unit; write it as a duration such as {value}s or {value}ms",
            {"value": value},
        )
    if isinstance(value, str):
        if len(value) > MAX_DURATION_CHARS:
            raise PydanticCustomError(
                "duration", "a duration of {n} characters; write it as e.g. 5m", {"n": len(value)}
            )
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise PydanticCustomError("duration", str(exc)) from None
        if seconds > MAX_DURATION_S:
            raise PydanticCustomError(
                "duration",
                "{value!r} is longer than 720h (30 days), the most any duration may be",
                {"value": value},
            )
        return seconds
    raise PydanticCustomError("duration", "expected a duration string such as 30s or 5m")


Duration = Annotated[
    float,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": DURATION_PATTERN, "maxLength": MAX_DURATION_CHARS}
    ),
]
"""A duration in seconds, written and serialized as a Go-style string."""
