"""`surge run`: a LoadTest on this machine, no cluster.

Steps: read and validate the manifest (field-named errors, exit 2); resolve a
dataset file into inline rows; refuse non-loopback targets unless --allow-remote;
optionally start the demo agent; wait for target.readiness.http; write one plan and
spawn spec.load.workers `surge worker` processes with a shared --start-at; show live
progress from their SURGE-PROGRESS lines; merge their summaries exactly; print
results and threshold verdicts. Exit 0 all thresholds pass, 1 one fails (or the run
broke), 2 bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import ipaddress
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.live import Live
from rich.table import Table

from surge.api.loadtest import LoadTest, LoadTestSpec
from surge.api.manifests import FieldError, ManifestError, load_documents, parse_resource
from surge.api.status import ThresholdResult
from surge.loadgen.aggregate import build_timeseries, compute_results
from surge.loadgen.plan import build_plan, plan_json, with_inline_rows
from surge.loadgen.scenario import read_jsonl
from surge.loadgen.summary import (
    PROGRESS_PREFIX,
    WorkerSummary,
    decode_histogram,
    first_summary,
    merge,
    new_histogram,
)
from surge.readiness import http_ready, wait_ready
from surge.verdicts import judge

EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
START_DELAY_S = 2.0
"""Workers start this long after spawning: time for N interpreters to import and connect."""
DEMO_AGENT_ARGS = ("--cpu-ms", "2")
"""The demo agent keeps its latency profile; 2 ms of CPU per request keeps the embedded
default (100 req/s on a small machine) under the agent's capacity."""


def load_loadtest(path: Path | None) -> tuple[LoadTest, Path]:
    """The LoadTest in FILE (or the packaged demo.yaml) and the directory relative paths
    are read from. Raises ManifestError."""
    if path is None:
        text = importlib.resources.files("surge.defaults").joinpath("demo.yaml").read_text()
        source, base = "surge/defaults/demo.yaml", Path.cwd()
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ManifestError(
                [FieldError("", f"cannot read: {exc.strerror}")], str(path)
            ) from None
        source, base = str(path), path.resolve().parent
    docs = load_documents(text, source)
    tests = [r for r in (parse_resource(d, source) for d in docs) if isinstance(r, LoadTest)]
    if len(tests) != 1:
        raise ManifestError(
            [FieldError("kind", f"surge run needs exactly one LoadTest (found {len(tests)})")],
            source,
        )
    return tests[0], base


def resolve_dataset(spec: LoadTestSpec, base: Path, source: str = "") -> LoadTestSpec:
    """Read a dataset file (relative to the manifest) into inline rows. Raises ManifestError."""
    ds = spec.scenario.dataset
    if ds is None or ds.inline is not None:
        return spec
    if ds.config_map_ref is not None:
        raise ManifestError(
            [
                FieldError(
                    "spec.scenario.dataset.configMapRef",
                    "local runs cannot read ConfigMaps; use inline or file",
                )
            ],
            source,
        )
    assert ds.file is not None
    path = Path(ds.file)
    path = path if path.is_absolute() else base / path
    try:
        rows = read_jsonl(path)
    except (OSError, ValueError) as exc:
        raise ManifestError([FieldError("spec.scenario.dataset.file", str(exc))], source) from None
    return with_inline_rows(spec, rows)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(spec: LoadTestSpec, allow_remote: bool, source: str = "") -> None:
    """Local runs send only to loopback unless allowed. Raises ManifestError."""
    urls = [spec.target.url]
    http = spec.target.readiness.http
    if http is not None and http.url:
        urls.append(http.url)
    for url in urls:
        if not allow_remote and not is_loopback(url):
            raise ManifestError(
                [
                    FieldError(
                        "spec.target.url",
                        f"{url} is not on this machine; local runs only send to loopback "
                        "(127.0.0.1, ::1, localhost) unless you pass --allow-remote",
                    )
                ],
                source,
            )


