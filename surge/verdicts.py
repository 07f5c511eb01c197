"""Threshold verdicts: measured metrics against SLOs, shared by `surge run` and the operator.

A threshold whose metric has no data (missing or None) fails: a test that measured
nothing must not pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


Verdict = Literal["Passed", "Failed", "Inconclusive"]


@dataclass(frozen=True, slots=True)
class Judgement:
    """A run's verdict with the reason (a REASONS key in surge.api.status) and why."""

    verdict: Verdict
    reason: str
    message: str
    thresholds: list[ThresholdResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == "Passed"


def judge(
    thresholds: Sequence[Threshold],
    metrics: Mapping[str, float | None] | None,
    *,
    missing_workers: Sequence[int] = (),
    failed_workers: int = 0,
) -> Judgement:
    """The one verdict path, for `surge run` and the operator.

    metrics None: no worker reported anything (Failed, WorkerMissingSummary). A threshold
    that failed (or had no data) fails the run. Thresholds that held while some worker
    reported nothing are Inconclusive: the missing share could have broken them. A worker
    that exited non-zero fails a run whose thresholds held (WorkerFailed).
    """
    checks = evaluate(thresholds, metrics or {})
    if metrics is None:
        return Judgement("Failed", "WorkerMissingSummary", "no worker reported a summary", checks)
    held, reason, message = thresholds_outcome(checks)
    if not held:
        return Judgement("Failed", reason, message, checks)
    if missing_workers:
        names = ", ".join(map(str, missing_workers))
        return Judgement(
            "Inconclusive", "WorkerMissingSummary", f"workers {names} reported nothing", checks
        )
    if failed_workers:
        return Judgement("Failed", "WorkerFailed", f"{failed_workers} workers failed", checks)
    return Judgement("Passed", reason, message, checks)


def thresholds_outcome(checks: Sequence[ThresholdResult]) -> tuple[bool, str, str]:
    """(all held, reason, message) for the thresholds alone (the ThresholdsPassed condition)."""
    failed = [c for c in checks if not c.passed]
    if failed:
        reason = "NoData" if failed[0].measured is None else "ThresholdFailed"
        return False, reason, "; ".join(c.display for c in failed)
    if not checks:
        return True, "NoThresholds", "no thresholds set"
    return True, "AllThresholdsPassed", "; ".join(c.display for c in checks)
