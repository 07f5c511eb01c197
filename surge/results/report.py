"""Reports from a results dict and its threshold verdicts: Markdown, HTML or JSON. Pure.

HTML is one self-contained file: plots are PNGs embedded as base64 <img> tags, with no
JavaScript and no external assets, so a report opens offline, attaches to a ticket and
survives being mailed around. Markdown has the tables only (plots need --format html).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from surge.results.capacity_plot import (
    CAPACITY_HEAD,
    capacity_headline,
    capacity_rows,
    capacity_spec,
)
from surge.results.plots import plot_specs, render_png

FORMATS = ("md", "html", "json")
Row = tuple[str, str]


class ReportError(ValueError):
    """The inputs cannot make a report (unknown format, not a results dict)."""


def headline(results: Mapping[str, Any], thresholds: Sequence[Mapping[str, Any]]) -> str:
    """The verdict the run recorded (surge.verdicts.verdict, in results["verdict"]); for results
    written without one, what the thresholds say ("No thresholds" when there are none)."""
    recorded = results.get("verdict")
    if isinstance(recorded, str) and recorded:
        reason = results.get("verdictReason")
        return f"{recorded} ({reason})" if reason and recorded != "Passed" else recorded
    if not thresholds:
        return "No thresholds"
    return "Passed" if all(t.get("passed") for t in thresholds) else "Failed"


def _num(value: Any, fmt: str = "{:.4g}", unit: str = "") -> str:
    if value is None:
        return "no data"
    return fmt.format(value) + unit


def _pct(value: Any) -> str:
    return "no data" if value is None else f"{value * 100:.3g}%"


def summary_rows(results: Mapping[str, Any]) -> list[Row]:
    """The loadgen's headline numbers, each with its unit."""
    tp = results.get("throughput") or {}
    lat = results.get("latency") or {}
    err = results.get("errors") or {}
    req = results.get("requests") or {}
    good = results.get("goodput") or {}
    win = results.get("window") or {}
    rows: list[Row] = [
        ("measured window", _num(win.get("measuredSeconds"), unit=" s")
         + f" (after {_num(win.get('warmupSeconds'), unit=' s')} warm-up)"),
        ("requests sent / ok / dropped",
         f"{req.get('sent', 0)} / {req.get('ok', 0)} / {req.get('dropped', 0)}"),
        ("throughput (target → achieved)",
         f"{_num(tp.get('targetRps'), unit='/s')} → {_num(tp.get('achievedRps'), unit='/s')}"),
    ]  # fmt: skip
    for key in ("p50", "p90", "p95", "p99", "max", "mean"):
        rows.append((f"latency {key}", _num(lat.get(key), "{:.1f}", " ms")))
    for family in ("ttft", "tpot"):
        part = results.get(family) or {}
        if part.get("p95") is not None:
            rows.append((f"{family} p50 / p95", f"{_num(part.get('p50'), '{:.1f}')} / "
                         f"{_num(part.get('p95'), '{:.1f}', ' ms')}"))  # fmt: skip
    rows.append(("error rate", f"{_pct(err.get('rate'))} ({err.get('count', 0)} errors)"))
    by_class = {k: v for k, v in (err.get("byClass") or {}).items() if v}
    if by_class:
        rows.append(("errors by class", ", ".join(f"{k}: {v}" for k, v in by_class.items())))
    for r in err.get("reasons") or []:
        rows.append(("error reason", f"{r['count']} {r['errorClass']}: {r['reason']}"))
    rows.append(("goodput", f"{_num(good.get('rps'), unit='/s')} ({_pct(good.get('ratio'))})"))
    tokens = results.get("tokens") or {}
    if tokens.get("outputRps") is not None:
        rows.append(("output tokens", _num(tokens.get("outputRps"), unit="/s")))
    return rows


def cluster_rows(results: Mapping[str, Any]) -> list[Row]:
    """Replicas, CPU, GPU and memory from results["cluster"]; empty without it."""
    cluster = results.get("cluster")
    if not cluster:
        return []
    rows: list[Row] = []
    rep = cluster.get("replicas")
    if rep:
        rows += [
            ("replicas min / mean / max", f"{rep['min']:g} / {rep['mean']:.3g} / {rep['max']:g}"),
            ("time to first scale-up", _num(rep.get("timeToFirstScaleUpS"), "{:g}", " s")
             if rep.get("timeToFirstScaleUpS") is not None else "never scaled up"),
            ("time to peak", _num(rep.get("timeToPeakS"), "{:g}", " s")),
            ("replica-seconds", _num(rep.get("replicaSeconds"), "{:.6g}")),
            ("scale events", str(rep.get("scaleEvents"))),
        ]  # fmt: skip
    for key, label, unit in (("cpu", "CPU", " cores"), ("gpu", "GPU utilisation", " %")):
        part = cluster.get(key)
        if part and part.get("mean") is not None:
            rows.append((f"{label} mean / max", f"{part['mean']:.3g} / {part['max']:.3g}{unit}"))
    mem = cluster.get("memory")
    if mem:
        rows.append(
            ("memory mean / max", f"{mem['mean'] / 2**20:.4g} / {mem['max'] / 2**20:.4g} MiB")
        )
    if cluster.get("noData"):
        rows.append(("no data", ", ".join(cluster["noData"])))
    return rows


