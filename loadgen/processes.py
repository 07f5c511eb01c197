"""How many sending processes a worker runs (load.processesPerWorker), and merging theirs.

One Python process sends from one core. A worker with N cores runs N processes that
split its schedule exactly (surge.loadgen.schedule) and whose summaries merge exactly
(surge.loadgen.summary.merge), the same way pods' do. The count, first found wins:

1. `surge worker --processes N` (what `surge run` passes);
2. the env var SURGE_PROCESSES (the operator sets it on worker pods, `for_resources`);
3. spec.load.processesPerWorker;
4. the cores this process may use (`usable_cores`: its CPU affinity, and its cgroup's
   cpu.max quota rounded down).

Always 1 for a sweep, and never more than maxInFlight ÷ workers (open models), so every
process may hold at least one request. Pure, except `usable_cores`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from surge.api.loadtest import MAX_PROCESSES, LoadTestSpec
from surge.api.simulation import parse_quantity
from surge.loadgen.cpustat import CGROUP_ROOT, cgroup_dirs, parse_quota

PROCESSES_ENV = "SURGE_PROCESSES"


def whole_cores(cores: float) -> int:
    """Processes for `cores` CPUs: one per whole core, at least 1, at most MAX_PROCESSES.
    A fraction is not a process of its own: 1.5 cores run 1 (two would be throttled)."""
    return max(1, min(MAX_PROCESSES, math.floor(cores + 1e-9)))


def for_resources(resources: Mapping[str, Any] | None) -> int | None:
    """From a container's resources: its CPU limit, else its request; None when neither
    (the pod then counts its own cores)."""
    for part in ("limits", "requests"):
        qty = ((resources or {}).get(part) or {}).get("cpu")
        if qty is not None:
            return whole_cores(parse_quantity(qty))
    return None


def pod_processes(spec: LoadTestSpec, resources: Mapping[str, Any] | None) -> int | None:
    """The SURGE_PROCESSES value of a worker pod: the spec's count, else its CPU's; None
    when neither is known."""
    if spec.load.model == "sweep":
        return 1
    return spec.load.processes_per_worker or for_resources(resources)


def usable_cores(root: Path = CGROUP_ROOT) -> float:
    """The cores this process may run on: its CPU affinity, capped by its cgroup quota."""
    cores = float(len(os.sched_getaffinity(0)))
    try:
        groups = cgroup_dirs(Path("/proc/self/cgroup").read_text(), root)
    except OSError:
        groups = []
    for d in groups:
        quota = parse_quota(_read(d / "cpu.max"), _read(d / "cpu.cfs_quota_us"),
                            _read(d / "cpu.cfs_period_us"))  # fmt: skip
        if quota is not None:
            return min(cores, quota)
    return cores


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def resolve(
    spec: LoadTestSpec,
    *,
    workers: int,
    flag: int | None = None,
    env: Mapping[str, str] | None = None,
    cores: float | None = None,
) -> int:
    """The processes of one worker (module doc); `cores` is usable_cores() when needed.
    Raises ValueError naming SURGE_PROCESSES when it is not a whole number ≥ 1."""
    load = spec.load
    if load.model == "sweep":
        return 1
    env = os.environ if env is None else env
    count: int | None = flag
    if count is None and env.get(PROCESSES_ENV):
        text = env[PROCESSES_ENV]
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{PROCESSES_ENV}={text!r}: give a whole number of processes ≥ 1")
        count = int(text)
    if count is None:
        count = load.processes_per_worker
    if count is None:
        count = whole_cores(usable_cores() if cores is None else cores)
    count = min(count, MAX_PROCESSES)
    if load.model != "closed":
        count = min(count, max(1, load.max_in_flight // workers))
    return max(1, count)


def local_share(spec: LoadTestSpec, cores: float) -> int:
    """`surge run`: each of the spec's workers gets its share of this machine's cores."""
    if spec.load.processes_per_worker is not None:
        return spec.load.processes_per_worker
    return whole_cores(cores / spec.load.workers)


def merge_cpu(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One worker's CPU record from its processes' (docs/metrics.md, Validity): the
    window's wall time is the longest, the CPU the sum (the pod's, against its quota);
    the loop figures are the busiest process's (each loop is one thread, judged alone);
    the cgroup's counters are shared, so the largest delta stands for all."""
    if len(records) == 1:
        return dict(records[0])

    def most(key: str) -> Any:
        vals = [r[key] for r in records if r.get(key) is not None]
        return max(vals) if vals else None

    busiest = max(records, key=lambda r: float(r["loopS"]) + float(r.get("loopWaitS") or 0))
    out = dict(records[0])
    out.update(
        wallS=most("wallS"),
        processS=round(sum(float(r["processS"]) for r in records), 6),
        loopS=busiest["loopS"],
        loopWaitS=busiest.get("loopWaitS"),
        periods=most("periods"),
        throttled=most("throttled"),
        throttledS=most("throttledS"),
        quotaCores=most("quotaCores"),
    )
    return out
