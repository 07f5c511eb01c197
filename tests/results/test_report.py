"""Reports: what each plot draws, the HTML's embedded PNGs, Markdown/JSON, `surge report`."""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from surge.api.results import (
    RESULTS_VERSION,
    RunResults,
    RunVerdict,
    ThresholdResult,
    Verdict,
    load_results,
)
from surge.api.results.cluster import ClusterSection
from surge.api.status import Reason
from surge.api.thresholds import parse_threshold
from surge.cli import app
from surge.loadgen.aggregate import build_timeseries, compute_results
from surge.loadgen.schedule import Segment
from surge.loadgen.summary import WorkerSummary, encode_histogram, new_histogram, record_seconds
from surge.results.cluster import QueryOutcome, build_cluster
from surge.results.commands import format_for, results_from_document
from surge.results.plots import drawn_labels, plot_specs, render_png
from surge.results.report import ReportError, headline, render_report
from surge.results.timeline import Window
from surge.verdicts import evaluate

START = 1_700_000_000.0
WARMUP_S = 2.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(
    r'<img id="plot-([a-z-]+)" alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">'
)


def _results(cluster: bool = True, *, judged: bool = True) -> RunResults:
    s = WorkerSummary(
        load_model="constant", measured_s=10.0, expected=1000.0, window_start_s=WARMUP_S
    )
    s.start_epoch = START
    intervals: dict[int, dict[str, Any]] = {}
    for sec in range(12):
        h = new_histogram()
        for i in range(50):
            record_seconds(h, 0.2 + 0.05 * sec + i * 0.002)
            record_seconds(s.hists["latency"], 0.2 + 0.05 * sec + i * 0.002)
        intervals[sec] = {"ok": 90 + sec, "err": sec % 3, "drop": 1 if sec > 9 else 0,
                          "h": [encode_histogram(h)]}  # fmt: skip
    s.counts.update(sent=1000, ok=950, good=900, http_5xx=50)
    # The schedule: 80/s for 6 s, then 120/s (a stage profile, mean 100/s).
    profile = [Segment(0.0, 6.0, 80.0, 80.0), Segment(6.0, 12.0, 120.0, 120.0)]
    results = compute_results(s, timeseries=build_timeseries(intervals, WARMUP_S, profile))
    if cluster:
        w = Window(START + WARMUP_S, START + 12)
        cm = build_cluster(
            [
                QueryOutcome(
                    "replicas", "q", [(w.start, 1.0), (w.start + 4, 3.0), (w.start + 7, 2.0)]
                ),
                QueryOutcome("hpa_desired_replicas", "q", [(w.start, 1.0), (w.start + 3, 3.0)]),
                QueryOutcome("cpu", "q", [(w.start + i, 0.5 + i * 0.1) for i in range(11)]),
                QueryOutcome("gpu_util", "q", [], "no data"),
            ],
            w,
            step_s=1,
        )
        results.cluster = ClusterSection.model_validate(cm.section)
        results.metrics.update(cm.metrics)
    if judged:
        results.thresholds = _verdicts(results)
    return results


THRESHOLDS = ["latency.p95 < 800ms", "errors.rate < 1%", "replicas.max <= 4", "cpu.max < 2"]


def _verdicts(results: RunResults) -> list[ThresholdResult]:
    return evaluate([parse_threshold(t) for t in THRESHOLDS], results.metrics)


def test_plot_specs_series_and_threshold_lines() -> None:
    results = _results()
    specs = {s.name: s for s in plot_specs(results)}
    # No GPU data; the latency spectrum last (no streams: no TTFT or TPOT spectrum).
    assert list(specs) == ["latency", "throughput", "errors", "replicas", "cpu", "latency-spectrum"]
    assert specs["latency"].labels == ["p50", "p95", "latency.p95 < 800ms"]
    assert specs["latency"].hlines[0].y == pytest.approx(800.0)  # ms on the latency axis
    assert [p[0] for p in specs["latency"].lines[0].points] == list(range(12))
    assert specs["throughput"].labels == ["ok responses/s", "target/s"]
    assert specs["throughput"].lines[0].points[3] == (3.0, 93.0)
    # The target is the stage profile second by second, not the run's mean of 100/s.
    target = specs["throughput"].lines[1]
    assert target.steps and target.reference
    assert target.points == [(float(t), 80.0 if t < 6 else 120.0) for t in range(12)]
    assert specs["errors"].labels == ["errors %", "dropped %", "errors.rate < 1%"]
    assert specs["errors"].hlines[0].y == pytest.approx(1.0)
    assert specs["errors"].lines[0].points[1] == pytest.approx((1.0, 100 * 1 / 92))
    assert specs["replicas"].labels == ["replicas", "HPA desired", "replicas.max <= 4"]
    # cluster series are shifted by the warm-up so they line up with the loadgen's, and the
    # last value holds until the window's end
    assert specs["replicas"].lines[0].points == [(2.0, 1.0), (6.0, 3.0), (9.0, 2.0), (12.0, 2.0)]
    assert specs["cpu"].labels == ["CPU cores", "cpu.max < 2"]
    assert all(s.warmup_s == WARMUP_S for s in specs.values() if not s.percentile_x)