def threshold_rows(thresholds: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(expression, measured vs limit, verdict) per threshold."""
    return [
        (
            str(t.get("expression", t.get("metric", ""))),
            str(t.get("display") or f"{t.get('measured')} {t.get('op')} {t.get('limit')}"),
            "✓ pass" if t.get("passed") else "✗ fail",
        )
        for t in thresholds
    ]


def _title(results: Mapping[str, Any]) -> str:
    name = results.get("loadtest") or "local run"
    ns = results.get("namespace")
    run = results.get("runId")
    return f"Surge report: {f'{ns}/' if ns else ''}{name}" + (f" (run {run})" if run else "")


def render_markdown(results: Mapping[str, Any], thresholds: Sequence[Mapping[str, Any]]) -> str:
    out = [f"# {_title(results)}", "", f"**Verdict: {headline(results, thresholds)}**", ""]
    if thresholds:
        out += ["## Thresholds", "", "| threshold | measured | verdict |", "|---|---|---|"]
        out += [f"| `{e}` | {d} | {v} |" for e, d, v in threshold_rows(thresholds)] + [""]
    out += ["## Load", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in summary_rows(results)] + [""]
    rows = cluster_rows(results)
    if rows:
        out += ["## Cluster", "", "| | |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in rows] + [""]
    found = capacity_headline(results)
    if found is not None:
        out += ["## Capacity", "", f"**{found}**", ""]
        out += ["| " + " | ".join(CAPACITY_HEAD) + " |", "|" + "---|" * len(CAPACITY_HEAD)]
        out += ["| " + " | ".join(r) + " |" for r in capacity_rows(results)] + [""]
    out += ["Plots: `surge report --format html`.", ""]
    return "\n".join(out)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "color:#222}table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;"
    "padding:.3rem .6rem;text-align:left}th{background:#f4f4f4}.pass{color:#17803d}"
    ".fail{color:#b3261e}.open{color:#8a5a00}"
    "img{max-width:100%;display:block;margin:.5rem 0 1.5rem}"
)


def _table(rows: Sequence[Sequence[str]], head: Sequence[str] = ()) -> str:
    esc = html.escape
    parts = ["<table>"]
    if head:
        parts.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        cells = "".join(
            f'<td class="{"pass" if c.startswith("✓") else "fail"}">{esc(c)}</td>'
            if c.startswith(("✓", "✗"))
            else f"<td>{esc(c)}</td>"
            for c in row
        )
        parts.append(f"<tr>{cells}</tr>")
    return "".join(parts) + "</table>"


def render_html(
    results: Mapping[str, Any],
    thresholds: Sequence[Mapping[str, Any]],
    *,
    png: Callable[..., bytes] = render_png,
) -> str:
    """One self-contained HTML page; one <img> per plot in plot_specs(results, thresholds).
    Raises plots.MissingMatplotlib without matplotlib."""
    esc = html.escape
    title = _title(results)
    v = headline(results, thresholds)
    # No thresholds is no failure, and an Inconclusive run is neither pass nor fail.
    mark = {"Passed": "pass", "No": "", "Inconclusive": "open"}.get(v.split()[0], "fail")
    body = [f"<h1>{esc(title)}</h1>", f'<p><strong class="{mark}">Verdict: {esc(v)}</strong></p>']
    if thresholds:
        body += [
            "<h2>Thresholds</h2>",
            _table(threshold_rows(thresholds), ("threshold", "measured", "verdict")),
        ]
    body += ["<h2>Load</h2>", _table(summary_rows(results))]
    rows = cluster_rows(results)
    if rows:
        body += ["<h2>Cluster</h2>", _table(rows)]
    found = capacity_headline(results)
    curve = capacity_spec(results, thresholds)
    if found is not None:
        body += [f"<h2>Capacity</h2><p><strong>{esc(found)}</strong></p>"]
        body.append(_table(capacity_rows(results), CAPACITY_HEAD))
    specs = plot_specs(results, thresholds)
    if curve is not None:
        specs = [curve, *specs]
    if specs:
        body.append("<h2>Over time</h2>")
    for spec in specs:
        data = base64.b64encode(png(spec)).decode("ascii")
        alt = f"{spec.title}: {', '.join(spec.labels)}"
        body.append(
            f'<img id="plot-{esc(spec.name)}" alt="{esc(alt)}" src="data:image/png;base64,{data}">'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def render_report(
    results: dict[str, Any], thresholds: list[dict[str, Any]], fmt: str
) -> str | bytes:
    """The report as `fmt` ('md', 'html' or 'json'). `results` is the dict of
    loadgen.aggregate.compute_results (plus results["cluster"]); `thresholds` are
    ThresholdResult dicts. Raises ReportError on an unknown format, and
    plots.MissingMatplotlib for html without matplotlib."""
    if not isinstance(results, Mapping) or "metrics" not in results:
        raise ReportError("not a Surge results dict (no 'metrics'); see docs/results.md")
    if fmt == "json":
        return json.dumps({"verdict": headline(results, thresholds), "thresholds": thresholds,
                           "results": results}, indent=2, default=str) + "\n"  # fmt: skip
    if fmt == "md":
        return render_markdown(results, thresholds)
    if fmt == "html":
        return render_html(results, thresholds)
    raise ReportError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
