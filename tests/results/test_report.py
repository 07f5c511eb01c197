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

from surge.api.thresholds import parse_threshold
from surge.cli import app
from surge.loadgen.aggregate import build_timeseries, compute_results
from surge.loadgen.summary import WorkerSummary, encode_histogram, new_histogram, record_seconds
from surge.results.cluster import QueryOutcome, build_cluster
from surge.results.commands import format_for, inputs_from_document
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


def _results(cluster: bool = True) -> dict[str, Any]:
    s = WorkerSummary(model="constant", measured_s=10.0, expected=1000.0, window_start_s=WARMUP_S)
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
    results = compute_results(s, timeseries=build_timeseries(intervals, WARMUP_S))
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
        results["cluster"] = cm.section
        results["metrics"].update(cm.metrics)
    return results


THRESHOLDS = ["latency.p95 < 800ms", "errors.rate < 1%", "replicas.max <= 4", "cpu.max < 2"]


def _verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = evaluate([parse_threshold(t) for t in THRESHOLDS], results["metrics"])
    return [c.model_dump(mode="json", by_alias=True) for c in checks]


def test_plot_specs_series_and_threshold_lines() -> None:
    results = _results()
    specs = {s.name: s for s in plot_specs(results, _verdicts(results))}
    # No GPU data; the latency spectrum last (no streams: no TTFT or TPOT spectrum).
    assert list(specs) == ["latency", "throughput", "errors", "replicas", "cpu", "latency-spectrum"]
    assert specs["latency"].labels == ["p50", "p95", "latency.p95 < 800ms"]
    assert specs["latency"].hlines[0].y == pytest.approx(800.0)  # ms on the latency axis
    assert [p[0] for p in specs["latency"].lines[0].points] == list(range(12))
    assert specs["throughput"].labels == ["ok responses/s", "target 100/s"]
    assert specs["throughput"].lines[0].points[3] == (3.0, 93.0)
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
    for spec in plot_specs(results, _verdicts(results)):
        assert drawn_labels(spec) == spec.labels


def test_png_is_a_real_image() -> None:
    results = _results()
    spec = plot_specs(results, _verdicts(results))[0]
    png = render_png(spec, width_in=8, height_in=3, dpi=50)
    assert png.startswith(PNG_MAGIC)
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (400, 150)


def test_html_embeds_one_png_per_plot() -> None:
    results = _results()
    text = render_report(results, _verdicts(results), "html")
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
    verdicts = _verdicts(results)
    md = render_report(results, verdicts, "md")
    assert isinstance(md, str)
    assert "**Verdict: Failed**" in md
    assert "| `latency.p95 < 800ms` |" in md
    assert "| replicas min / mean / max | 1 / 1.9 / 3 |" in md
    assert "| scale events | 2 |" in md
    assert "| no data | gpu_util |" in md
    doc = json.loads(render_report(results, verdicts, "json"))
    assert doc["verdict"] == "Failed" and doc["results"]["cluster"]["replicas"]["max"] == 3


def test_report_without_cluster_or_thresholds() -> None:
    results = _results(cluster=False)
    names = [s.name for s in plot_specs(results, [])]
    assert names == ["latency", "throughput", "errors", "latency-spectrum"]
    md = render_report(results, [], "md")
    assert isinstance(md, str) and "No thresholds" in md and "## Cluster" not in md


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        ([], "No thresholds"),
        ([{"passed": True}], "Passed"),
        ([{"passed": True}, {"passed": False}], "Failed"),
    ],
)
def test_headline_from_thresholds(thresholds: list[dict[str, Any]], expected: str) -> None:
    assert headline({}, thresholds) == expected


def test_headline_prefers_the_recorded_verdict() -> None:
    assert headline({"verdict": "Inconclusive"}, [{"passed": True}]) == "Inconclusive"
    saturated = {"verdict": "Inconclusive", "verdictReason": "GeneratorSaturated"}
    assert headline(saturated, [{"passed": True}]) == "Inconclusive (GeneratorSaturated)"


def test_bad_inputs_are_report_errors() -> None:
    with pytest.raises(ReportError, match="unknown report format"):
        render_report(_results(cluster=False), [], "pdf")
    with pytest.raises(ReportError, match="not a Surge results"):
        render_report({"hello": 1}, [], "md")
    with pytest.raises(ReportError, match="no results yet"):
        inputs_from_document({"kind": "LoadTest", "status": {"phase": "Running"}}, "lt")


def test_inputs_from_a_loadtest_object() -> None:
    results = _results()
    obj = {"kind": "LoadTest", "status": {"results": results, "thresholds": _verdicts(results)}}
    got, thresholds = inputs_from_document(obj, "peak")
    assert got == results and len(thresholds) == 4


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
    results = _results()
    results["thresholds"] = _verdicts(results)  # as `surge run --out` writes it
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results))
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
    source.write_text(json.dumps(_results(cluster=False)))
    done = CliRunner().invoke(app, ["report", str(source), "--format", "html"])
    assert done.exit_code == 2
    assert "pip install 'surge[report]'" in done.output
    md = CliRunner().invoke(app, ["report", str(source)])  # Markdown needs no matplotlib
    assert md.exit_code == 0 and "## Load" in md.output