def test_matplotlib_draws_what_the_spec_says() -> None:
    results = _results()
    for spec in plot_specs(results):
        assert drawn_labels(spec) == spec.labels


def test_png_is_a_real_image() -> None:
    results = _results()
    spec = plot_specs(results)[0]
    png = render_png(spec, width_in=8, height_in=3, dpi=50)
    assert png.startswith(PNG_MAGIC)
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (400, 150)


def test_html_embeds_one_png_per_plot() -> None:
    results = _results()
    text = render_report(results, "html")
    assert isinstance(text, str)
    images = IMG.findall(text)
    assert [name for name, _ in images] == [
        "latency", "throughput", "errors", "replicas", "cpu", "latency-spectrum"
    ]  # fmt: skip
    for _, data in images:
        assert base64.b64decode(data).startswith(PNG_MAGIC)
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert "Verdict: Failed" in text  # errors.rate 5% > 1%
    assert "errors.rate = 5% &lt; 1% ✗" in text
    assert "never scaled up" not in text and "gpu_util" in text  # the no-data query is named


def test_markdown_and_json() -> None:
    results = _results()
    md = render_report(results, "md")
    assert isinstance(md, str)
    assert "**Verdict: Failed**" in md
    assert "| `latency.p95 < 800ms` |" in md
    assert "| replicas min / mean / max | 1 / 1.9 / 3 |" in md
    assert "| scale events | 2 |" in md
    assert "| no data | gpu_util |" in md
    doc = json.loads(render_report(results, "json"))
    assert doc["verdict"] == "Failed" and doc["results"]["cluster"]["replicas"]["max"] == 3


def test_report_without_cluster_or_thresholds() -> None:
    results = _results(cluster=False, judged=False)
    names = [s.name for s in plot_specs(results)]
    assert names == ["latency", "throughput", "errors", "latency-spectrum"]
    md = render_report(results, "md")
    assert isinstance(md, str) and "No thresholds" in md and "## Cluster" not in md


def _check(passed: bool) -> ThresholdResult:
    return ThresholdResult(expression="x", metric="x", op="<", limit=1, passed=passed)


@pytest.mark.parametrize(
    ("passed", "expected"),
    [([], "No thresholds"), ([True], "Passed"), ([True, False], "Failed")],
)
def test_headline_from_thresholds(passed: list[bool], expected: str) -> None:
    assert headline(RunResults(thresholds=[_check(p) for p in passed])) == expected


def test_headline_prefers_the_recorded_verdict() -> None:
    held = [_check(True)]
    passed = RunVerdict(outcome=Verdict.PASSED, reason=Reason.ALL_THRESHOLDS_PASSED)
    # Thresholds that say Failed, a run recorded Passed: the record wins.
    assert headline(RunResults(thresholds=[_check(False)], verdict=passed)) == "Passed"
    why = RunVerdict(outcome=Verdict.INCONCLUSIVE, reason=Reason.GENERATOR_SATURATED)
    saturated = RunResults(thresholds=held, verdict=why)
    assert headline(saturated) == "Inconclusive (GeneratorSaturated)"


def test_bad_inputs_are_report_errors() -> None:
    with pytest.raises(ReportError, match="unknown report format"):
        render_report(_results(cluster=False), "pdf")
    with pytest.raises(ReportError, match="neither a results file"):
        results_from_document({"hello": 1}, "x")
    with pytest.raises(ReportError, match="no results yet"):
        results_from_document({"kind": "LoadTest", "status": {"phase": "Running"}}, "lt")
    with pytest.raises(ReportError, match="results version 7 is not one this Surge reads"):
        results_from_document({"version": 7, "metrics": {}}, "old.json")