def port_open(url: str) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Progress:
    """Merged per-second progress from every worker's SURGE-PROGRESS lines."""

    intervals: dict[int, dict[str, Any]] = field(default_factory=dict)
    ok: int = 0
    errors: int = 0
    dropped: int = 0
    in_flight: dict[int, int] = field(default_factory=dict)
    sending: dict[int, bool] = field(default_factory=dict)
    """Per worker: its scheduler still had arrivals to send at its last record."""

    def add(self, rec: dict[str, Any]) -> None:
        iv = self.intervals.setdefault(
            int(rec["s"]), {"ok": 0, "err": 0, "drop": 0, "inflight": 0, "h": []}
        )
        iv["ok"] += rec.get("ok", 0)
        iv["err"] += rec.get("err", 0)
        iv["drop"] += rec.get("drop", 0)
        iv["inflight"] += rec.get("inflight", 0)
        if rec.get("h"):
            iv["h"].append(rec["h"])
        self.ok += rec.get("ok", 0)
        self.errors += rec.get("err", 0)
        self.dropped += rec.get("drop", 0)
        self.in_flight[int(rec.get("w", 0))] = int(rec.get("inflight", 0))
        self.sending[int(rec.get("w", 0))] = bool(rec.get("sending", False))

    def latest(self) -> tuple[int, int, float | None]:
        """(second, ok responses in it, its p95 in ms) for the last complete second."""
        if not self.intervals:
            return 0, 0, None
        sec = max(self.intervals)
        iv = self.intervals[sec]
        h = new_histogram()
        for text in iv["h"]:
            h.add(decode_histogram(text))
        p95 = h.get_value_at_percentile(95) / 1000 if h.get_total_count() else None
        return sec, int(iv["ok"]), p95


def elapsed_label(duration_s: float, elapsed_s: float, late: bool) -> str:
    """'4/6s'; past the plan the real time shows: '6/6s +18s late' while a worker is still
    sending its schedule, '6/6s +2s draining' while only replies are awaited."""
    if elapsed_s <= duration_s + 0.5:
        return f"{min(elapsed_s, duration_s):.0f}/{duration_s:.0f}s"
    over = elapsed_s - duration_s
    return f"{duration_s:.0f}/{duration_s:.0f}s +{over:.0f}s {'late' if late else 'draining'}"


def _progress_table(spec: LoadTestSpec, prog: Progress, elapsed: float, workers: int) -> Table:
    _, rps, p95 = prog.latest()
    t = Table(title=None, box=None, show_header=True, header_style="bold")
    for col in ("elapsed", "rps", "p95", "ok", "errors", "dropped", "in flight", "workers"):
        t.add_column(col, justify="right")
    t.add_row(
        elapsed_label(spec.load.duration_s, elapsed, any(prog.sending.values())),
        str(rps),
        "-" if p95 is None else f"{p95:.1f}ms",
        str(prog.ok),
        str(prog.errors),
        str(prog.dropped),
        str(sum(prog.in_flight.values())),
        str(workers),
    )
    return t


async def _pump(stream: asyncio.StreamReader, prog: Progress, last_lines: list[str]) -> None:
    while True:
        raw = await stream.readline()
        if not raw:
            return
        line = raw.decode(errors="replace").rstrip("\n")
        if line.startswith(PROGRESS_PREFIX):
            with contextlib.suppress(ValueError, KeyError):
                prog.add(json.loads(line[len(PROGRESS_PREFIX) :]))
        else:
            last_lines.append(line)
            del last_lines[:-3]


