"""`surge validate` and `surge crds`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from surge.api.crd import all_crds, render
from surge.api.manifests import ManifestError, load_file


def validate(
    files: Annotated[list[Path], typer.Argument(help="LoadTest or ScalingExperiment YAML files")],
) -> None:
    """Check manifests; print every error with the field that causes it. Exit 1 on any error."""
    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    failed = 0
    for path in files:
        try:
            resources = load_file(path)
        except ManifestError as exc:
            failed += 1
            for e in exc.errors:
                err.print(f"[red]✗[/] {path}: {e}", soft_wrap=True)
            continue
        for r in resources:
            out.print(f"[green]✓[/] {path}: {r.kind} {r.metadata.name} is valid", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def crds(
    out_dir: Annotated[
        Path | None, typer.Option(help="Write one file per CRD here instead of printing")
    ] = None,
) -> None:
    """Print the CustomResourceDefinitions generated from the models (or write them)."""
    docs = all_crds()
    if out_dir is None:
        typer.echo("---\n".join(render(c) for c in docs.values()), nl=False)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, crd in docs.items():
        (out_dir / name).write_text(render(crd))
        typer.echo(f"wrote {out_dir / name}")


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(crds)
