"""Threshold verdicts: measured metrics against SLOs, shared by `surge run` and the operator.

A threshold whose metric has no data (missing or None) fails: a test that measured
nothing must not pass. A run whose generator was the bottleneck is Inconclusive
(GeneratorSaturated), whatever its thresholds say: the target did not get the load the
schedule asked for, so neither a pass nor a failure is the target's (docs/metrics.md,
"Validity").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

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


def verdict(
    thresholds: Sequence[Threshold],
    metrics: Mapping[str, float | None] | None,
    *,
    missing_workers: Sequence[int] = (),
    failed_workers: int = 0,
    saturation: str | None = None,
) -> Judgement:
    """The one verdict path, for `surge run` and the operator.

    metrics None: no worker reported anything (Failed, WorkerMissingSummary). saturation
    (from `generator_saturation`): the generator was the bottleneck, so the run is
    Inconclusive (GeneratorSaturated) whatever the thresholds say. A run whose window
    requests all failed fails (AllRequestsFailed), thresholds or none. A threshold that
    failed (or had no data) fails the run. Thresholds that held while some worker
    reported nothing are Inconclusive: the missing share could have broken them. A worker
    that exited non-zero fails a run whose thresholds held (WorkerFailed).
    """
    checks = evaluate(thresholds, metrics or {})
    if metrics is None:
        return Judgement("Failed", "WorkerMissingSummary", "no worker reported a summary", checks)
    if saturation is not None:
        return Judgement("Inconclusive", "GeneratorSaturated", saturation, checks)
    sent, failed = metrics.get("requests.count") or 0, metrics.get("errors.count") or 0
    if sent and failed >= sent:
        why = f"all {sent:.0f} requests failed (results.errors.reasons says why)"
        return Judgement("Failed", "AllRequestsFailed", why, checks)
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


LAG_P99_BOUND_S = 0.05
"""Schedule lag p99 above this means the generator could not send on time."""
LAG_MIN_SENDS = 100
"""The lag p99 is judged from this many window sends on: below it, the p99 is one or two
sends, and one scheduling hiccup of a shared machine would decide it."""
LATE_BOUND_S = 0.05
"""Window sends leaving more than this after the window's end: the generator fell behind."""
WORKER_HEADROOM = 1.25
"""A worker that would run at its full measured rate is saturated again: 25 % spare."""


def generator_saturation(results: Mapping[str, Any]) -> str | None:
    """Why the generator was the bottleneck of this run (results from compute_results), or
    None when it was not. Pure. Open loop only: a closed loop's users wait by design.

    Saturated when any of: the schedule lag p99 > LAG_P99_BOUND_S (from LAG_MIN_SENDS
    window sends on); window sends went on more than LATE_BOUND_S past the window's end
    (window.lateSeconds); a worker was short of CPU (results.generator.cpu, judged by
    surge.loadgen.cpustat.assess); arrivals were dropped because maxInFlight requests
    were outstanding. The message says which, and what would suffice: workers (see
    `_workers_needed`), or for drops a larger maxInFlight."""
    if results.get("model") == "closed":
        return None
    metrics = results.get("metrics") or {}
    why: list[str] = []
    lag = metrics.get("schedule_lag.p99")
    sends = metrics.get("requests.count") or 0
    if lag is not None and sends >= LAG_MIN_SENDS and lag > LAG_P99_BOUND_S:
        why.append(f"schedule lag p99 {lag * 1000:.0f}ms > {LAG_P99_BOUND_S * 1000:.0f}ms")
    late = (results.get("window") or {}).get("lateSeconds") or 0.0
    n = (results.get("requests") or {}).get("late") or 0
    if late > LATE_BOUND_S and n:
        why.append(f"{n} sends left up to {late:.2f}s after the window ended")
    starved = [c for c in (results.get("generator") or {}).get("cpu") or [] if c.get("saturated")]
    why += [str(c["saturated"]) for c in starved]
    behind = bool(why)
    dropped = metrics.get("dropped.count") or 0
    if dropped:
        why.append(f"{dropped:.0f} arrivals dropped at maxInFlight outstanding requests")
    if not why:
        return None
    fixes: list[str] = []
    if behind:
        limit = " (or a higher CPU limit)" if any(c.get("quotaCores") for c in starved) else ""
        fixes.append(f"run with load.workers >= {_workers_needed(results)}{limit}")
    if dropped:
        # No number: the results do not hold maxInFlight, and with bursts or stalls the
        # outstanding peak is far above the average that Little's law gives.
        fixes.append(
            "raise load.maxInFlight (or find why the target held that many requests at once)"
        )
    return "the generator was the bottleneck: " + "; ".join(why) + "; " + " and ".join(fixes)


