"""The bench's cores and CPU accounting: which core each process is pinned to, and how
many CPU seconds a client process used in a wall-clock window (/proc/PID/stat)."""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CLIENT_CORE, TARGET_CORE = 0, 1


def pin_prefix(core: int) -> list[str]:
    """`taskset -c CORE`, to put before a command line; nothing when taskset is missing."""
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


class CpuSampler:
    """Polls a process's user+system CPU seconds (/proc/PID/stat) with wall-clock stamps."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.pid = pid
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []
        self._tick = os.sysconf("SC_CLK_TCK")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        path = Path(f"/proc/{self.pid}/stat")
        while True:
            try:
                fields = path.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                return
            cpu = (int(fields[11]) + int(fields[12])) / self._tick  # utime, stime
            self.samples.append((time.time(), cpu))
            time.sleep(self.every_s)

    def cpu_between(self, a: float, b: float) -> float:
        """CPU seconds used between wall-clock instants a and b (linear between samples)."""
        return interp(self.samples, b) - interp(self.samples, a)


def interp(samples: list[tuple[float, float]], t: float) -> float:
    """The value at time t of a (time, value) series, linear between samples."""
    if not samples:
        return 0.0
    if t <= samples[0][0]:
        return samples[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(samples):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.0)
    return samples[-1][1]


@dataclass
class Rate:
    """Requests a client sent in a window, with the window's wall and CPU seconds."""

    requests: float
    wall_s: float
    cpu_s: float
    lag_p99_s: float | None = None
    """Surge's schedule lag p99 over the run (None: a peer, not measured here)."""

    @property
    def per_wall_s(self) -> float:
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def per_cpu_s(self) -> float:
        return self.requests / self.cpu_s if self.cpu_s > 0 else 0.0


SETTLE_MAX_S, TIME_WAIT_MAX = 65.0, 2_000
"""Before each measured run, wait (at most SETTLE_MAX_S: Linux holds TIME_WAIT 60 s) until at most
TIME_WAIT_MAX sockets are in TIME_WAIT: a tool that collapsed (vegeta past its rate opens
a connection per new worker, tens of thousands) leaves the loopback's ephemeral ports
used up, and the next step would measure that instead of the tool."""


def time_wait_sockets() -> int:
    """Sockets in TIME_WAIT (state 06 in /proc/net/tcp and tcp6); 0 where unreadable."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        n += sum(1 for ln in lines if ln.split()[3:4] == ["06"])
    return n


def settle() -> None:
    deadline = time.monotonic() + SETTLE_MAX_S
    while time_wait_sockets() > TIME_WAIT_MAX and time.monotonic() < deadline:
        time.sleep(1.0)
