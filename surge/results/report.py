"""Reports from RunResults, with the verdict they recorded: Markdown, HTML or JSON. Pure.

HTML is one self-contained file: plots are PNGs embedded as base64 <img> tags, with no
JavaScript and no external assets, so a report opens offline, attaches to a ticket and
survives being mailed around. Markdown has the tables only (plots need --format html).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Sequence

from surge.api.results import RunResults, ThresholdResult
from surge.results.capacity_plot import (
    CAPACITY_HEAD,
    capacity_headline,
    capacity_rows,
    capacity_spec,
)
from surge.results.numbers import fmt_num
from surge.results.plots import plot_specs, render_png

FORMATS = ("md", "html", "json")
Row = tuple[str, str]


class ReportError(ValueError):
    """The inputs cannot make a report (unknown format, not a results dict)."""


def headline(results: RunResults) -> str:
    """The verdict the run recorded (results.verdict, with its reason unless it passed); for
    results written without one, what the thresholds say ("No thresholds" when none)."""
    recorded = results.verdict
    if recorded is not None:
        outcome, reason = recorded.outcome.value, recorded.reason
        return f"{outcome} ({reason})" if reason and outcome != "Passed" else outcome
    if not results.thresholds:
        return "No thresholds"
    return "Passed" if all(t.passed for t in results.thresholds) else "Failed"


def _num(value: float | None, unit: str = "") -> str:
    return fmt_num(value, unit, none="no data")


def _ms(value: float | None) -> str:
    return "no data" if value is None else f"{value:,.1f} ms"


def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{value * 100:.3g}%"


def summary_rows(results: RunResults) -> list[Row]:
    """The loadgen's headline numbers, each with its unit."""
    tp, lat, err = results.throughput, results.latency, results.errors
    req, good, win = results.requests, results.goodput, results.window
    rows: list[Row] = [
        ("measured window", _num(win.measured_seconds, " s")
         + f" (after {_num(win.warmup_seconds, ' s')} warm-up)"),
        ("requests sent / ok / dropped", f"{req.sent:,} / {req.ok:,} / {req.dropped:,}"),
        ("throughput (target → achieved)",
         f"{_num(tp.target_rps, '/s')} → {_num(tp.achieved_rps, '/s')}"),
    ]  # fmt: skip
    for key in ("p50", "p90", "p95", "p99", "max", "mean"):
        rows.append((f"latency {key}", _ms(getattr(lat, key))))
    for family, part in (("ttft", results.ttft), ("tpot", results.tpot)):
        if part.p95 is not None:
            rows.append((f"{family} p50 / p95", f"{_ms(part.p50)} / {_ms(part.p95)}"))
    rows.append(("error rate", f"{_pct(err.rate)} ({err.count:,} errors)"))
    by_class = {k: v for k, v in err.by_class.items() if v}
    if by_class:
        rows.append(("errors by class", ", ".join(f"{k}: {v:,}" for k, v in by_class.items())))
    for r in err.reasons:
        rows.append(("error reason", f"{r.count:,} {r.error_class}: {r.reason}"))
    rows.append(("goodput", f"{_num(good.rps, '/s')} ({_pct(good.ratio)})"))
    if results.tokens.output_rps is not None:
        rows.append(("output tokens", _num(results.tokens.output_rps, "/s")))
    return rows


def cluster_rows(results: RunResults) -> list[Row]:
    """Replicas, CPU, GPU and memory from results.cluster; empty without it."""
    cluster = results.cluster
    if cluster is None:
        return []
    rows: list[Row] = []
    rep = cluster.replicas
    if rep is not None:
        up = rep.time_to_first_scale_up_s
        rows += [
            ("replicas min / mean / max",
             f"{_num(rep.min)} / {_num(rep.mean)} / {_num(rep.max)}"),
            ("time to first scale-up", _num(up, " s") if up is not None else "never scaled up"),
            ("time to peak", _num(rep.time_to_peak_s, " s")),
            ("replica-seconds", _num(rep.replica_seconds)),
            ("scale events", str(rep.scale_events)),
        ]  # fmt: skip
    for part, label, unit in (
        (cluster.cpu, "CPU", " cores"),
        (cluster.gpu, "GPU utilisation", " %"),
    ):
        if part is not None and part.mean is not None:
            rows.append((f"{label} mean / max", f"{_num(part.mean)} / {_num(part.max)}{unit}"))
    mem = cluster.memory
    if mem is not None and mem.mean is not None and mem.max is not None:
        rows.append(
            ("memory mean / max", f"{_num(mem.mean / 2**20)} / {_num(mem.max / 2**20)} MiB")
        )
    if cluster.no_data:
        rows.append(("no data", ", ".join(cluster.no_data)))
    return rows


def threshold_rows(thresholds: Sequence[ThresholdResult]) -> list[tuple[str, str, str]]:
    """(expression, measured vs limit, verdict) per threshold."""
    return [
        (
            t.expression or t.metric,
            t.display or f"{t.measured} {t.op} {t.limit}",
            "✓ pass" if t.passed else "✗ fail",
        )
        for t in thresholds
    ]


def _title(results: RunResults) -> str:
    name = results.loadtest or "local run"
    ns = results.namespace
    run = results.run_id
    return f"Surge report: {f'{ns}/' if ns else ''}{name}" + (f" (run {run})" if run else "")


def render_markdown(results: RunResults) -> str:
    thresholds = results.thresholds
    out = [f"# {_title(results)}", "", f"**Verdict: {headline(results)}**", ""]
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


def render_html(results: RunResults, *, png: Callable[..., bytes] = render_png) -> str:
    """One self-contained HTML page; one <img> per plot in plot_specs(results).
    Raises plots.MissingMatplotlib without matplotlib."""
    esc = html.escape
    thresholds = results.thresholds
    title = _title(results)
    v = headline(results)
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
    curve = capacity_spec(results)
    if found is not None:
        body += [f"<h2>Capacity</h2><p><strong>{esc(found)}</strong></p>"]
        body.append(_table(capacity_rows(results), CAPACITY_HEAD))
    specs = plot_specs(results)
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


def render_report(results: RunResults, fmt: str) -> str | bytes:
    """The report as `fmt` ('md', 'html' or 'json'), with the verdict and thresholds the run
    recorded. Raises ReportError on an unknown format, and plots.MissingMatplotlib for html
    without matplotlib."""
    if fmt == "json":
        doc = {
            "verdict": headline(results),
            "thresholds": [t.model_dump(mode="json", by_alias=True) for t in results.thresholds],
            "results": results.to_json(),
        }
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "md":
        return render_markdown(results)
    if fmt == "html":
        return render_html(results)
    raise ReportError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
