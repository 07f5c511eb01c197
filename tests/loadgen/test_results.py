"""The results dict: every threshold metric, base units, stated denominators."""

from __future__ import annotations

import pytest

from surge.api.thresholds import METRICS
from surge.loadgen.aggregate import compute_results, hist_stats_s
from surge.loadgen.summary import WorkerSummary, record_seconds

LOADGEN_FAMILIES = (
    "latency.",
    "ttft.",
    "ttft_content.",
    "tpot.",
    "itl.",
    "ntpot.",
    "schedule_lag.",
    "errors.",
    "throughput.",
    "goodput.",
    "requests.",
    "dropped.",
    "tokens.",
)


def _summary() -> WorkerSummary:
    s = WorkerSummary(model="constant", measured_s=10.0, expected=1000.0, window_start_s=2.0)
    s.start_epoch = 1_700_000_000.0
    for i in range(900):
        record_seconds(s.hists["latency"], 0.010 + i * 0.0001)
    s.counts.update(sent=950, ok=900, good=850, dropped=50, timeout=30, http_5xx=20)
    return s


def test_every_loadgen_metric_is_reported() -> None:
    r = compute_results(_summary())
    wanted = {m for m in METRICS if m.startswith(LOADGEN_FAMILIES)}
    assert wanted <= set(r["metrics"])
    assert set(r["metrics"]) <= set(METRICS)


def test_rates_ratios_and_denominators() -> None:
    r = compute_results(_summary())
    m = r["metrics"]
    assert m["throughput.rps"] == pytest.approx(90.0)  # ok / measured seconds
    assert m["throughput.achieved"] == pytest.approx(0.9)  # 90 of a 100/s target
    assert m["errors.rate"] == pytest.approx(50 / 950)  # errors / sent
    assert m["errors.timeout.rate"] == pytest.approx(30 / 950)
    assert m["errors.http_5xx.count"] == 20
    assert m["dropped.rate"] == pytest.approx(50 / 1000)  # dropped / (sent + dropped)
    assert m["goodput.rps"] == pytest.approx(85.0)
    assert m["goodput.ratio"] == pytest.approx(850 / 1000)
    assert m["requests.count"] == 950
    assert m["latency.p50"] == pytest.approx(0.0549, rel=2e-3)  # rank round(0.5·900)
    assert m["ttft.p95"] is None  # no streaming: no data, not zero
    assert m["tokens.output_rps"] is None
    s = r["summary"]
    assert s == {
        "targetRps": 100.0,
        "achievedRps": 90.0,
        "p95Ms": pytest.approx(r["latency"]["p95"]),
        "errorRate": pytest.approx(50 / 950),
        "topErrors": [],  # the summary carried no reasons
    }
    assert r["window"]["measuredSeconds"] == 10.0
    assert r["window"]["start"] == 1_700_000_002.0
    assert r["requests"] == {
        "sent": 950,
        "completed": 950,
        "ok": 900,
        "dropped": 50,
        "late": 0,
        "lateMaxSeconds": None,
    }


def test_a_late_schedule_stretches_every_rate_to_the_real_span() -> None:
    # The window's last arrival left 15 s after the planned 10 s window ended (t = 2 + 10
    # + 15): every rate is over 25 s, the target stays what the schedule asked for.
    s = _summary()
    s.last_attempt_s, s.late_max_s = 27.0, 15.0
    s.counts["late"] = 600
    r = compute_results(s)
    assert r["window"]["measuredSeconds"] == 25.0
    assert r["window"]["plannedSeconds"] == 10.0
    assert r["window"]["lateSeconds"] == 15.0
    assert r["window"]["end"] - r["window"]["start"] == 25.0
    assert r["throughput"]["targetRps"] == 100.0
    assert r["throughput"]["achievedRps"] == pytest.approx(900 / 25)
    assert r["throughput"]["sentRps"] == pytest.approx(950 / 25)
    assert r["metrics"]["throughput.achieved"] == pytest.approx(900 / 25 / 100)
    assert r["metrics"]["goodput.rps"] == pytest.approx(850 / 25)
    assert r["metrics"]["requests.late"] == 600
    assert r["requests"]["lateMaxSeconds"] == 15.0


def test_an_on_time_schedule_keeps_the_planned_window() -> None:
    s = _summary()
    s.last_attempt_s = 11.99  # the last arrival of [2, 12) left on time
    r = compute_results(s)
    assert r["window"]["measuredSeconds"] == 10.0
    assert r["throughput"]["achievedRps"] == pytest.approx(90.0)


def test_closed_loop_span_is_the_window() -> None:
    s = _summary()
    s.model, s.expected, s.last_attempt_s = "closed", None, 30.0
    assert compute_results(s)["window"]["measuredSeconds"] == 10.0


def test_closed_model_has_no_target_rate() -> None:
    s = _summary()
    s.model, s.expected = "closed", None
    r = compute_results(s)
    assert r["summary"]["targetRps"] is None
    assert r["metrics"]["throughput.achieved"] is None
    assert r["latency"]["from"] == "actual send"


def test_empty_run_reports_no_data() -> None:
    r = compute_results(WorkerSummary())
    assert r["metrics"]["latency.p95"] is None
    assert r["metrics"]["errors.rate"] is None
    assert r["summary"]["achievedRps"] is None
    assert hist_stats_s(WorkerSummary().hists["latency"])["max"] is None


def test_token_sources_and_the_exact_lag_minimum() -> None:
    s = _summary()
    s.counts.update(streamed=900, tokens=9000, tokens_input=5000, tokens_from_usage=500)
    s.counts["tokens_from_chunks"] = 400
    s.lag_min_s = 0.0000004  # below the histogram's 1 µs floor
    record_seconds(s.hists["schedule_lag"], 0.0000004)
    r = compute_results(s)
    t = r["tokens"]
    assert t["output"] == 9000 and t["outputRps"] == pytest.approx(900.0)
    assert t["input"] == 5000 and t["inputRps"] == pytest.approx(500.0)
    assert t["exact"] is False and t["note"].startswith("400 streams sent no usage")
    assert r["metrics"]["schedule_lag.min"] == 0.0000004  # exact, not clamped to 1 µs
    assert r["scheduleLag"]["minMs"] == 0.0004 and r["scheduleLag"]["early"] == 0
    s.counts["tokens_from_chunks"] = 0
    assert compute_results(s)["tokens"]["exact"] is True
    assert compute_results(_summary())["tokens"]["exact"] is None  # nothing streamed
