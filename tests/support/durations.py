"""Random spellings of durations near a bound, for differential tests of duration checks
against Go's time.ParseDuration (directly, and through CEL's duration() in the API server).

Half the values sit within a microsecond (or a fraction of a nanosecond) of a bound, the
rest anywhere from 0 to twice the upper one; each is written in a random unit with 0-15
fraction digits, sometimes split across two units ("9ms999.5us"), sometimes with leading
zeros or far more digits than a float64 holds. Every spelling matches DURATION_PATTERN.
"""

from __future__ import annotations

import random
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

from surge.api.durations import DURATION_RE

_UNITS_NS = {"us": 1_000, "µs": 1_000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_ROUNDING = (ROUND_DOWN, ROUND_UP, ROUND_HALF_EVEN)


def _write(ns: Decimal, unit: str, digits: int, rng: random.Random) -> str:
    value = (ns / _UNITS_NS[unit]).quantize(Decimal(1).scaleb(-digits), rng.choice(_ROUNDING))
    text = f"{value:f}"
    if rng.random() < 0.1:
        text = "00" + text
    return text + unit


def spelling(rng: random.Random, bounds_ns: tuple[int, int]) -> str:
    """One random spelling of a duration near `bounds_ns` (nanoseconds)."""
    bound = Decimal(rng.choice(bounds_ns))
    if rng.random() < 0.5:
        ns = bound + Decimal(rng.uniform(-1.0, 1.0)).quantize(Decimal("0.000001"))
    elif rng.random() < 0.5:
        ns = bound + rng.randint(-1_000, 1_000)
    else:
        ns = Decimal(rng.randint(0, 2 * bounds_ns[1]))
    ns = max(ns, Decimal(0))
    units = ["us", "µs", "ms", "s"] + (["m", "h"] if rng.random() < 0.2 else [])
    digits = rng.choice([0, 0, 1, 3, 6, 9, 10, 12, 15])
    if rng.random() < 0.25:  # two parts: whole milliseconds, the rest in microseconds
        whole = (ns // 10**6) * 10**6
        text = f"{whole // 10**6}ms" + _write(ns - whole, rng.choice(["us", "µs"]), digits, rng)
    else:
        text = _write(ns, rng.choice(units), digits, rng)
    assert DURATION_RE.fullmatch(text), text
    return text


def spellings(seed: int, count: int, bounds_ns: tuple[int, int]) -> list[str]:
    rng = random.Random(seed)
    return [spelling(rng, bounds_ns) for _ in range(count)]
