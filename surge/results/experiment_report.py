"""Reports for a ScalingExperiment: the comparison table, the recommendation, and plots of
replicas over time per variant and p95 against cost. With spec.simulation.liveTopK, each
variant's plot draws the predicted replicas (dashed) over the measured (solid) and the table
gains the simulator's error (surge.results.sim_error). Pure apart from drawing PNGs."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from surge.api.durations import parse_duration
from surge.results.plots import Line, PlotSpec, render_png
from surge.results.report import ReportError
from surge.results.sim_error import (
    SimError,
    measured_span,
    measured_steps,
    predicted_steps,
    variant_errors,
)

SIM_ERROR = "simulator error"

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


PREDICTED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("predictedSloViolationSeconds", "predicted SLO"),
    ("predictedP95Ms", "predicted p95 ms"),
    ("predictedCostPer1kRequests", "predicted cost / 1k req"),
)
"""With predictions (spec.simulation.liveTopK): the simulator's forecast of the same variant,
beside the measured columns (docs/experiments.md, "Reading predicted against measured")."""


def _cell(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if key == "passed":
        return "pass" if value else "FAIL"
    if key == "predictedSloViolationSeconds" and value is not None:
        return "pass" if value == 0 else f"FAIL ({value} s over)"
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


def _predicted(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The predictions that hold a replica timeline, by variant."""
    return {str(p["variant"]): p for p in status.get("predictions") or [] if p.get("replicaSeries")}


def _sim_cell(error: SimError | None) -> str:
    if error is None:
        return "—"
    return f"{error.mean_abs:.2f} replicas, {error.exact_share * 100:.0f}% exact"


def table_head(status: Mapping[str, Any]) -> list[str]:
    head = [label for _, label in COLUMNS]
    if not _predicted(status):
        return head
    return [*head, *(label for _, label in PREDICTED_COLUMNS), SIM_ERROR]


def comparison_rows(status: Mapping[str, Any], warmup_s: float = 0.0) -> list[list[str]]:
    """The ranked table, one row per variant (mean and [low–high] over repetitions); with
    predicted timelines, the simulator's error last (`warmup_s`: the load's warm-up)."""
    errors = variant_errors(status, warmup_s) if _predicted(status) else None
    out = []
    for row in status.get("comparison") or []:
        cells = [_cell(row, key) for key, _ in COLUMNS]
        if errors is not None:
            cells += [_cell(row, key) for key, _ in PREDICTED_COLUMNS]
            cells.append(_sim_cell(errors.get(str(row["name"]))))
        out.append(cells)
    return out


def _held(run: Mapping[str, Any], warmup_s: float) -> list[tuple[float, float]]:
    """The run's replica steps on the load's clock, the last value held to the run's end."""
    points = measured_steps(run, warmup_s)
    span = measured_span(run, warmup_s)
    if span is not None and span[1] > points[-1][0]:
        points.append((span[1], points[-1][1]))
    return points


def _variant_plots(status: Mapping[str, Any], warmup_s: float) -> list[PlotSpec]:
    """One plot per variant: each run's measured replicas (solid) and the predicted (dashed),
    held to the end of the longer; variants in the comparison's order, then those only
    predicted (not run live)."""
    predicted = _predicted(status)
    runs = [r for r in status.get("runs") or [] if r.get("replicaSeries")]
    names = [str(r["name"]) for r in status.get("comparison") or []]
    names += [n for n in predicted if n not in names]
    specs: list[PlotSpec] = []
    for name in names:
        lines = [
            Line(f"measured r{run.get('repetition', 0)}", _held(run, warmup_s), steps=True)
            for run in runs
            if run["name"] == name
        ]
        p = predicted.get(name)
        if p is not None:
            points = predicted_steps(p)
            end = max(
                [float(p.get("replicaSeriesEndS") or 0.0)] + [ln.points[-1][0] for ln in lines]
            )
            if end > points[-1][0]:
                points.append((end, points[-1][1]))
            lines.append(Line("predicted", points, steps=True, dashed=True))
        if not lines:
            continue
        only = "" if len(lines) > 1 or p is None else " (predicted only: not run live)"
        specs.append(
            PlotSpec(
                f"replicas-{name}",
                f"Replicas of {name}: measured and predicted{only}",
                "replicas",
                lines,
                xlabel="seconds since the run's load began",
            )
        )
    return specs


def experiment_plot_specs(status: Mapping[str, Any], warmup_s: float = 0.0) -> list[PlotSpec]:
    """Replicas over time, one line per run (with predicted timelines: one plot per variant,
    measured and predicted); p95 against cost per 1k requests, one point per variant (the
    mean over repetitions). `warmup_s`: the load's warm-up, where Prometheus's series start."""
    specs: list[PlotSpec] = []
    lines = [
        Line(f"{run['name']} r{run.get('repetition', 0)}", _held(run, warmup_s), steps=True)
        for run in status.get("runs") or []
        if run.get("replicaSeries")
    ]
    if _predicted(status):
        specs += _variant_plots(status, warmup_s)
    elif lines:
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


def warmup_of(obj: Mapping[str, Any]) -> float:
    """spec.loadTest.load.warmup in seconds (0 when unset)."""
    raw = (((obj.get("spec") or {}).get("loadTest") or {}).get("load") or {}).get("warmup")
    if raw is None or raw == 0:
        return 0.0
    try:
        return parse_duration(str(raw))
    except ValueError as exc:
        raise ReportError(f"spec.loadTest.load.warmup: {exc}") from None


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
    warmup_s = warmup_of(obj)
    head = table_head(status)
    rows = comparison_rows(status, warmup_s)
    line = status.get("recommendation") or ""
    errors = variant_errors(status, warmup_s) if _predicted(status) else {}
    if fmt == "json":
        return (
            json.dumps(
                {
                    "name": name,
                    "recommendation": line,
                    "comparison": status["comparison"],
                    "runs": status.get("runs") or [],
                    "predictions": status.get("predictions") or [],
                    "simulatorError": {
                        name: {
                            "meanAbsReplicas": e.mean_abs,
                            "exactShare": e.exact_share,
                            "seconds": e.seconds,
                        }
                        for name, e in errors.items()
                    },
                },
                indent=2,
            )
            + "\n"
        )
    note = (
        f"\n{SIM_ERROR}: mean |predicted − measured| replicas over each second of the "
        "measured runs, and the share of those seconds they agree (docs/metrics.md).\n"
        if SIM_ERROR in head
        else ""
    )
    if fmt == "md":
        return (
            f"# ScalingExperiment {name}\n\n**Recommendation:** {line}\n\n"
            + _md_table(rows, head)
            + "\n"
            + note
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
    for spec in experiment_plot_specs(status, warmup_s):
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
        + (f"<p>{esc(note.strip())}</p>" if note else "")
        + "".join(imgs)
        + "</body></html>\n"
    )
