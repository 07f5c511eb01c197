"""Was the worker short of CPU in its window? (docs/metrics.md, "Validity")

A worker samples its CPU state at the window's start and at the end of its sending
(`CpuProbe.sample`, the only part that reads files); `window_record` turns the two
samples into the summary's record and `assess` (pure) says whether the worker was
CPU-bound:

- its event loop thread was running or waiting for a core (runnable, not running:
  /proc/thread-self/schedstat) for LOOP_BOUND of the window: one thread cannot do more;
- it used QUOTA_BOUND of its cgroup CPU limit (process CPU ÷ wall ÷ quota cores);
- its cgroup was throttled in THROTTLED_BOUND of the scheduler periods it ran in
  (cpu.stat nr_throttled ÷ nr_periods, cgroup v2 or v1).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOP_BOUND = 0.9
"""(loop thread CPU + run-queue wait) ÷ wall at or above this: the loop was saturated."""
QUOTA_BOUND = 0.9
"""Process CPU ÷ wall ÷ quota cores at or above this: the CPU limit was the ceiling."""
THROTTLED_BOUND = 0.25
"""nr_throttled ÷ nr_periods at or above this: the limit stopped the worker in a quarter
of its periods, each stop a stall of up to the rest of the period (100 ms by default)."""
MIN_PERIODS = 10
"""Fewer scheduler periods than this judge nothing (a window shorter than ~1 s)."""
MIN_WALL_S = 0.5
"""A window shorter than this is not judged: one scheduling hiccup would decide it."""
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU counters at one instant (monotonic wall clock)."""

    wall_s: float
    process_s: float
    loop_s: float
    loop_wait_s: float | None = None
    periods: int | None = None
    throttled: int | None = None
    throttled_s: float | None = None
    group: str | None = None
    """The cgroup the throttling counters are of."""
    quota_cores: float | None = None


def parse_cpu_stat(text: str) -> dict[str, int]:
    """A cgroup cpu.stat ("key value" lines) as a dict; malformed lines are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def throttling(stat: Mapping[str, int]) -> tuple[int, int, float] | None:
    """(nr_periods, nr_throttled, throttled seconds) from a parsed cpu.stat: v2 has
    throttled_usec, v1 throttled_time (ns). None when the group has no CPU controller."""
    if "nr_periods" not in stat or "nr_throttled" not in stat:
        return None
    if "throttled_usec" in stat:
        secs = stat["throttled_usec"] / 1e6
    else:
        secs = stat.get("throttled_time", 0) / 1e9
    return stat["nr_periods"], stat["nr_throttled"], secs


def parse_quota(cpu_max: str | None, quota_us: str | None, period_us: str | None) -> float | None:
    """The CPU limit in cores from v2 cpu.max ("50000 100000", "max 100000") or v1
    cpu.cfs_quota_us / cpu.cfs_period_us (-1: none). None when unlimited or unknown."""
    try:
        if cpu_max is not None:
            quota, period = cpu_max.split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if quota_us is not None and period_us is not None:
            q = int(quota_us)
            return None if q < 0 else q / int(period_us)
    except ValueError:
        return None
    return None


def parse_schedstat(text: str) -> tuple[float, float] | None:
    """(CPU seconds, run-queue wait seconds) from /proc/.../schedstat ("ns ns slices")."""
    parts = text.split()
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]) / 1e9, int(parts[1]) / 1e9


def cgroup_dirs(proc_cgroup: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Where this process's cpu.stat may be, best first, from /proc/self/cgroup: the v1
    cpu controller's group, then the v2 group; each also at its mount's root (a
    container without its own cgroup namespace sees the host's path, not its own)."""
    v1: list[Path] = []
    v2: list[Path] = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, controllers, path = parts
        rel = path.lstrip("/")
        if hier == "0" and not controllers:
            v2 += [root / rel, root, root / "unified" / rel]
        elif "cpu" in controllers.split(","):
            for mount in (controllers, "cpu", "cpu,cpuacct"):
                v1 += [root / mount / rel, root / mount]
    return list(dict.fromkeys(v1 + v2))


