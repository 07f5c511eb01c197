"""A worker's sending processes: P forked children, one event loop each, one summary.

`surge worker` with P > 1 (surge.loadgen.processes) forks P children after the start
barrier, each running the engine on `plan.for_process(p, P)` from the same --start-at
timeline. Each child writes its SURGE-PROGRESS lines (with "p": its process) and, last,
its SURGE-SUMMARY line to its own pipe; the parent forwards whole progress lines to its
stdout (so lines of two children never interleave), forwards SIGTERM/SIGINT to the
children, and merges their summaries exactly (summary.merge, as pods' are; the CPU
records into one per worker, processes.merge_cpu). A child that leaves no summary fails
the worker: a merge without its share would under-count the worker's slice.

Prometheus (--metrics-port): the children write prometheus_client's multiprocess files
under a temporary directory (PROMETHEUS_MULTIPROC_DIR, set before they import it) and
the parent serves their sum.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

from surge.loadgen.plan import WorkerPlan
from surge.loadgen.processes import merge_cpu
from surge.loadgen.summary import (
    PROGRESS_PREFIX,
    SUMMARY_PREFIX,
    WorkerSummary,
    merge,
    parse_summary,
    summary_line,
)

START_LEAD_S = 0.5
"""Without a --start-at, the children start this long after the fork, together."""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

Runner = Callable[[WorkerPlan, float, TextIO | None, bool], WorkerSummary]
"""Runs one process's engine: (plan, start_at epoch, progress output, prom) -> summary."""


class ProcessesFailed(RuntimeError):
    """A child left no summary (the message names it and its exit status)."""


def prepare_prometheus() -> str:
    """The children's multiprocess directory; call before prometheus_client is imported."""
    path = tempfile.mkdtemp(prefix="surge-prom-")
    os.environ[MULTIPROC_ENV] = path
    atexit.register(shutil.rmtree, path, True)  # the parent's exit; children use os._exit
    return path


def serve_prometheus(port: int, path: str) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    start_http_server(port, registry=registry)


def _child(
    run: Runner, plan: WorkerPlan, start_at: float, w: int, progress: bool, prom: bool
) -> None:
    """The child's whole life: never returns."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the engine installs its own
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with os.fdopen(w, "w") as out:
            summary = run(plan, start_at, out if progress else None, prom)
            out.write(summary_line(summary) + "\n")
            out.flush()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _pump(fd: int, sink: TextIO | None, lock: threading.Lock, found: list[str]) -> None:
    """Forward one child's progress lines whole; keep its summary line."""
    with os.fdopen(fd, "r") as src:
        for line in src:
            if line.startswith(SUMMARY_PREFIX):
                found.append(line)
            elif line.startswith(PROGRESS_PREFIX) and sink is not None:
                with lock:
                    sink.write(line)
                    sink.flush()


def run_processes(
    plan: WorkerPlan,
    processes: int,
    start_at: float | None,
    run: Runner,
    *,
    progress: TextIO | None,
    prom: bool = False,
    on_started: Callable[[], None] | None = None,
) -> WorkerSummary:
    """Fork `processes` children for worker plan.index and return the merged summary;
    `on_started` runs in this process once they are forked (the metrics server: no thread
    is forked along). Raises ProcessesFailed when one left none."""
    start = time.time() + START_LEAD_S if start_at is None else start_at
    sys.stdout.flush()
    sys.stderr.flush()
    pids: list[int] = []
    pumps: list[threading.Thread] = []
    found: list[list[str]] = [[] for _ in range(processes)]
    lock = threading.Lock()
    for p in range(processes):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child(run, plan.for_process(p, processes), start, w, progress is not None, prom)
        os.close(w)
        pids.append(pid)
        pump = threading.Thread(target=_pump, args=(r, progress, lock, found[p]), daemon=True)
        pump.start()
        pumps.append(pump)

    if on_started is not None:
        on_started()

    def forward(signum: int, _frame: Any) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        statuses = [os.waitpid(pid, 0)[1] for pid in pids]
        for pump in pumps:
            pump.join()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    summaries: list[WorkerSummary] = []
    for p, (lines, status) in enumerate(zip(found, statuses, strict=True)):
        summary = parse_summary(lines[-1]) if lines else None
        if summary is None:
            raise ProcessesFailed(
                f"process {p} of worker {plan.index} left no summary "
                f"(exit status {os.waitstatus_to_exitcode(status)}); see its stderr above"
            )
        summaries.append(summary)
    return merge_processes(plan, summaries)


def merge_processes(plan: WorkerPlan, summaries: list[WorkerSummary]) -> WorkerSummary:
    """One worker's summary from its processes': the exact merge, the worker's own index,
    one CPU record (processes.merge_cpu)."""
    out = merge(summaries)
    out.workers = [plan.index]
    cpu = [r for s in summaries for r in s.cpu]
    out.cpu = [merge_cpu(cpu)] if cpu else []
    return out
