"""Reports for a ScalingExperiment: the comparison table, the recommendation, and plots of
replicas over time per variant and p95 against cost. Pure apart from drawing PNGs."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from surge.results.plots import Line, PlotSpec, render_png
from surge.results.report import ReportError

COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "variant"),
    ("passed", "SLO"),
    ("achievedRps", "req/s"),
    ("p95Ms", "p95 ms"),
    ("p99Ms", "p99 ms"),
    ("ttftP95Ms", "TTFT p95 ms"),
    ("errorRate", "errors"),
    ("replicasMin", "replicas min"),
    ("replicasMean", "mean"),
    ("replicasMax", "max"),
    ("timeToScaleUpS", "scale-up s"),
    ("replicaSeconds", "replica-s"),
    ("scaleEvents", "scale events"),
    ("costPer1kRequests", "cost / 1k req"),
)


def _cell(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if key == "passed":
        return "pass" if value else "FAIL"
    if value is None:
        return "—"
    if key == "errorRate":
        text = f"{float(value) * 100:.3g}%"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    spread = row.get(f"{key}Range")
    if spread and row.get("repetitions", 1) > 1 and spread[0] != spread[1]:
        text += f" [{spread[0]:.4g}–{spread[1]:.4g}]"
    return text


def comparison_rows(status: Mapping[str, Any]) -> list[list[str]]:
    """The ranked table, one row per variant (mean and [low–high] over repetitions)."""
    return [[_cell(row, key) for key, _ in COLUMNS] for row in status.get("comparison") or []]


def _held(run: Mapping[str, Any]) -> list[tuple[float, float]]:
    """The run's replica steps, the last value held to the end of the run."""
    points = [(float(t), float(v)) for t, v in run["replicaSeries"]]
    end = run.get("replicaSeriesEndS")
    if end is not None and float(end) > points[-1][0]:
        points.append((float(end), points[-1][1]))
    return points


def experiment_plot_specs(status: Mapping[str, Any]) -> list[PlotSpec]:
    """Replicas over time, one line per run; p95 against cost per 1k requests, one point
    per variant (the mean over repetitions)."""
    specs: list[PlotSpec] = []
    lines = [
        Line(f"{run['name']} r{run.get('repetition', 0)}", _held(run), steps=True)
        for run in status.get("runs") or []
        if run.get("replicaSeries")
    ]
    if lines:
        specs.append(
            PlotSpec(
                "replicas",
                "Replicas over time, per variant",
                "replicas",
                lines,
                xlabel="seconds since the run's load began",
            )
        )
    points = [
        Line(
            str(row["name"]), [(float(row["costPer1kRequests"]), float(row["p95Ms"]))], markers=True
        )
        for row in status.get("comparison") or []
        if row.get("costPer1kRequests") is not None and row.get("p95Ms") is not None
    ]
    if points:
        specs.append(
            PlotSpec(
                "p95-cost",
                "p95 latency against cost",
                "p95 ms",
                points,
                xlabel="cost per 1k requests",
            )
        )
    return specs


def _md_table(rows: Sequence[Sequence[str]], head: Sequence[str]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def render_experiment(
    obj: Mapping[str, Any], fmt: str, *, png: Callable[..., bytes] = render_png
) -> str:
    """A ScalingExperiment object (as the API returns it) as md, html or json.
    Raises ReportError when it has no comparison yet or the format is unknown."""
    status = obj.get("status") or {}
    name = (obj.get("metadata") or {}).get("name", "experiment")
    if not status.get("comparison"):
        raise ReportError(
            f"ScalingExperiment {name} has no comparison yet "
            f"(phase {status.get('phase', 'Pending')})"
        )
    head = [label for _, label in COLUMNS]
    rows = comparison_rows(status)
    line = status.get("recommendation") or ""
    if fmt == "json":
        return (
            json.dumps(
                {
                    "name": name,
                    "recommendation": line,
                    "comparison": status["comparison"],
                    "runs": status.get("runs") or [],
                },
                indent=2,
            )
            + "\n"
        )
    if fmt == "md":
        return (
            f"# ScalingExperiment {name}\n\n**Recommendation:** {line}\n\n"
            + _md_table(rows, head)
            + "\n"
        )
    if fmt != "html":
        raise ReportError(f"unknown report format {fmt!r}; use md, html or json")
    esc = html.escape
    table = (
        "<table><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr>"
        + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
        + "</table>"
    )
    imgs = []
    for spec in experiment_plot_specs(status):
        data = base64.b64encode(png(spec)).decode("ascii")
        alt = f"{spec.title}: {', '.join(spec.labels)}"
        imgs.append(
            f'<img id="plot-{esc(spec.name)}" alt="{esc(alt)}" src="data:image/png;base64,{data}">'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>ScalingExperiment {esc(name)}</title><style>body{{font-family:sans-serif;"
        "margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.3em .6em}</style></head><body>"
        f"<h1>ScalingExperiment {esc(name)}</h1>"
        f"<p><strong>Recommendation:</strong> {esc(line)}</p>{table}"
        + "".join(imgs)
        + "</body></html>\n"
    )