def window_record(index: int, a: CpuSample, b: CpuSample) -> dict[str, Any]:
    """The summary's record of worker `index` for the window between samples a and b.
    Counters of two different cgroups (moved in between) are no delta: None."""
    same = a.group == b.group

    def delta(x: float | None, y: float | None) -> float | None:
        return None if x is None or y is None or not same else round(y - x, 6)

    return {
        "worker": index,
        "wallS": round(b.wall_s - a.wall_s, 6),
        "processS": round(b.process_s - a.process_s, 6),
        "loopS": round(b.loop_s - a.loop_s, 6),
        "loopWaitS": delta(a.loop_wait_s, b.loop_wait_s),
        "periods": delta(a.periods, b.periods),
        "throttled": delta(a.throttled, b.throttled),
        "throttledS": delta(a.throttled_s, b.throttled_s),
        "quotaCores": b.quota_cores if same else None,
    }


def assess(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The record with its shares (loopShare, quotaShare, throttledShare; None when not
    known), `saturated` (why the worker was CPU-bound, or None) and `demand`: the share
    of its capacity it used or wanted, the largest of its loop and quota shares, and at
    least 1 when it was throttled (it wanted more than its limit). Pure."""
    wall = float(rec.get("wallS") or 0.0)
    out: dict[str, Any] = {**rec, "loopShare": None, "quotaShare": None, "throttledShare": None}
    out["saturated"], out["demand"] = None, None
    if wall < MIN_WALL_S:
        return out
    loop = float(rec.get("loopS") or 0.0) + float(rec.get("loopWaitS") or 0.0)
    out["loopShare"] = loop / wall
    quota = rec.get("quotaCores")
    if quota:
        out["quotaShare"] = float(rec.get("processS") or 0.0) / wall / quota
    periods, throttled = rec.get("periods"), rec.get("throttled")
    if periods and throttled is not None and periods >= MIN_PERIODS:
        out["throttledShare"] = throttled / periods
    why: list[str] = []
    if out["loopShare"] >= LOOP_BOUND:
        why.append(f"its event loop was busy or waiting for a core {out['loopShare']:.0%}")
    if out["quotaShare"] is not None and out["quotaShare"] >= QUOTA_BOUND:
        why.append(f"it used {out['quotaShare']:.0%} of its {quota:g}-core CPU limit")
    if out["throttledShare"] is not None and out["throttledShare"] >= THROTTLED_BOUND:
        secs = float(rec.get("throttledS") or 0.0)
        why.append(
            f"its cgroup was CPU-throttled in {throttled} of {periods} periods ({secs:.1f}s)"
        )
    if why:
        out["saturated"] = f"worker {rec.get('worker')} was short of CPU: " + ", ".join(why)
    shares = [s for s in (out["loopShare"], out["quotaShare"]) if s is not None]
    throttled_out = (out["throttledShare"] or 0.0) >= THROTTLED_BOUND
    out["demand"] = max([*shares, 1.0 if throttled_out else 0.0])
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


class CpuProbe:
    """Reads this process's CPU counters: the process, the calling (event loop) thread,
    its cgroup's cpu.stat and CPU limit. Missing files leave their fields None."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = root
        self.thread = threading.get_native_id()

    def group(self) -> Path | None:
        """The cgroup whose cpu.stat counts throttling, looked up at each sample: a
        process may be moved to another group while it runs."""
        for d in cgroup_dirs(_read(Path("/proc/self/cgroup")) or "", self.root):
            stat = _read(d / "cpu.stat")
            if stat is not None and throttling(parse_cpu_stat(stat)) is not None:
                return d
        return None

    def sample(self) -> CpuSample:
        """Call it from the event loop's thread."""
        sched = parse_schedstat(_read(Path(f"/proc/self/task/{self.thread}/schedstat")) or "")
        group = self.group()
        thr, quota = None, None
        if group is not None:
            thr = throttling(parse_cpu_stat(_read(group / "cpu.stat") or ""))
            quota = parse_quota(
                _read(group / "cpu.max"),
                _read(group / "cpu.cfs_quota_us"),
                _read(group / "cpu.cfs_period_us"),
            )
        t = os.times()
        return CpuSample(
            wall_s=time.monotonic(),
            process_s=t.user + t.system,
            loop_s=sched[0] if sched else time.thread_time(),
            loop_wait_s=sched[1] if sched else None,
            periods=thr[0] if thr else None,
            throttled=thr[1] if thr else None,
            throttled_s=thr[2] if thr else None,
            group=None if group is None else str(group),
            quota_cores=quota,
        )
