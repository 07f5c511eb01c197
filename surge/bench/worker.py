"""One Surge worker as the bench runs it: the same `surge worker` command line and the
same supervision as `surge run` (surge.loadgen.supervisor), pinned to the client core,
serving Prometheus /metrics (scraped once mid-run), its CPU time sampled."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surge.api.loadtest import LoadTestSpec
from surge.bench.cpu import CLIENT_CORE, CpuSampler, pin_prefix
from surge.loadgen.plan import build_plan
from surge.loadgen.summary import WorkerSummary
from surge.loadgen.supervisor import Hooks, supervise

START_DELAY_S = 2.5
"""Room for the worker's imports before the load starts."""
TICK_S = 0.1
"""How often the supervisor calls back: the mid-run scrape lands within this of its time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> dict[str, float]:
    """Sums of each sample name on a Prometheus text page."""
    sums: dict[str, float] = {}
    with urllib.request.urlopen(url, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.split("{")[0].split(" ")[0], line.rsplit(" ", 1)[1]
                sums[name] = sums.get(name, 0.0) + float(value)
    return sums


@dataclass
class WorkerRun:
    summary: WorkerSummary
    sampler: CpuSampler
    start_at: float
    scraped: dict[str, float] = field(default_factory=dict)


def run_worker(
    tmp: Path,
    name: str,
    spec: dict[str, Any],
    *,
    scrape_at_s: float | None = None,
    processes: int = 1,
) -> WorkerRun:
    """One `surge worker` process on the client core (with several sending `processes`: on
    every core), progress on, /metrics served and scraped `scrape_at_s` after the load
    starts (when given). Raises RuntimeError when the worker fails. Its CPU sampler sees
    the worker's own process: with processes, not the children's CPU."""
    try:
        return _run_once(tmp, name, spec, scrape_at_s, processes)
    except RuntimeError as exc:
        # free_port() races every other process on the machine for the /metrics port:
        # a port taken in between is the harness's miss, not the worker's: once more.
        if "Address already in use" not in str(exc):
            raise
        return _run_once(tmp, f"{name}-retry", spec, scrape_at_s, processes)


def _run_once(
    tmp: Path, name: str, spec: dict[str, Any], scrape_at_s: float | None, processes: int
) -> WorkerRun:
    """run_worker's one try."""
    plan = build_plan(LoadTestSpec.model_validate(spec), name=name, namespace="bench", run_id="1")
    workdir = tmp / name
    workdir.mkdir()
    port = free_port()
    samplers: list[CpuSampler] = []
    scraped: dict[str, float] = {}

    def on_tick(elapsed_s: float) -> None:
        if scrape_at_s is not None and not scraped and elapsed_s >= scrape_at_s:
            scraped.update(scrape(f"http://127.0.0.1:{port}/metrics"))

    hooks = Hooks(
        prefix=pin_prefix(CLIENT_CORE) if processes == 1 else (),
        extra_args=lambda index: ("--metrics-port", str(port), "--processes", str(processes)),
        start_delay_s=START_DELAY_S,
        on_spawn=lambda index, pid: samplers.append(CpuSampler(pid)),
        on_tick=on_tick,
        tick_s=TICK_S,
    )
    done = asyncio.run(supervise(plan, workdir, hooks))
    if done.interrupted:
        raise KeyboardInterrupt
    if done.returncodes != [0] or not done.summaries:
        why = "".join(f": {p}" for p in done.problems.values())
        raise RuntimeError(f"surge worker {name} exited {done.returncodes[0]}{why}")
    return WorkerRun(done.summaries[0], samplers[0], done.start_at, scraped)
