"""CLI: `surge report SOURCE`: a report from a LoadTest in the cluster or a results file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from surge.api.results import ResultsError, RunResults, RunVerdict, load_results
from surge.api.status import LoadTestStatus, Reason
from surge.results.experiment_report import render_experiment
from surge.results.report import FORMATS, ReportError, render_report


def results_from_document(doc: Any, source: str) -> RunResults:
    """The RunResults of a `surge run --out` file or a LoadTest object (as `kubectl get -o
    json` or the API returns it), with the verdict the run recorded. Raises ReportError
    with the reason (a results version this Surge cannot read is named)."""
    if not isinstance(doc, Mapping):
        raise ReportError(f"{source}: not a JSON object")
    try:
        if doc.get("kind") == "LoadTest":
            return _from_loadtest(doc, source)
        if "metrics" in doc or "version" in doc:
            return load_results(dict(doc), source)
    except ResultsError as exc:
        raise ReportError(str(exc)) from None
    raise ReportError(f"{source}: neither a results file (surge run --out) nor a LoadTest")


def _from_loadtest(doc: Mapping[str, Any], source: str) -> RunResults:
    raw = doc.get("status") or {}
    status = raw if isinstance(raw, Mapping) else {}
    if not status.get("results"):
        phase = status.get("phase", "Pending")
        raise ReportError(f"{source}: the LoadTest has no results yet (phase {phase})")
    results = load_results(dict(status["results"]), f"{source}: status.results")
    try:
        st = LoadTestStatus.model_validate({**status, "results": None})
    except ValidationError as exc:
        raise ReportError(f"{source}: status: {exc.errors()[0]['msg']}") from None
    if not results.thresholds:
        results.thresholds = list(st.thresholds)
    if results.verdict is None and st.summary.verdict is not None:
        # Results written before the verdict was recorded in them: the run's verdict is
        # status.summary's, its reason the Completed condition's, never the thresholds'.
        done = next((c for c in st.conditions if c.type == "Completed"), None)
        if done is None or done.reason not in set(Reason):
            raise ReportError(
                f"{source}: status.summary.verdict is {st.summary.verdict} but the Completed "
                "condition gives no known reason; the run has not ended"
            )
        results.verdict = RunVerdict(
            outcome=st.summary.verdict, reason=Reason(done.reason), message=done.message
        )
    return results


def format_for(out: Path | None, fmt: str | None) -> str:
    """--format wins; else the output file's suffix (.html, .json, .md); else md."""
    if fmt:
        return fmt
    suffix = out.suffix.lower().lstrip(".") if out else ""
    return {"htm": "html", "html": "html", "json": "json"}.get(suffix, "md")


def _read_loadtest(name: str, namespace: str | None) -> dict[str, Any]:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    from surge.api.base import GROUP, VERSION

    try:
        config.load_kube_config()  # type: ignore[no-untyped-call]
        if namespace is None:
            _, active = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
            namespace = (active or {}).get("context", {}).get("namespace") or "default"
    except (ConfigException, FileNotFoundError, TypeError):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        namespace = (
            namespace
            or Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip()
        )
    for plural in ("loadtests", "scalingexperiments"):
        try:
            obj: Any = client.CustomObjectsApi().get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        except ApiException as exc:
            if exc.status == 404:
                continue
            raise ReportError(
                f"reading {plural} {namespace}/{name}: {exc.status} {exc.reason}"
            ) from None
        return dict(obj)
    raise ReportError(f"no LoadTest or ScalingExperiment {namespace}/{name}")


def report(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="A results JSON file (surge run --out), a LoadTest or ScalingExperiment "
            "name, or either resource as JSON (kubectl get -o json).",
        ),
    ],
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="LoadTest namespace; default: the context's."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="md, html or json; default: from -o's suffix, else md."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here, not stdout.")] = None,
) -> None:
    """Render a report: thresholds with measured values, load and cluster tables, plots (html)."""
    from surge.results.plots import MissingMatplotlib

    chosen = format_for(out, fmt)
    if chosen not in FORMATS:
        typer.echo(f"error: unknown format {chosen!r}; use one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    path = Path(source)
    try:
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ReportError(f"{source}: not JSON ({exc})") from None
        else:
            doc = _read_loadtest(source, namespace)
        if isinstance(doc, Mapping) and doc.get("kind") == "ScalingExperiment":
            text: str | bytes = render_experiment(doc, chosen)
        else:
            text = render_report(results_from_document(doc, source), chosen)
    except (ReportError, MissingMatplotlib) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    data = text.encode() if isinstance(text, str) else text
    if out is None:
        typer.echo(data.decode(errors="replace"), nl=False)
    else:
        out.write_bytes(data)
        typer.echo(f"report written to {out}", err=True)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
