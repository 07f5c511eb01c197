"""`surge simulate FILE`: rank a ScalingExperiment's variants in seconds, no cluster."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from surge.api.durations import parse_duration
from surge.api.experiment import ScalingExperiment
from surge.api.manifests import ManifestError, load_file
from surge.simulate.capacity import load_capacity_file, pool_for, slo_of
from surge.simulate.errors import SimulationError
from surge.simulate.output import document, html_report, markdown, search_text, table
from surge.simulate.plan import plan_all
from surge.simulate.run import Outcome, perfect, simulate
from surge.simulate.search import SearchResult, run_search
from surge.simulate.trace import from_load, read_csv


def _experiment(path: Path) -> ScalingExperiment:
    try:
        resources = load_file(path)
    except ManifestError as exc:
        raise SimulationError("\n".join(f"{path}: {e}" for e in exc.errors)) from None
    found = [r for r in resources if isinstance(r, ScalingExperiment)]
    if not found:
        raise SimulationError(f"{path}: holds no ScalingExperiment; simulate needs one")
    return found[0]


def simulate_command(
    file: Annotated[Path, typer.Argument(help="A ScalingExperiment YAML file")],
    trace: Annotated[
        Path | None,
        typer.Option(help="CSV of t_seconds,rps to replay instead of the loadTest stages"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON result here")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write a report: .md, or .html with plots")
    ] = None,
    search: Annotated[
        bool, typer.Option("--search", help="Try the grid of spec.simulation.search")
    ] = False,
    variant: Annotated[
        list[str] | None, typer.Option(help="Simulate only this variant (repeatable)")
    ] = None,
    capacity: Annotated[
        Path | None,
        typer.Option(help="JSON/YAML of pool -> capacity (a sweep's output); overrides the spec"),
    ] = None,
    max_gap: Annotated[
        str | None, typer.Option(help="Longest interval between trace samples, e.g. 5m")
    ] = None,
) -> None:
    """Replay the load through a model of the HPA controller for every variant: replicas,
    predicted latency, SLO-violation seconds, cost and regret against a perfect autoscaler."""
    started = time.perf_counter()
    try:
        exp = _experiment(file)
        spec = exp.spec
        overrides = load_capacity_file(capacity) if capacity else None
        settings, plans = plan_all(spec, variant, overrides)
        gap = None
        if max_gap is not None:
            try:
                gap = parse_duration(max_gap)
            except ValueError as exc:
                raise SimulationError(f"--max-gap: {exc}") from None
        load = read_csv(trace, gap) if trace else from_load(spec.load_test, str(file))
        slo = slo_of(spec)
        outcomes = [simulate(p, settings, load.rates, slo) for p in plans]
        found: SearchResult | None = None
        if search:
            found = run_search(spec, settings, load.rates, slo, overrides)
        pools = {p.pool.name: p.pool for p in plans}
        if found is not None:
            index = [v.name for v in spec.variants].index(found.base)
            pool = pool_for(spec, index, spec.variants[index], overrides)
            pools.setdefault(pool.name, pool)
        perfects: dict[str, Outcome] = {
            name: perfect(pool, load.rates, slo, settings.sync_s) for name, pool in pools.items()
        }
    except SimulationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    name = exp.metadata.name or file.stem
    doc = document(name, load, settings, slo, outcomes, perfects, found, spec)
    elapsed = time.perf_counter() - started
    typer.echo(table(doc))
    extra = search_text(doc)
    if extra:
        typer.echo("\n" + extra)
    for w in doc["warnings"]:
        typer.echo(f"warning: {w}", err=True)
    if out is not None:
        out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        typer.echo(f"wrote {out}", err=True)
    if report is not None:
        _write_report(report, doc)
    typer.echo(
        f"simulated {len(outcomes)} variant(s)"
        + (f" and {len(found.candidates)} search point(s)" if found else "")
        + f" over {len(load.rates)} s of load in {elapsed:.2f} s",
        err=True,
    )


def _write_report(path: Path, doc: dict[str, object]) -> None:
    from surge.results.plots import MissingMatplotlib

    if path.suffix.lower() in (".html", ".htm"):
        try:
            path.write_text(html_report(doc))
        except MissingMatplotlib as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    else:
        path.write_text(markdown(doc))
    typer.echo(f"wrote {path}", err=True)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
