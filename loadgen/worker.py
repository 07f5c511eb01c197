"""`surge worker`: run one worker's share of a plan and leave its summary behind.

Outputs, all the same summary (surge.loadgen.summary):
- stdout: progress lines ("SURGE-PROGRESS {...}", one per second) and, last, the
  summary line ("SURGE-SUMMARY {...}");
- --summary-out FILE: the summary JSON;
- the termination log (--termination-log, default /dev/termination-log when it exists
  and is writable): the compact form, or a marker when it does not fit 4 KiB.

SIGTERM/SIGINT stop the load, give in-flight requests a short grace and flush the
summary (marked interrupted). Several sending processes (--processes, SURGE_PROCESSES,
load.processesPerWorker, else its cores: surge.loadgen.processes) run as forked children
that share this worker's slice (surge.loadgen.multiproc). Exit codes: 0 done, 1 a
process left no summary, 2 bad plan or input, 3 barrier timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Coroutine
from functools import partial
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from surge.loadgen.barrier import (
    PLAN_KEY,
    START_AT_KEY,
    BarrierTimeout,
    ConfigMapSource,
    wait_for_start_at,
)
from surge.loadgen.engine import Engine
from surge.loadgen.multiproc import (
    ProcessesFailed,
    prepare_prometheus,
    run_processes,
    serve_prometheus,
)
from surge.loadgen.pinned import pin
from surge.loadgen.plan import (
    PLAN_SHA256_ENV,
    WorkerPlan,
    check_plan_digest,
    outside_networks,
    parse_plan,
)
from surge.loadgen.processes import resolve
from surge.loadgen.summary import WorkerSummary, summary_line, termination_message
from surge.loadgen.sweep_engine import SweepEngine

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BARRIER = 0, 1, 2, 3


def default_termination_log() -> Path | None:
    p = DEFAULT_TERMINATION_LOG
    return p if p.exists() and os.access(p, os.W_OK) else None


def worker_index(flag: int | None) -> int:
    """--index, else JOB_COMPLETION_INDEX (indexed Jobs), else 0."""
    if flag is not None:
        return flag
    return int(os.environ.get("JOB_COMPLETION_INDEX", "0"))


async def run_engine(
    engine: Engine | SweepEngine, start_at_epoch: float | None, *, handle_signals: bool = True
) -> WorkerSummary:
    """Run the engine on the timeline that starts at start_at_epoch (wall clock), or now;
    signals stop it. A worker that learns the start instant after it passed keeps that
    timeline anyway: its first arrivals are then due in the past and leave at once, their
    lag recorded, so every worker's summary shares one timeline and merges exactly."""
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, engine.stop)
    t0 = None
    if start_at_epoch is not None:
        t0 = time.monotonic() + (start_at_epoch - time.time())
    return await engine.run(t0)


def run_event_loop(coro: Coroutine[Any, Any, WorkerSummary]) -> WorkerSummary:
    """Run on uvloop when it is installed (about 1.3× the requests per CPU second of the
    default loop in `make bench`), else on asyncio's own loop. SURGE_UVLOOP=0 forces
    the default loop."""
    if os.environ.get("SURGE_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def write_outputs(
    summary: WorkerSummary,
    *,
    stdout: TextIO,
    summary_out: Path | None,
    termination_log: Path | None,
) -> None:
    if summary_out is not None:
        summary_out.parent.mkdir(parents=True, exist_ok=True)
        summary_out.write_text(json.dumps(summary.to_json()))
    if termination_log is not None:
        try:
            termination_log.write_text(termination_message(summary))
        except OSError as exc:
            print(f"surge worker: cannot write {termination_log}: {exc}", file=sys.stderr)
    stdout.write(summary_line(summary) + "\n")
    stdout.flush()


