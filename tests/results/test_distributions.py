"""Report plots of distributions and their edges: latency, TTFT and TPOT by percentile
(HdrHistogram's percentile-distribution plot), the last partial second of throughput,
and a run without thresholds that is not drawn as a failure."""

from __future__ import annotations

import re

import pytest

from surge.api.results import RunResults, ThresholdResult
from surge.loadgen.aggregate import build_timeseries, compute_results
from surge.loadgen.hdr import percentile_spectrum
from surge.loadgen.summary import WorkerSummary, new_histogram, record_seconds
from surge.results.plots import _figure, percentile_x, plot_specs
from surge.results.report import render_report


def _results(*, streams: bool, measured_s: float = 10.0, seconds: int = 12) -> RunResults:
    """1000 requests with latencies 1..1000 ms; with streams, TTFT i/10 ms and TPOT 20 ms."""
    s = WorkerSummary(
        load_model="constant", measured_s=measured_s, expected=1000.0, window_start_s=2
    )
    for i in range(1, 1001):
        record_seconds(s.hists["latency"], i / 1000)
        if streams:
            record_seconds(s.hists["ttft"], i / 10_000)
            record_seconds(s.hists["tpot"], 0.020)
    s.counts.update(sent=1000, ok=1000, good=1000)
    intervals = {sec: {"ok": 100, "err": 0, "drop": 0, "h": []} for sec in range(seconds)}
    intervals[seconds - 1]["ok"] = 40  # the load ended 0.4 s into this second
    return compute_results(s, timeseries=build_timeseries(intervals, 2.0))


def test_the_spectrum_is_value_at_percentile_on_a_log_axis_of_1_over_1_minus_p() -> None:
    h = new_histogram()
    for i in range(1, 1001):
        record_seconds(h, i / 1000)
    got = dict(percentile_spectrum(h))
    # 10^(j/4) ≤ 1000 for j ≤ 12: p68.4 ... p99.9, then the max; min and p50 first.
    assert len(got) == 2 + 11 + 1
    assert got[0.0] == pytest.approx(0.001)
    assert got[50.0] == pytest.approx(0.500, rel=1e-3)
    assert got[90.0] == pytest.approx(0.900, rel=1e-3)
    assert got[99.9] == pytest.approx(0.999, rel=1e-3)
    assert got[100.0] == pytest.approx(1.000, rel=1e-3)
    assert percentile_spectrum(new_histogram()) == []
    assert percentile_x(90.0, 1000) == pytest.approx(10.0)
    assert percentile_x(99.9, 1000) == pytest.approx(1000.0)
    assert percentile_x(100.0, 1000) == 1000.0  # the max: the 1-in-N value


def test_latency_spectrum_plot_and_ttft_tpot_only_with_streams() -> None:
    plain = {s.name: s for s in plot_specs(_results(streams=False))}
    assert "latency-spectrum" in plain and "ttft-spectrum" not in plain
    assert "tpot-spectrum" not in plain
    spec = plain["latency-spectrum"]
    assert spec.percentile_x and spec.warmup_s == 0.0
    xs = [p[0] for p in spec.lines[0].points]
    ys = [p[1] for p in spec.lines[0].points]
    assert xs == sorted(xs) and ys == sorted(ys)  # a spectrum only rises
    assert xs[0] == 1.0 and ys[0] == pytest.approx(1.0)  # p0 = min, in ms
    assert ys[-1] == pytest.approx(1000.0, rel=1e-3)

    threshold = ThresholdResult(
        metric="latency.p99", op="<", limit=0.8, expression="p99 < 800ms", passed=True
    )
    judged = _results(streams=True)
    judged.thresholds = [threshold]
    streamed = {s.name: s for s in plot_specs(judged)}
    ttft, tpot = streamed["ttft-spectrum"], streamed["tpot-spectrum"]
    assert ttft.lines[0].label == "TTFT" and ttft.ylabel == "ms"
    assert ttft.lines[0].points[-1][1] == pytest.approx(100.0, rel=1e-3)  # max TTFT 100 ms
    # Every percentile is 20 ms to the histogram's 3 digits (max: highest equivalent).
    assert all(p[1] == pytest.approx(20.0, rel=1e-3) for p in tpot.lines[0].points)
    assert [h.y for h in streamed["latency-spectrum"].hlines] == [pytest.approx(800.0)]
    assert ttft.hlines == []


def test_matplotlib_draws_the_percentile_axis_in_log_scale_with_percent_ticks() -> None:
    spec = {s.name: s for s in plot_specs(_results(streams=False))}["latency-spectrum"]
    ax = _figure(spec, 8, 3.2).axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["0%", "50%", "90%", "99%", "99.9%"]


def test_the_last_partial_second_is_not_drawn_as_a_throughput_drop() -> None:
    # Load end = warm-up 2 s + 9.4 s real span: second 11 holds 0.4 s of responses.
    r = _results(streams=False, measured_s=9.4)
    tput = {s.name: s for s in plot_specs(r)}["throughput"]
    assert [p[0] for p in tput.lines[0].points] == [float(t) for t in range(11)]
    assert all(p[1] == 100.0 for p in tput.lines[0].points)
    # A second that ends exactly at the load's end is whole and stays.
    whole = {s.name: s for s in plot_specs(_results(streams=False, measured_s=10.0))}
    assert [p[0] for p in whole["throughput"].lines[0].points][-1] == 11.0


def test_no_thresholds_is_not_coloured_as_a_failure() -> None:
    r = _results(streams=False)
    page = render_report(r, "html")
    assert isinstance(page, str)
    verdict = re.search(r'<strong class="([a-z]*)">Verdict: ([^<]*)</strong>', page)
    assert verdict is not None and verdict.groups() == ("", "No thresholds")
    r.thresholds = [
        ThresholdResult(expression="x", metric="x", op="<", limit=1, passed=False, display="x")
    ]
    failed = render_report(r, "html")
    assert '<strong class="fail">Verdict: Failed' in str(failed)
