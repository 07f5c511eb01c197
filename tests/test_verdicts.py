"""Verdicts: measured against limits, with no data failing."""

from __future__ import annotations

import pytest

from surge.api.thresholds import parse_threshold
from surge.verdicts import evaluate, verdict


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
    ("metrics", "missing", "failed", "want", "reason"),
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
def test_verdict(
    metrics: dict[str, float | None] | None,
    missing: tuple[int, ...],
    failed: int,
    want: str,
    reason: str,
) -> None:
    j = verdict(P95, metrics, missing_workers=missing, failed_workers=failed)
    assert (j.verdict, j.reason) == (want, reason)
    assert j.passed == (want == "Passed")
    assert j.message


def test_judge_without_thresholds_passes_a_complete_run() -> None:
    j = verdict([], {})
    assert (j.verdict, j.reason, j.thresholds) == ("Passed", "NoThresholds", [])


@pytest.mark.parametrize(
    "metrics",
    [{"latency.p95": 0.4}, {"latency.p95": 0.9}, {"latency.p95": None}],
)
def test_a_saturated_generator_makes_any_run_inconclusive(
    metrics: dict[str, float | None],
) -> None:
    # Passed or failed, the thresholds measured a load the target never got.
    j = verdict(P95, metrics, saturation="the generator was the bottleneck: ...")
    assert (j.verdict, j.reason) == ("Inconclusive", "GeneratorSaturated")
    assert j.message == "the generator was the bottleneck: ..."
    assert len(j.thresholds) == 1  # still judged, for the ThresholdsPassed condition
    assert verdict(P95, None, saturation="x").reason == "WorkerMissingSummary"
