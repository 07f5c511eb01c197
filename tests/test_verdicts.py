"""Verdicts: measured against limits, with no data failing."""

from __future__ import annotations

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
    assert verdict(res) == "Failed"
    assert verdict(res[:1]) == "Passed"
    assert verdict([]) == "Passed"


def test_none_is_no_data() -> None:
    t = parse_threshold("throughput.achieved > 95%")
    (r,) = evaluate([t], {"throughput.achieved": None})
    assert not r.passed
    assert "no data" in r.display
    (ok,) = evaluate([t], {"throughput.achieved": 0.99})
    assert ok.passed
    assert ok.display == "throughput.achieved = 99% > 95% ✓"
