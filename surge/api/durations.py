"""Durations as users write them ("500ms", "30s", "5m", "1h30m"), stored as seconds.

Kubernetes and Go write durations with units; a bare number is refused because
"30" could mean seconds or milliseconds and a load test must not guess.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

_UNIT_NS = {"us": 1_000, "µs": 1_000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_UNIT_S = {unit: ns / 1e9 for unit, ns in _UNIT_NS.items()}  # 1e-06, 0.001, ... exactly
# re.ASCII: `\d` is [0-9] as in Go's RE2, which checks the CRD's pattern ("٥ms" is refused
# there; Python's `\d` would take it, and float() and int() would read it).
_PART = re.compile(r"(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)", re.ASCII)
DURATION_PATTERN = r"^(\d+(\.\d+)?(us|µs|ms|s|m|h))+$"
DURATION_RE = re.compile(DURATION_PATTERN, re.ASCII)
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


_GO_MAX = 1 << 63
_GO_PART = re.compile(r"(\d+)(?:\.(\d+))?(us|µs|ms|s|m|h)", re.ASCII)


def go_duration_ns(text: str) -> int | None:
    """Nanoseconds as Go's time.ParseDuration reads `text` (what CEL's duration() does in
    the API server), for the spellings DURATION_PATTERN admits; None where Go refuses (past
    int64). Go adds each fraction as a float64 product truncated to whole nanoseconds, so a
    bound checked on this agrees with the CRD's rule to the nanosecond ("0.9999999999ms" is
    999,999 ns there, not 1 ms)."""
    total, pos = 0, 0
    for match in _GO_PART.finditer(text):
        if match.start() != pos:
            return None
        whole, frac, unit_name = match.groups()
        pos = match.end()
        # leadingInt refuses a run past 2^63 (its check before each digit only fires when
        # the next one takes it past anyway); 20+ significant digits are past it at once.
        if len(whole.lstrip("0")) > 19 or int(whole) > _GO_MAX:
            return None
        unit = _UNIT_NS[unit_name]
        value = int(whole)
        if value > _GO_MAX // unit:
            return None
        value *= unit
        if frac:
            # leadingFraction keeps the longest prefix of digits whose value is at most 2^63
            # (the rest are read and ignored), scaled by ten per digit kept.
            f, scale = 0, 1.0
            for ch in frac:
                y = f * 10 + int(ch)
                if y > _GO_MAX:
                    break
                f, scale = y, scale * 10
            if f > 0:
                value += int(float(f) * (float(unit) / scale))
                if value > _GO_MAX:
                    return None
        total = (total + value) % (1 << 64)  # Go's uint64 sum: two parts of 2^63 wrap to 0
        if total > _GO_MAX:
            return None
    if pos != len(text) or not text or total > _GO_MAX - 1:
        return None
    return total


def _plain(d: Decimal) -> str:
    """A decimal without an exponent (no duration pattern reads one): 1E+3 -> '1000'."""
    return format(d.normalize(), "f")


def format_duration(seconds: float) -> str:
    """The shortest spelling that reads back as exactly `seconds`: 300 -> '5m',
    0.25 -> '250ms', 90 -> '90s', 1000001 -> '1000001s', 123456.7 -> '123456.7s'.
    Spec durations pass through it into the plan, the snapshot and child LoadTests."""
    if seconds == 0:
        return "0s"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    exact = Decimal(repr(float(seconds)))  # the shortest decimal that is this float
    options = []
    if exact < 1:
        ms = exact * 1000
        options.append(f"{_plain(ms)}ms" if ms >= 1 else f"{_plain(exact * 10**6)}us")
    options.append(f"{_plain(exact)}s")  # float(repr(x)) == x: always reads back exactly
    return next(t for t in options if parse_duration(t) == seconds)


def _coerce(value: Any) -> float:
    # Messages name the text with repr() passed in: pydantic's templates know no "!r".
    if isinstance(value, bool):
        raise PydanticCustomError(
            "duration", "{text} is not a duration; use e.g. 5m or 300s", {"text": repr(value)}
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
        if value != value.strip():  # the CRD's pattern refuses it: so does `surge run`
            raise PydanticCustomError(
                "duration",
                "{text} has spaces around it; write it as {bare}",
                {"text": repr(value), "bare": repr(value.strip())},
            )
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise PydanticCustomError("duration", str(exc)) from None
        if seconds > MAX_DURATION_S:
            raise PydanticCustomError(
                "duration",
                "{text} is longer than 720h (30 days), the most any duration may be",
                {"text": repr(value)},
            )
        if seconds > 0 and go_duration_ns(value) == 0:  # Go, so the API server, reads 0 ns
            raise PydanticCustomError(
                "duration",
                "{text} is under a nanosecond, which Kubernetes reads as 0; "
                "write 0s, or 0.001us or more",
                {"text": repr(value)},
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
