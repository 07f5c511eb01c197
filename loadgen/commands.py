"""CLI: `surge run [FILE]` and `surge worker`. Also runnable as
`python -m surge.loadgen.commands worker ...` (how `surge run` spawns its workers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def run(
    file: Annotated[
        Path | None,
        typer.Argument(help="LoadTest manifest; default: the embedded demo (surge/defaults)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the results JSON here.")] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Also write a report: .html (with plots), .md or .json, by suffix."),
    ] = None,
    start_demo_agent: Annotated[
        bool,
        typer.Option(help="Start the demo agent when the loopback target does not answer."),
    ] = False,
    allow_remote: Annotated[
        bool, typer.Option(help="Allow targets that are not on this machine.")
    ] = False,
    replicas: Annotated[
        int, typer.Option(help="Sweep: the target's replicas (the per-replica divisor).", min=1)
    ] = 1,
    capacity_out: Annotated[
        Path | None,
        typer.Option(help="Sweep: write the capacity found for `surge simulate --capacity`."),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            help="Sending processes per worker; default load.processesPerWorker, else each "
            "worker's share of this machine's cores.",
            min=1,
            max=64,
        ),
    ] = None,
) -> None:
    """Run a LoadTest on this machine: exit 0 all thresholds pass, 1 one fails, 2 bad input."""
    from surge.loadgen.local import execute

    raise typer.Exit(
        execute(
            file,
            out=out,
            report=report,
            start_demo_agent=start_demo_agent,
            allow_remote=allow_remote,
            replicas=replicas,
            capacity_out=capacity_out,
            processes=processes,
        )
    )


def worker(
    plan: Annotated[Path | None, typer.Option(help="plan.json to run (local runs).")] = None,
    configmap: Annotated[
        str | None,
        typer.Option(help="NAMESPACE/NAME of the ConfigMap holding plan.json and startAt."),
    ] = None,
    index: Annotated[
        int | None,
        typer.Option(help="This worker's index; default JOB_COMPLETION_INDEX or 0.", min=0),
    ] = None,
    start_at: Annotated[
        float | None,
        typer.Option(
            help="Start at this epoch time (s); default: the ConfigMap's startAt, or now."
        ),
    ] = None,
    summary_out: Annotated[Path | None, typer.Option(help="Write the summary JSON here.")] = None,
    termination_log: Annotated[
        Path | None,
        typer.Option(help="Compact summary (≤ 4 KiB); default /dev/termination-log if writable."),
    ] = None,
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus /metrics on this port; 0 = off.", min=0)
    ] = 0,
    progress: Annotated[
        bool, typer.Option(help="Print a SURGE-PROGRESS line every second.")
    ] = True,
    processes: Annotated[
        int | None,
        typer.Option(
            help="Sending processes; default SURGE_PROCESSES, load.processesPerWorker, "
            "else this machine's usable cores.",
            min=1,
            max=64,
        ),
    ] = None,
) -> None:
    """Run one load-generator worker: its share of the plan, then its summary."""
    from surge.loadgen.worker import main

    raise typer.Exit(
        main(
            plan_file=plan,
            configmap=configmap,
            index=index,
            start_at=start_at,
            summary_out=summary_out,
            termination_log=termination_log,
            metrics_port=metrics_port,
            progress=progress,
            processes=processes,
        )
    )


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("worker")(worker)


def _standalone() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    _standalone()