def run_one(
    plan: WorkerPlan, start_at: float | None, progress: TextIO | None, prom: bool
) -> WorkerSummary:
    """One sending process: its engine on its own event loop (multiproc.Runner)."""
    return run_event_loop(run_engine(Engine(plan, progress=progress, prom=prom), start_at))


def check_target_addresses(plan: WorkerPlan) -> None:
    """Resolve the target where the worker runs and refuse addresses outside the policy's
    networks: a name that resolved inside them at admission may resolve elsewhere now."""
    if not plan.allowed_networks:
        return
    host = urlsplit(plan.spec.target.url).hostname or ""
    try:
        found = sorted({str(a[4][0]) for a in socket.getaddrinfo(host, None)})
    except OSError as exc:
        raise ValueError(f"target host {host!r} does not resolve here: {exc}") from None
    outside = outside_networks(found, plan.allowed_networks)
    if outside:
        raise ValueError(
            f"target host {host!r} resolves to {', '.join(outside)} here, outside the "
            f"cluster policy's networks ({', '.join(plan.allowed_networks)}); not sending"
        )
    pin(host, found)  # every connection goes to what was checked: no second lookup


def main(
    *,
    plan_file: Path | None,
    configmap: str | None,
    index: int | None,
    start_at: float | None,
    summary_out: Path | None,
    termination_log: Path | None,
    metrics_port: int,
    progress: bool,
    processes: int | None = None,
) -> int:
    """The worker command's body; returns the exit code."""
    err = sys.stderr
    idx = worker_index(index)
    try:
        if (plan_file is None) == (configmap is None):
            raise ValueError("give exactly one of --plan FILE or --configmap NAMESPACE/NAME")
        source = None
        if plan_file is not None:
            text = plan_file.read_text()
        else:
            assert configmap is not None
            source = ConfigMapSource.parse(configmap)
            got = source.get(PLAN_KEY)
            if got is None:
                raise ValueError(f"ConfigMap {configmap} has no key {PLAN_KEY}")
            text = got
        check_plan_digest(text, os.environ.get(PLAN_SHA256_ENV))
        plan: WorkerPlan = parse_plan(text).for_index(idx)
        check_target_addresses(plan)
        out = sys.stdout if progress else None
        count = resolve(plan.spec, workers=plan.workers, flag=processes)
        # Several processes: each builds its own engine after the fork; this one only
        # checks that the plan builds (without Prometheus, not yet imported: below).
        prom = metrics_port > 0 and count == 1
        engine: Engine | SweepEngine = (
            SweepEngine(plan, progress=out, prom=prom)
            if plan.spec.load.model == "sweep"
            else Engine(plan.for_process(0, count), progress=out, prom=prom)
        )
    except Exception as exc:
        print(f"surge worker: {exc}", file=err)
        return EXIT_BAD_INPUT
    if start_at is None and source is not None:
        src = source
        try:
            start_at = wait_for_start_at(
                lambda: src.get(START_AT_KEY), timeout_s=plan.barrier_timeout_s
            )
        except (BarrierTimeout, ValueError) as exc:
            print(f"surge worker: start barrier: {exc}", file=err)
            return EXIT_BARRIER
    if count > 1:
        prom_dir = prepare_prometheus() if metrics_port > 0 else None
        serve = None if prom_dir is None else partial(serve_prometheus, metrics_port, prom_dir)
        try:
            summary = run_processes(
                plan,
                count,
                start_at,
                run_one,
                progress=out,
                prom=prom_dir is not None,
                on_started=serve,
            )
        except ProcessesFailed as exc:
            print(f"surge worker: {exc}", file=err)
            return EXIT_FAILED
    else:
        if metrics_port > 0 and engine.prom is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, registry=engine.prom.registry)
        summary = run_event_loop(run_engine(engine, start_at))
    write_outputs(
        summary,
        stdout=sys.stdout,
        summary_out=summary_out,
        termination_log=termination_log if termination_log else default_termination_log(),
    )
    return EXIT_OK