def _workers_needed(results: Mapping[str, Any]) -> int:
    """Workers that would send the target rate with WORKER_HEADROOM to spare, and at
    least one more than today (W): the largest of ceil(W × target ÷ sent rate ×
    WORKER_HEADROOM) and, when a worker's CPU was measured, ceil(W × d × max(1, target
    ÷ sent) × WORKER_HEADROOM), d the largest CPU demand of a worker
    (results.generator.cpu[].demand: the share of its core or limit it used or wanted)."""
    workers = int((results.get("workers") or {}).get("count") or 1)
    throughput = results.get("throughput") or {}
    target, sent = throughput.get("targetRps"), throughput.get("sentRps")
    behind = target / sent if target and sent else 1.0
    scaled = workers + 1
    if target and sent:
        scaled = math.ceil(workers * behind * WORKER_HEADROOM)
    cpu = (results.get("generator") or {}).get("cpu") or []
    d = max((float(c.get("demand") or 0.0) for c in cpu), default=0.0)
    if d:
        scaled = max(scaled, math.ceil(workers * d * max(1.0, behind) * WORKER_HEADROOM))
    return max(scaled, workers + 1)


def capacity_step(results: Mapping[str, Any]) -> dict[str, Any] | None:
    """The step at the capacity (the highest passing rate below every failure), else the
    first step; None without steps. Its thresholds are the ones a sweep reports."""
    sweep = results.get("sweep") or {}
    steps = sweep.get("steps") or []
    best = sweep.get("maxSustainableRps")
    at = next((s for s in steps if s["rate"] == best and s["passed"]), None)
    return at or (steps[0] if steps else None)


def sweep_verdict(
    results: Mapping[str, Any],
    thresholds: Sequence[Threshold] = (),
    *,
    missing_workers: Sequence[int] = (),
    failed_workers: int = 0,
) -> Judgement:
    """A capacity sweep's verdict (results with `sweep` and `capacity`), with `thresholds`
    as judged at the capacity step (capacity_step). Pure.

    Passed (CapacityFound): a rate held every threshold; the message gives the capacity.
    Failed (ThresholdFailed): even the first step broke a threshold. Inconclusive: the
    target's replicas changed during the sweep (ReplicasChanged: nothing is per replica),
    or the generator saturated before any step failed (GeneratorSaturated: the capacity
    is at least the last passing rate, the rates above are the generator's)."""
    at = capacity_step(results)
    judged = _sweep_outcome(results, missing_workers, failed_workers)
    checks = evaluate(list(thresholds), at["metrics"]) if at and thresholds else []
    return replace(judged, thresholds=checks)


def _sweep_outcome(
    results: Mapping[str, Any], missing_workers: Sequence[int], failed_workers: int
) -> Judgement:
    sweep = results.get("sweep") or {}
    cap = results.get("capacity") or {}
    if missing_workers:
        return Judgement("Failed", "WorkerMissingSummary", "the sweep's worker reported nothing")
    if cap.get("inconclusive"):
        return Judgement("Inconclusive", "ReplicasChanged", str(cap["inconclusive"]))
    best = sweep.get("maxSustainableRps")
    if sweep.get("saturated") and sweep.get("firstFailingRps") is None:
        held = f"rates up to {best:g} req/s held; " if best is not None else ""
        return Judgement("Inconclusive", "GeneratorSaturated", held + str(sweep["saturated"]))
    if failed_workers:
        return Judgement("Failed", "WorkerFailed", f"{failed_workers} workers failed")
    if best is None:
        first = next(iter(sweep.get("steps") or []), None)
        why = "; ".join(t for t in (first or {}).get("thresholds", []) if "✗" in t)
        return Judgement(
            "Failed", "ThresholdFailed", f"no step held every threshold: {why or 'no step ran'}"
        )
    per = cap.get("maxSustainableRpsPerReplica")
    per_text = f" ({per:.4g} per replica)" if per is not None else ""
    if sweep.get("lowerBound"):
        bound = " or more: every step up to load.sweep.maxRate held"
    else:
        bound = f", within {sweep.get('resolutionRps') or 0:.3g} req/s"
    return Judgement(
        "Passed", "CapacityFound", f"max sustainable rate {best:.4g} req/s{per_text}{bound}"
    )
