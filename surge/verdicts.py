"""Threshold verdicts: measured metrics against SLOs, shared by `surge run` and the operator.

A threshold whose metric has no data (missing or None) fails: a test that measured
nothing must not pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from surge.api.status import ThresholdResult
from surge.api.thresholds import Threshold, format_value


def evaluate(
    thresholds: Sequence[Threshold], metrics: Mapping[str, float | None]
) -> list[ThresholdResult]:
    """One result per threshold, in order. display reads e.g. 'latency.p95 = 412ms < 800ms ✓'."""
    out: list[ThresholdResult] = []
    for t in thresholds:
        measured = metrics.get(t.metric)
        limit = format_value(t.limit, t.kind)
        if measured is None:
            passed = False
            display = f"{t.metric} = no data {t.op} {limit} ✗"
        else:
            passed = t.check(measured)
            mark = "✓" if passed else "✗"
            display = f"{t.metric} = {format_value(measured, t.kind)} {t.op} {limit} {mark}"
        out.append(
            ThresholdResult(
                expression=t.expression,
                metric=t.metric,
                op=t.op,
                limit=t.limit,
                measured=measured,
                passed=passed,
                display=display,
            )
        )
    return out


def verdict(results: Sequence[ThresholdResult]) -> Literal["Passed", "Failed"]:
    """Passed when every threshold held (and when there are none)."""
    return "Passed" if all(r.passed for r in results) else "Failed"
