"""Worker processes on this machine, for `surge run` and `make bench` alike.

`worker_argv` is the one `surge worker` command line; `supervise` runs a plan's workers
under it: spawns them with a shared --start-at, hands their SURGE-PROGRESS records to
the caller, forwards SIGINT/SIGTERM to them, stops them at a deadline, and collects
each one's summary (first_summary: its --summary-out file, else its stdout).
Callers shape the run through `Hooks`: an argv prefix (the bench's `taskset -c 0`),
extra worker flags (a metrics port), and callbacks (live progress, CPU samplers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surge.loadgen.plan import WorkerPlan, plan_json
from surge.loadgen.summary import PROGRESS_PREFIX, WorkerSummary, first_summary

WORKER_MODULE = "surge.loadgen.commands"
"""Run as `python -m`, so workers use this interpreter and need no `surge` on PATH."""
START_DELAY_S = 2.0
"""Workers start this long (plus 0.1 s a worker) after spawning: time for N interpreters
to import and connect."""
DEADLINE_GRACE_S = 30.0
"""Workers still running this long after the planned end plus one request timeout are
asked to stop (SIGTERM)..."""
KILL_AFTER_S = 10.0
"""...and killed this long after being asked (by the deadline or a signal)."""
LINE_LIMIT = 1 << 24
"""Longest stdout line read whole: the final SURGE-SUMMARY line carries histograms and,
for a long run, long per-second series; asyncio's default limit is 64 KiB."""
TAIL_LINES = 3
"""Non-progress stdout lines kept per worker (the summary line is the last)."""


@dataclass(frozen=True)
class WorkerFiles:
    """Where worker `index` of a run leaves its outputs, under the run's work directory."""

    workdir: Path
    index: int

    @property
    def summary(self) -> Path:
        return self.workdir / f"summary-{self.index}.json"

    @property
    def termination_log(self) -> Path:
        return self.workdir / f"termination-{self.index}.log"

    @property
    def stderr(self) -> Path:
        return self.workdir / f"worker-{self.index}.stderr"


