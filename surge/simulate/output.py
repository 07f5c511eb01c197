"""What `surge simulate` writes: the JSON document, the terminal table, and the report
(Markdown, or HTML with the replica timelines and the cost-vs-SLO Pareto plot)."""

from __future__ import annotations

import base64
import html
import math
from typing import Any

import yaml

from surge.simulate.capacity import Slo
from surge.simulate.keda import summary_line
from surge.simulate.plan import Settings
from surge.simulate.run import Outcome, Point
from surge.simulate.search import SearchResult, hpa_manifest
from surge.simulate.trace import Load1s


def _num(x: float | None, digits: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _point(p: Point) -> dict[str, Any]:
    return {
        "t": p.t,
        "replicas": p.replicas,
        "ready": p.ready,
        "rps": _num(p.rps, 5),
        "latencyP95": _num(p.latency_p95, 4),
        "utilization": _num(p.utilization, 4),
    }


def summary(o: Outcome) -> dict[str, Any]:
    return {
        "replicaSeconds": _num(o.replica_seconds),
        "cost": _num(o.cost),
        "costPer1kRequests": _num(o.cost_per_1k),
        "requests": _num(o.requests),
        "served": _num(o.served),
        "sloViolationSeconds": o.violation_s,
        "latencyP95Max": _num(o.p95_max, 4),
        "scaleEvents": o.scale_events,
        "replicasMin": o.replicas_min,
        "replicasMax": o.replicas_max,
    }


def _outcome(o: Outcome, timeline: bool = True) -> dict[str, Any]:
    pool = o.pool
    doc: dict[str, Any] = {
        "name": o.name,
        "pool": pool.name,
        "pricePerReplicaHour": pool.price,
        **summary(o),
    }
    if o.keda is not None:
        doc["scaledObject"] = o.keda
    if timeline:
        doc["timeline"] = [_point(p) for p in o.timeline]
    return doc


def regret(o: Outcome, best: Outcome) -> dict[str, Any]:
    cost, floor = o.cost, best.cost
    return {
        "extraCost": _num(cost - floor) if cost is not None and floor is not None else None,
        "extraReplicaSeconds": _num(o.replica_seconds - best.replica_seconds),
        "lostSloSeconds": o.violation_s - best.violation_s,
    }


def document(
    name: str,
    load: Load1s,
    settings: Settings,
    slo: Slo,
    outcomes: list[Outcome],
    perfects: dict[str, Outcome],
    search: SearchResult | None = None,
    spec: Any = None,
) -> dict[str, Any]:
    """The JSON output; `variants[].timeline[]` holds {t, replicas, ...}, t in seconds."""
    doc: dict[str, Any] = {
        "experiment": name,
        "load": {"source": load.source, "durationSeconds": len(load.rates)},
        "syncPeriodSeconds": settings.sync_s,
        "slo": {"p95Seconds": slo.p95_s, "from": slo.source},
        "variants": [{**_outcome(o), "regret": regret(o, perfects[o.pool.name])} for o in outcomes],
        "perfect": [_outcome(p) for p in perfects.values()],
        "warnings": [
            f"pool {p.pool.name} has no price (variant costPerReplicaHour or spec.cost.perPool): "
            "cost is null"
            for p in perfects.values()
            if p.pool.price is None
        ],
    }
    if search is not None:
        doc["search"] = {
            "base": search.base,
            "points": len(search.candidates),
            "maxViolationSeconds": search.max_violation_s,
            "front": [{"hpa": c.hpa.wire(), **summary(c.outcome)} for c in search.front],
            "chosen": {"hpa": c_wire(search), **summary(search.chosen.outcome)},
            "chosenManifest": hpa_manifest(spec, search.chosen.hpa) if spec is not None else None,
        }
    return doc


def c_wire(search: SearchResult) -> dict[str, Any]:
    return search.chosen.hpa.wire()


def _fmt(x: Any, spec: str = ".4g") -> str:
    return "–" if x is None else format(x, spec)


def table(doc: dict[str, Any]) -> str:
    """One line per variant and per perfect autoscaler, for the terminal and Markdown."""
    rows = [
        "| variant | pool | replica-h | cost | cost/1k req | SLO-violation s | p95 max s "
        "| scale events | extra cost | lost SLO s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in doc["variants"] + doc["perfect"]:
        r = v.get("regret", {})
        rows.append(
            f"| {v['name']} | {v['pool']} | {_fmt(v['replicaSeconds'] / 3600)} "
            f"| {_fmt(v['cost'])} | {_fmt(v['costPer1kRequests'])} "
            f"| {v['sloViolationSeconds']} | {_fmt(v['latencyP95Max'])} | {v['scaleEvents']} "
            f"| {_fmt(r.get('extraCost'))} | {_fmt(r.get('lostSloSeconds'), 'd')} |"
        )
    keda = [
        summary_line(v["name"], v["scaledObject"]) for v in doc["variants"] if "scaledObject" in v
    ]
    return "\n".join(rows + (["", *keda] if keda else []))


def search_text(doc: dict[str, Any]) -> str:
    s = doc.get("search")
    if not s:
        return ""
    chosen = s["chosen"]
    lines = [
        f"Search around {s['base']}: {s['points']} points, {len(s['front'])} on the Pareto front.",
        f"Chosen (cheapest with at most {s['maxViolationSeconds']:g} SLO-violation s): "
        f"cost {_fmt(chosen['cost'])}, {chosen['sloViolationSeconds']} SLO-violation s.",
    ]
    if s.get("chosenManifest"):
        lines += ["", "```yaml", yaml.safe_dump(s["chosenManifest"], sort_keys=False).rstrip()]
        lines.append("```")
    return "\n".join(lines)


def markdown(doc: dict[str, Any]) -> str:
    slo = doc["slo"]
    head = [
        f"# Simulation: {doc['experiment']}",
        "",
        f"Load: {doc['load']['source']}, {doc['load']['durationSeconds']} s; HPA sync every "
        f"{doc['syncPeriodSeconds']} s; SLO: {slo['from']}.",
        "",
        table(doc),
    ]
    for w in doc["warnings"]:
        head += ["", f"> {w}"]
    extra = search_text(doc)
    return "\n".join(head + (["", extra] if extra else [])) + "\n"


def plots(doc: dict[str, Any]) -> list[Any]:
    """PlotSpecs: replicas over time (variants and perfect), offered load, the Pareto plot."""
    from surge.results.plots import Line, PlotSpec

    every = doc["variants"] + doc["perfect"]
    replicas = PlotSpec(
        "replicas",
        "Replicas over time",
        "replicas",
        [
            Line(v["name"], [(p["t"], p["replicas"]) for p in v["timeline"]], steps=True)
            for v in every
        ],
        xlabel="seconds since the start",
    )
    first = every[0]["timeline"] if every else []
    load = PlotSpec(
        "load",
        "Offered load",
        "requests per second",
        [Line("offered", [(p["t"], p["rps"] or 0.0) for p in first])],
        xlabel="seconds since the start",
    )
    front = PlotSpec(
        "pareto",
        "Cost against SLO violation",
        "cost" if all(v["cost"] is not None for v in every) else "replica-seconds",
        [
            Line(
                v["name"],
                [
                    (
                        v["sloViolationSeconds"],
                        v["cost"] if v["cost"] is not None else v["replicaSeconds"],
                    )
                ],
                markers=True,
            )
            for v in every
        ],
        xlabel="SLO-violation seconds",
    )
    return [replicas, load, front]


def html_report(doc: dict[str, Any]) -> str:
    """The Markdown table and the plots as one HTML page (needs matplotlib)."""
    from surge.results.plots import render_png

    parts = [f"<h1>Simulation: {html.escape(doc['experiment'])}</h1>"]
    parts.append(f"<pre>{html.escape(markdown(doc))}</pre>")
    for spec in plots(doc):
        png = base64.b64encode(render_png(spec, width_in=10, height_in=4)).decode()
        parts.append(f'<img alt="{spec.title}" src="data:image/png;base64,{png}">')
    return "<!doctype html><meta charset=utf-8><title>surge simulate</title>\n" + "\n".join(parts)
