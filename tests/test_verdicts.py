"""Verdicts: measured against limits, with no data failing."""

from __future__ import annotations

import pytest

from surge.api.thresholds import parse_threshold
from surge.verdicts import evaluate, judge


def test_evaluate_and_display() -> None:
    ts = [parse_threshold(t) for t in ("latency.p95 < 800ms", "errors.rate < 1%", "ttft.p99 < 1s")]
    res = evaluate(ts, {"latency.p95": 0.412, "errors.rate": 0.02})
    assert [r.passed for r in res] == [True, False, False]
    assert res[0].display == "latency.p95 = 412ms < 800ms ✓"
    assert res[1].display == "errors.rate = 2% < 1% ✗"
    assert "no data" in res[2].display
    assert res[2].measured is None
    assert res[0].limit == 0.8


def test_none_is_no_data() -> None:
    t = parse_threshold("throughput.achieved > 95%")
    (r,) = evaluate([t], {"throughput.achieved": None})
    assert not r.passed
    assert "no data" in r.display
    (ok,) = evaluate([t], {"throughput.achieved": 0.99})
    assert ok.passed
    assert ok.display == "throughput.achieved = 99% > 95% ✓"


P95 = [parse_threshold("latency.p95 < 800ms")]


@pytest.mark.parametrize(
    ("metrics", "missing", "failed", "verdict", "reason"),
    [
        (None, (), 0, "Failed", "WorkerMissingSummary"),
        ({"latency.p95": 0.9}, (), 0, "Failed", "ThresholdFailed"),
        ({"latency.p95": None}, (), 0, "Failed", "NoData"),
        ({"latency.p95": 0.9}, (1,), 0, "Failed", "ThresholdFailed"),
        ({"latency.p95": 0.4}, (1,), 0, "Inconclusive", "WorkerMissingSummary"),
        ({"latency.p95": 0.4}, (), 2, "Failed", "WorkerFailed"),
        ({"latency.p95": 0.4}, (), 0, "Passed", "AllThresholdsPassed"),
    ],
)
def test_judge(
    metrics: dict[str, float | None] | None,
    missing: tuple[int, ...],
    failed: int,
    verdict: str,
    reason: str,
) -> None:
    j = judge(P95, metrics, missing_workers=missing, failed_workers=failed)
    assert (j.verdict, j.reason) == (verdict, reason)
    assert j.passed == (verdict == "Passed")
    assert j.message


def test_judge_without_thresholds_passes_a_complete_run() -> None:
    j = judge([], {})
    assert (j.verdict, j.reason, j.thresholds) == ("Passed", "NoThresholds", [])
