"""The other load generators the bench measures Surge against, on the same core and
target: Locust FastHttpUser (its request count sampled from inside its own process;
as fast as it goes, or at a fixed rate with constant_throughput) and vegeta (open loop
at a fixed rate, surge.bench.rate)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from surge.bench.cpu import CLIENT_CORE, CpuSampler, Rate, interp, pin_prefix


def go_tool(name: str, env: str) -> str | None:
    """A Go peer's binary: $`env`, else .venv/gobin/`name` beside this interpreter (where
    `make bench` builds it), else PATH; None when none is executable."""
    here = Path(sys.executable).parent.parent / "gobin" / name
    for cand in (os.environ.get(env), str(here), shutil.which(name)):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


LOCUSTFILE = """
import time
import gevent
from locust import constant, constant_throughput, events, task
from locust.contrib.fasthttp import FastHttpUser

LOG = {log!r}

@events.test_start.add_listener
def _start(environment, **kw):
    def sample():
        with open(LOG, "w") as f:
            while True:
                f.write(f"{{time.time()}} {{environment.stats.total.num_requests}}\\n")
                f.flush()
                gevent.sleep(0.25)
    gevent.spawn(sample)

class U(FastHttpUser):
    wait_time = {wait}
    @task
    def t(self):
        self.client.get("/")
"""


def locust_speed(
    tmp: Path, url: str, *, users: int, secs: int, rate: float | None = None
) -> Rate | None:
    """Locust's steady-state rate (after the same 1 s warm-up as the worker), as fast as
    it goes or at `rate` req/s in all (each user at rate/users, constant_throughput);
    None when Locust is not installed or took no samples. https certificates are not
    verified (FastHttpUser's default)."""
    exe = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    if not Path(exe).exists():
        return None
    log = tmp / "locust.samples"
    wait = "constant(0)" if rate is None else f"constant_throughput({rate / users!r})"
    (tmp / "lf.py").write_text(LOCUSTFILE.format(log=str(log), wait=wait))
    argv = [exe, "-f", str(tmp / "lf.py"), "--headless", "-u", str(users),
            "-r", str(users), "-t", f"{secs}s", "--host", url,
            "--only-summary", "--loglevel", "ERROR"]  # fmt: skip
    proc = subprocess.Popen(
        [*pin_prefix(CLIENT_CORE), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    sampler = CpuSampler(proc.pid)
    proc.wait(timeout=secs + 60)
    rows = [tuple(map(float, ln.split())) for ln in log.read_text().splitlines() if ln.strip()]
    samples = [(t, n) for t, n in rows]
    started = next((t for t, n in samples if n > 0), None)
    if started is None or len(samples) < 4:
        return None
    a, b = started + 1.0, samples[-1][0]  # the same 1 s warm-up as the worker
    return Rate(interp(samples, b) - interp(samples, a), b - a, sampler.cpu_between(a, b))
