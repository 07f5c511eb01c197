"""`surge run`: a LoadTest on this machine, no cluster.

Steps: read and validate the manifest (field-named errors, exit 2); resolve a
dataset file into inline rows; refuse non-loopback targets unless --allow-remote
(surge.loadgen.manifest); optionally start the demo agent; wait for
target.readiness.http; run spec.load.workers `surge worker` processes with a shared
--start-at (surge.loadgen.supervisor) while the live progress table shows their
SURGE-PROGRESS lines (surge.loadgen.progress); merge, judge and summarise
(surge.loadgen.analysis); print results and threshold verdicts (surge.loadgen.tables);
write --out and --report.
Exit 0 all thresholds pass, 1 one fails (or the run broke), 2 bad input.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.live import Live
from rich.markup import escape

from surge.api.loadtest import LoadTestSpec
from surge.api.manifests import ManifestError
from surge.api.results import RunResults
from surge.loadgen.aggregate import build_timeseries
from surge.loadgen.analysis import Replicas, analyse
from surge.loadgen.manifest import (
    DEMO_SOURCE,
    check_target,
    is_loopback,
    load_loadtest,
    resolve_dataset,
)
from surge.loadgen.plan import WorkerPlan, build_plan
from surge.loadgen.processes import local_share, resolve, usable_cores
from surge.loadgen.progress import Progress, progress_table
from surge.loadgen.supervisor import Hooks, Supervised, supervise
from surge.loadgen.tables import results_table, sweep_table
from surge.loadgen.trace_resolve import resolve_locally
from surge.readiness import probe, wait_ready
from surge.results.capacity import capacity_file

EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEMO_AGENT_ARGS = ("--cpu-ms", "2")
"""The demo agent keeps its latency profile; 2 ms of CPU per request keeps the embedded
default (100 req/s on a small machine) under the agent's capacity."""


async def run_workers(
    plan: WorkerPlan, workdir: Path, console: Console, *, live: bool = True, processes: int = 1
) -> tuple[Supervised, Progress]:
    """The plan's workers under the shared supervisor, with the live progress table; each
    runs `processes` sending processes."""
    prog = Progress()
    duration_s, workers = plan.spec.load.duration_s, plan.workers
    with Live(  # a non-terminal console just prints the last frame
        progress_table(duration_s, prog, 0.0, workers),
        console=console,
        refresh_per_second=2,
        transient=False,
        auto_refresh=live,
    ) as view:

        def redraw(elapsed_s: float) -> None:
            view.update(progress_table(duration_s, prog, elapsed_s, workers))

        hooks = Hooks(
            on_progress=prog.add,
            on_tick=redraw,
            extra_args=lambda _index: ("--processes", str(processes)),
        )
        done = await supervise(plan, workdir, hooks)
    if not console.is_terminal:
        # Live ends a terminal's last frame with a newline, a log's not: the results
        # would start on the progress line.
        console.line()
    return done, prog


