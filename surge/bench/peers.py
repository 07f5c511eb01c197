"""The other load generator the bench measures Surge against: Locust FastHttpUser, on
the same core and target, its request count sampled from inside its own process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from surge.bench.cpu import CLIENT_CORE, CpuSampler, Rate, interp, pin_prefix

LOCUSTFILE = """
import time
import gevent
from locust import constant, events, task
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
    wait_time = constant(0)
    @task
    def t(self):
        self.client.get("/")
"""


def locust_speed(tmp: Path, url: str, *, users: int, secs: int) -> Rate | None:
    """Locust's steady-state rate (after the same 1 s warm-up as the worker); None when
    Locust is not installed or took no samples."""
    exe = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    if not Path(exe).exists():
        return None
    log = tmp / "locust.samples"
    (tmp / "lf.py").write_text(LOCUSTFILE.format(log=str(log)))
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