async def run_workers(
    plan_text: str,
    workers: int,
    spec: LoadTestSpec,
    workdir: Path,
    console: Console,
    *,
    live: bool = True,
) -> tuple[list[WorkerSummary], Progress, dict[int, str]]:
    """Spawn the worker processes, follow their progress, and collect their summaries;
    the third item names each worker that left no summary, with why."""
    plan_file = workdir / "plan.json"
    plan_file.write_text(plan_text)
    start_at = time.time() + START_DELAY_S + 0.1 * workers
    procs: list[asyncio.subprocess.Process] = []
    outs: list[list[str]] = []
    errs: list[Path] = []
    prog = Progress()
    for i in range(workers):
        err = workdir / f"worker-{i}.stderr"
        errs.append(err)
        with err.open("wb") as err_fh:
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "surge.loadgen.commands", "worker",
                    "--plan", str(plan_file), "--index", str(i),
                    "--start-at", f"{start_at:.6f}",
                    "--summary-out", str(workdir / f"summary-{i}.json"),
                    "--termination-log", str(workdir / f"termination-{i}.log"),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=err_fh,
                )
            )  # fmt: skip
        outs.append([])
    pumps = [
        asyncio.create_task(_pump(p.stdout, prog, outs[i]))
        for i, p in enumerate(procs)
        if p.stdout is not None
    ]
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()

    def on_signal() -> None:
        interrupted.set()
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_signal)
        loop.add_signal_handler(signal.SIGTERM, on_signal)
    deadline = start_at + spec.load.duration_s + spec.scenario.timeout + 30.0
    waiter = asyncio.gather(*(p.wait() for p in procs))
    try:
        with Live(  # a non-terminal console just prints the last frame
            _progress_table(spec, prog, 0.0, workers),
            console=console,
            refresh_per_second=2,
            transient=False,
            auto_refresh=live,
        ) as view:
            while not waiter.done():
                await asyncio.wait([waiter], timeout=0.5)
                view.update(_progress_table(spec, prog, time.time() - start_at, workers))
                if time.time() > deadline and not interrupted.is_set():
                    on_signal()
                    deadline = time.time() + 10.0
                    interrupted.set()
                elif time.time() > deadline:
                    for p in procs:
                        if p.returncode is None:
                            p.kill()
        await waiter
        await asyncio.gather(*pumps)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    summaries: list[WorkerSummary] = []
    problems: dict[int, str] = {}
    for i, p in enumerate(procs):
        s = _read_summary(workdir / f"summary-{i}.json", outs[i])
        if s is None:
            tail = errs[i].read_text(errors="replace").strip().splitlines()[-3:]
            problems[i] = f"worker {i} exited {p.returncode} without a summary: {' | '.join(tail)}"
        else:
            summaries.append(s)
    return summaries, prog, problems


def _read_summary(path: Path, stdout_tail: list[str]) -> WorkerSummary | None:
    return first_summary([path.read_text, lambda: "\n".join(stdout_tail)])


def results_table(results: dict[str, Any], checks: list[ThresholdResult]) -> list[Table]:
    m = results["metrics"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.1f}ms"

    t = Table(title="Results", show_header=True, header_style="bold")
    for col in ("metric", "p50", "p90", "p95", "p99", "max"):
        t.add_column(col, justify="right" if col != "metric" else "left")
    label = "latency (from intended send)" if results["model"] != "closed" else "latency"
    for fam, name in (
        ("latency", label),
        ("ttft", "ttft"),
        ("tpot", "tpot"),
        ("itl", "itl"),
        ("schedule_lag", "schedule lag"),
    ):
        if m.get(f"{fam}.p50") is None:
            continue
        t.add_row(name, *(ms(m[f"{fam}.{q}"]) for q in ("p50", "p90", "p95", "p99", "max")))
    s = Table(show_header=False, box=None)
    s.add_column("name")
    s.add_column("value", justify="right")
    thr = results["throughput"]
    req = results["requests"]
    s.add_row(
        "throughput",
        f"{(thr['achievedRps'] or 0):.1f} req/s achieved"
        + (f" of {thr['targetRps']:.1f} target" if thr["targetRps"] else ""),
    )
    s.add_row("requests", f"{req['sent']} sent, {req['ok']} ok, {req['dropped']} dropped")
    errs = results["errors"]
    by = ", ".join(f"{k} {v}" for k, v in errs["byClass"].items() if v) or "none"
    rate = errs["rate"]
    s.add_row("errors", f"{'-' if rate is None else f'{rate * 100:.2f}%'} ({by})")
    g = results["goodput"]
    if g["rps"] is not None:
        s.add_row("goodput", f"{g['rps']:.1f} req/s")
    if results["tokens"]["output"]:
        s.add_row("output tokens", f"{results['tokens']['outputRps']:.1f}/s")
    win = results["window"]
    s.add_row(
        "window",
        f"{win['measuredSeconds']:.1f}s measured (after warm-up)"
        + (
            f", {win['lateSeconds']:.1f}s past the planned {win['plannedSeconds']:.1f}s: "
            f"{req['late']} sends late, the generator fell behind"
            if req.get("late")
            else ""
        ),
    )
    tables = [t, s]
    if checks:
        v = Table(title="Thresholds", show_header=False)
        v.add_column("result")
        for r in checks:
            style = "green" if r.passed else "red"
            v.add_row(f"[{style}]{r.display}[/{style}]")
        tables.append(v)
    return tables


