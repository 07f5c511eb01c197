"""Numbers for people: significant digits without scientific notation, thousands grouped
(30,000 and 28,690, not 3e+04 and 2.869e+04). Pure."""

from __future__ import annotations

import math

SIGNIFICANT = 4


def fmt_num(value: float | None, unit: str = "", *, none: str = "-") -> str:
    """`value` to SIGNIFICANT digits (whole numbers from 1,000 on, exact to the unit and
    grouped by thousands),
    trailing zeros dropped, then `unit`; `none` for None (no data)."""
    if value is None:
        return none
    v = float(value)
    if not math.isfinite(v):
        return f"{v}{unit}"
    if abs(v) < 10 ** (SIGNIFICANT - 1):
        v = float(f"{v:.{SIGNIFICANT}g}")  # 999.96 is 1,000, not 1000.0
    a = abs(v)
    if a >= 10 ** (SIGNIFICANT - 1):
        return f"{v:,.0f}{unit}"
    if a == 0:
        return f"0{unit}"
    decimals = SIGNIFICANT - 1 - math.floor(math.log10(a))
    text = f"{v:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}{unit}"