def worker_argv(
    plan_file: Path,
    files: WorkerFiles,
    start_at: float,
    *,
    prefix: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> list[str]:
    """The `surge worker` command line for worker `files.index` of the plan in
    `plan_file`, starting at the epoch time `start_at`. `prefix` wraps it (the bench's
    `taskset -c N`); `extra` adds worker flags (the bench's `--metrics-port N`)."""
    return [
        *prefix,
        sys.executable, "-m", WORKER_MODULE, "worker",
        "--plan", str(plan_file),
        "--index", str(files.index),
        "--start-at", f"{start_at:.6f}",
        "--summary-out", str(files.summary),
        "--termination-log", str(files.termination_log),
        *extra,
    ]  # fmt: skip


def _no_flags(index: int) -> Sequence[str]:
    return ()


@dataclass
class Hooks:
    """How a caller shapes and follows its workers; every field is optional."""

    prefix: Sequence[str] = ()
    """Wraps every worker's command line (e.g. `taskset -c 0`)."""
    extra_args: Callable[[int], Sequence[str]] = field(default=_no_flags)
    """Extra `surge worker` flags for worker i (e.g. its own --metrics-port)."""
    start_delay_s: float | None = None
    """Seconds from spawning to --start-at; default START_DELAY_S + 0.1 s a worker."""
    on_spawn: Callable[[int, int], None] | None = None
    """Called with (index, pid) as soon as a worker is spawned (e.g. a CPU sampler)."""
    on_progress: Callable[[dict[str, Any]], None] | None = None
    """Called with each decoded SURGE-PROGRESS record, from any worker."""
    on_tick: Callable[[float], None] | None = None
    """Called every tick_s while workers run, with the seconds since --start-at."""
    tick_s: float = 0.5


@dataclass
class Supervised:
    """What a run's workers left behind."""

    start_at: float
    """The shared --start-at (epoch seconds)."""
    argvs: list[list[str]]
    returncodes: list[int | None]
    summaries: list[WorkerSummary]
    """In index order; a worker that left none is in `problems` instead."""
    problems: dict[int, str]
    """Worker index -> why it left no summary (its exit code, its last stderr lines)."""
    interrupted: bool = False
    """SIGINT or SIGTERM reached this process while the workers ran (they were stopped)."""
    timed_out: bool = False
    """The workers ran past the deadline and were stopped."""


async def supervise(plan: WorkerPlan, workdir: Path, hooks: Hooks | None = None) -> Supervised:
    """Run `plan.workers` worker processes for `plan` (its plan.json, stderr, summary and
    termination-log files go in `workdir`) and collect their summaries."""
    hooks = hooks or Hooks()
    plan_file = workdir / "plan.json"
    plan_file.write_text(plan_json(plan))
    files = [WorkerFiles(workdir, i) for i in range(plan.workers)]
    delay = hooks.start_delay_s
    start_at = time.time() + (START_DELAY_S + 0.1 * len(files) if delay is None else delay)
    argvs = [
        worker_argv(plan_file, f, start_at, prefix=hooks.prefix, extra=hooks.extra_args(f.index))
        for f in files
    ]
    procs: list[asyncio.subprocess.Process] = []
    tails: list[list[str]] = [[] for _ in files]
    pumps: list[asyncio.Task[None]] = []
    load = plan.spec.load
    # Every step of a sweep may wait up to a request timeout for its last replies.
    drains = load.sweep.max_steps if load.sweep is not None else 1
    deadline = start_at + load.duration_s + plan.spec.scenario.timeout * drains
    deadline += DEADLINE_GRACE_S
    stopping = interrupted = timed_out = False

    def stop() -> None:
        nonlocal stopping, deadline
        if not stopping:
            stopping, deadline = True, time.time() + KILL_AFTER_S
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)

    def on_signal() -> None:
        nonlocal interrupted
        interrupted = True
        stop()

    loop = asyncio.get_running_loop()
    try:
        for f, argv in zip(files, argvs, strict=True):
            with f.stderr.open("wb") as err:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdout=asyncio.subprocess.PIPE, stderr=err, limit=LINE_LIMIT
                )
            procs.append(proc)
            if proc.stdout is not None:
                pump = _pump(proc.stdout, hooks.on_progress, tails[f.index])
                pumps.append(asyncio.create_task(pump))
            if hooks.on_spawn is not None:
                hooks.on_spawn(f.index, proc.pid)
        # Not on the main thread (or not on Unix) there are no handlers: the caller's
        # own interruption then ends the run, and the finally below kills the workers.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, on_signal)
            loop.add_signal_handler(signal.SIGTERM, on_signal)
        waiter = asyncio.gather(*(p.wait() for p in procs))
        while not waiter.done():
            await asyncio.wait([waiter], timeout=hooks.tick_s)
            if hooks.on_tick is not None:
                hooks.on_tick(time.time() - start_at)
            if time.time() > deadline:
                if stopping:
                    for p in procs:
                        if p.returncode is None:
                            with contextlib.suppress(ProcessLookupError):
                                p.kill()
                else:
                    timed_out = True
                    stop()
        await asyncio.gather(*pumps)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        # Only left running when a callback raised or the caller was cancelled.
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                await p.wait()
        for task in pumps:
            task.cancel()
    summaries: list[WorkerSummary] = []
    problems: dict[int, str] = {}
    for f, p in zip(files, procs, strict=True):
        s = _read_summary(f, tails[f.index])
        if s is None:
            tail = f.stderr.read_text(errors="replace").strip().splitlines()[-TAIL_LINES:]
            problems[f.index] = (
                f"worker {f.index} exited {p.returncode} without a summary: {' | '.join(tail)}"
            )
        else:
            summaries.append(s)
    return Supervised(
        start_at=start_at,
        argvs=argvs,
        returncodes=[p.returncode for p in procs],
        summaries=summaries,
        problems=problems,
        interrupted=interrupted,
        timed_out=timed_out,
    )


def _read_summary(files: WorkerFiles, stdout_tail: list[str]) -> WorkerSummary | None:
    return first_summary([files.summary.read_text, lambda: "\n".join(stdout_tail)])


async def _pump(
    stream: asyncio.StreamReader,
    on_progress: Callable[[dict[str, Any]], None] | None,
    tail: list[str],
) -> None:
    """Hand each SURGE-PROGRESS record to on_progress; keep the last other lines."""
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line past LINE_LIMIT; the summary file still holds it
            continue
        if not raw:
            return
        line = raw.decode(errors="replace").rstrip("\n")
        if line.startswith(PROGRESS_PREFIX):
            if on_progress is not None:
                # A malformed record is skipped: progress is a view, not a result.
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    on_progress(json.loads(line[len(PROGRESS_PREFIX) :]))
        else:
            tail.append(line)
            del tail[:-TAIL_LINES]