def execute(
    path: Path | None,
    *,
    out: Path | None = None,
    report: Path | None = None,
    start_demo_agent: bool = False,
    allow_remote: bool = False,
    console: Console | None = None,
    live: bool = True,
) -> int:
    """The body of `surge run`; returns the exit code. `report`: also render the report
    (format from the suffix: .html with plots, .json, else Markdown) with `surge report`'s
    renderer."""
    console = console or Console()
    err = Console(stderr=True)
    try:
        lt, base = load_loadtest(path)
        source = str(path) if path else "surge/defaults/demo.yaml"
        spec = resolve_dataset(lt.spec, base, source)
        check_target(spec, allow_remote, source)
        plan = build_plan(
            spec,
            name=lt.metadata.name or "local",
            namespace=lt.metadata.namespace or "local",
            run_id=spec.run_id,
        )
        plan_text = plan_json(plan)
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
        )
        with tempfile.TemporaryDirectory(prefix="surge-run-") as tmp:
            summaries, prog, problems = asyncio.run(
                run_workers(plan_text, plan.workers, spec, Path(tmp), console, live=live)
            )
    finally:
        if agent is not None:
            from surge.agent.server import stop_agent_process

            stop_agent_process(agent)
    for p in problems.values():
        err.print(f"[red]error[/red] {p}", highlight=False)
    if not summaries:
        return EXIT_FAILED
    merged = merge(summaries)
    merged.worker_count = plan.workers
    results = compute_results(merged, timeseries=build_timeseries(prog.intervals, spec.load.warmup))
    judged = judge(spec.parsed_thresholds(), results["metrics"], missing_workers=sorted(problems))
    checks, outcome = judged.thresholds, judged.verdict
    results["thresholds"] = [c.model_dump(mode="json", by_alias=True) for c in checks]
    results["verdict"] = outcome
    results["summary"]["verdict"] = outcome
    for table in results_table(results, checks):
        console.print(table)
    style = "green" if outcome == "Passed" else "red"
    console.print(f"verdict: [{style}]{outcome}[/{style}]")
    if out is not None:
        out.write_text(json.dumps(results, indent=2))
        console.print(f"results written to {out}")
    if report is not None:
        _write_report(report, results, console, err)
    return EXIT_PASSED if outcome == "Passed" else EXIT_FAILED


def _write_report(path: Path, results: dict[str, Any], console: Console, err: Console) -> None:
    from surge.results.commands import format_for
    from surge.results.plots import MissingMatplotlib
    from surge.results.report import ReportError, render_report

    try:
        text = render_report(results, list(results.get("thresholds") or []), format_for(path, None))
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
    if (hurl is not None and http_ready(hurl, 200, timeout_s=0.5)[0]) or (
        hurl is None and port_open(url)
    ):
        console.print(f"a target already answers at {url}; not starting the demo agent")
        return None
    from surge.agent.server import start_agent_process

    parts = urlsplit(url)
    port = parts.port or 80
    proc, agent_url = start_agent_process(
        ["--host", parts.hostname or "127.0.0.1", "--port", str(port), *DEMO_AGENT_ARGS],
        stderr=subprocess.DEVNULL,
    )
    console.print(f"started the demo agent (Alice) at {agent_url}")
    return proc