def execute(
    path: Path | None,
    *,
    out: Path | None = None,
    report: Path | None = None,
    start_demo_agent: bool = False,
    allow_remote: bool = False,
    console: Console | None = None,
    live: bool = True,
    replicas: int = 1,
    capacity_out: Path | None = None,
    processes: int | None = None,
) -> int:
    """The body of `surge run`; returns the exit code. `report`: also render the report
    (format from the suffix: .html with plots, .json, else Markdown) with `surge report`'s
    renderer. A sweep's rates per replica divide by `replicas`; `capacity_out`: write what
    it found in the form `surge simulate --capacity FILE` reads. `processes`: each worker's
    sending processes (default: load.processesPerWorker, else its share of the usable cores;
    surge.loadgen.processes)."""
    console = console or Console()
    err = Console(stderr=True)
    try:
        lt, base = load_loadtest(path)
        source = str(path) if path else DEMO_SOURCE
        spec = resolve_locally(resolve_dataset(lt.spec, base, source), source)
        check_target(spec, allow_remote, source)
        plan = build_plan(
            spec,
            name=lt.metadata.name or "local",
            namespace=lt.metadata.namespace or "local",
            run_id=spec.run_id,
        )
        count = processes if processes is not None else local_share(spec, usable_cores())
        count = resolve(spec, workers=plan.workers, flag=count, env={})
    except ManifestError as exc:
        where = f"{exc.source}: " if exc.source else ""
        for e in exc.errors:
            err.print(f"[red]error[/red] {where}{e}", highlight=False)
        return EXIT_BAD_INPUT
    except ValueError as exc:
        err.print(f"[red]error[/red] {exc}", highlight=False)
        return EXIT_BAD_INPUT
    agent = None
    try:
        if start_demo_agent:
            agent = _maybe_start_agent(spec, console)
        problem = wait_ready(spec)
        if problem is not None:
            err.print(f"[red]error[/red] {problem}")
            return EXIT_FAILED
        console.print(
            f"[bold]{plan.name}[/bold]: {spec.load.model} load on {spec.target.url}"
            f"{spec.scenario.path}, {spec.load.duration_s:g}s "
            f"(warm-up {spec.load.warmup:g}s), {plan.workers} worker(s)"
            + (f" × {count} processes" if count > 1 else "")
        )
        with tempfile.TemporaryDirectory(prefix="surge-run-") as tmp:
            work = run_workers(plan, Path(tmp), console, live=live, processes=count)
            done, prog = asyncio.run(work)
    finally:
        if agent is not None:
            from surge.agent.process import stop_agent_process  # lazy: surge.agent loads aiohttp

            stop_agent_process(agent)
    summaries, problems = done.summaries, done.problems
    for p in problems.values():
        err.print(f"[red]error[/red] {p}", highlight=False)
    if not summaries:
        return EXIT_FAILED
    segs = plan.segments if spec.load.model != "closed" else None
    done_ = analyse(
        spec,
        summaries,
        missing=sorted(problems),
        worker_count=plan.workers,
        timeseries=build_timeseries(prog.intervals, spec.load.warmup, segs),
        replicas=Replicas(replicas, "surge run --replicas"),
    )
    results, judged = done_.results, done_.judgement
    assert results is not None  # summaries is not empty
    for table in results_table(results):
        console.print(table)
    steps = sweep_table(results)
    if steps is not None:
        console.print(steps)
    outcome = judged.verdict
    style = "green" if outcome == "Passed" else "red"
    why = "" if outcome == "Passed" else escape(f" ({judged.reason}: {judged.message})")
    console.print(f"verdict: [{style}]{outcome}[/{style}]{why}", highlight=False)
    if out is not None:
        out.write_text(json.dumps(results.to_json(), indent=2))
        console.print(f"results written to {out}")
    if report is not None:
        _write_report(report, results, console, err)
    if capacity_out is not None and results.capacity is not None:
        capacity_out.write_text(json.dumps(capacity_file(results), indent=2))
        console.print(f"capacity written to {capacity_out}")
    return EXIT_PASSED if outcome == "Passed" else EXIT_FAILED


def _write_report(path: Path, results: RunResults, console: Console, err: Console) -> None:
    from surge.results.commands import format_for
    from surge.results.plots import MissingMatplotlib
    from surge.results.report import ReportError, render_report

    try:
        text = render_report(results, format_for(path, None))
    except (ReportError, MissingMatplotlib) as exc:
        err.print(f"[red]error[/red] report not written: {exc}", highlight=False)
        return
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    console.print(f"report written to {path}")


def _maybe_start_agent(spec: LoadTestSpec, console: Console) -> subprocess.Popen[str] | None:
    """Start the demo agent on the target's port when the target is loopback and silent."""
    url = spec.target.url
    if not is_loopback(url):
        return None
    hurl = spec.target.health_url()
    if (hurl is not None and probe(hurl, 200, timeout_s=0.5)[0]) or (
        hurl is None and _port_open(url)
    ):
        console.print(f"a target already answers at {url}; not starting the demo agent")
        return None
    from surge.agent.process import start_agent_process  # lazy: surge.agent loads aiohttp

    parts = urlsplit(url)
    port = parts.port or 80
    proc, agent_url = start_agent_process(
        ["--host", parts.hostname or "127.0.0.1", "--port", str(port), *DEMO_AGENT_ARGS],
        stderr=subprocess.DEVNULL,
    )
    console.print(f"started the demo agent (Alice) at {agent_url}")
    return proc


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