def test_results_from_a_loadtest_object() -> None:
    results = _results()
    obj = {"kind": "LoadTest", "status": {"results": results.to_json()}}
    assert results_from_document(obj, "peak") == results


def _saturated_loadtest(results: RunResults) -> dict[str, Any]:
    """A LoadTest as the operator leaves a run it judged Inconclusive (GeneratorSaturated)
    while every threshold held."""
    return {
        "kind": "LoadTest",
        "status": {
            "phase": "Failed",
            "summary": {"verdict": "Inconclusive"},
            "conditions": [
                {
                    "type": "Completed",
                    "status": "True",
                    "reason": "GeneratorSaturated",
                    "message": "the generator was the bottleneck: ...",
                },
            ],
            "results": results.to_json(),
            "thresholds": [_check(True).wire()],
        },
    }


def test_a_loadtest_reports_its_recorded_verdict_not_its_thresholds() -> None:
    results = _results(cluster=False, judged=False)
    results.thresholds = [_check(True)]
    results.verdict = RunVerdict(
        outcome=Verdict.INCONCLUSIVE, reason=Reason.GENERATOR_SATURATED, message="..."
    )
    got = results_from_document(_saturated_loadtest(results), "lt")
    assert headline(got) == "Inconclusive (GeneratorSaturated)"
    assert "**Verdict: Inconclusive (GeneratorSaturated)**" in str(render_report(got, "md"))


def test_a_loadtest_of_an_earlier_operator_reports_the_status_verdict() -> None:
    # Version-1 results in status held no verdict: it is status.summary's, with the
    # Completed condition's reason, and the thresholds are status.thresholds.
    results = _results(cluster=False, judged=False)
    doc = _saturated_loadtest(results)
    legacy = doc["status"]["results"]
    legacy["version"] = 1
    del legacy["verdict"], legacy["thresholds"]
    got = results_from_document(doc, "lt")
    assert headline(got) == "Inconclusive (GeneratorSaturated)"
    assert [t.passed for t in got.thresholds] == [True]


def test_version_1_results_files_still_load() -> None:
    doc = _results().to_json()
    del doc["verdict"]
    doc |= {"version": 1, "verdict": "Failed", "verdictReason": "ThresholdFailed",
            "verdictMessage": "errors.rate = 5% < 1% ✗"}  # fmt: skip
    got = load_results(doc, "old.json")
    assert got.verdict == RunVerdict(
        outcome=Verdict.FAILED, reason=Reason.THRESHOLD_FAILED, message="errors.rate = 5% < 1% ✗"
    )
    assert got.version == RESULTS_VERSION


@pytest.mark.parametrize(
    ("out", "fmt", "expected"),
    [
        (None, None, "md"),
        ("r.html", None, "html"),
        ("r.json", None, "json"),
        ("r.html", "md", "md"),
    ],
)
def test_format_for(out: str | None, fmt: str | None, expected: str) -> None:
    assert format_for(Path(out) if out else None, fmt) == expected


def test_surge_report_writes_html_from_a_run_file(tmp_path: Path) -> None:
    results = _results()  # with its thresholds, as `surge run --out` writes it
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results.to_json()))
    out = tmp_path / "report.html"
    done = CliRunner().invoke(app, ["report", str(source), "-o", str(out)])
    assert done.exit_code == 0, done.output
    html = out.read_text()
    assert len(IMG.findall(html)) == 6
    assert html.count('src="data:image/png;base64,') == 6
    md = CliRunner().invoke(app, ["report", str(source), "--format", "md"])
    assert md.exit_code == 0 and "Verdict: Failed" in md.output


def test_surge_report_refuses_what_is_not_results(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"a": 1}')
    done = CliRunner().invoke(app, ["report", str(bad)])
    assert done.exit_code == 2
    assert "neither a results file" in done.output


def test_html_without_matplotlib_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    source = tmp_path / "results.json"
    source.write_text(json.dumps(_results(cluster=False).to_json()))
    done = CliRunner().invoke(app, ["report", str(source), "--format", "html"])
    assert done.exit_code == 2
    assert "pip install 'surge[report]'" in done.output
    md = CliRunner().invoke(app, ["report", str(source)])  # Markdown needs no matplotlib
    assert md.exit_code == 0 and "## Load" in md.output
