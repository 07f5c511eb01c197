"""`make bench`: how fast and how exact one Surge worker is, on this machine, on loopback.

1. Speed: the worker (closed loop, 50 users, recording everything: HDR histograms,
   counters, per-second progress lines, a Prometheus endpoint that is scraped) against
   Locust FastHttpUser (50 users), each pinned to core 0 with taskset, the same raw
   target pinned to core 1. Rounds alternate; each tool's best round counts.
   "Per core" is requests per CPU second of the client process over its steady state
   (sampled from /proc/PID/stat), because on a shared machine a pinned process gets
   a varying share of its core; the wall-clock rate is printed beside it.
2. Open-loop accuracy: 2,000 req/s for 10 s (after 1 s warm-up) against a target that
   answers in 200 ms: achieved rate, dropped, schedule lag p99, latency p50/p99.
3. In-flight: concurrent 5 s streams (TTFT 100 ms, TPOT 50 ms, 100 tokens) one worker
   holds: levels 250, 500, 1,000, 1,500, 2,000 users, each stream held once; a level
   holds when every stream completes without error, ITL p99 < 75 ms and TTFT p99 <
   200 ms (a level that misses is run once more); the ladder stops at the first miss.

Everything stays on 127.0.0.1 and is bounded in time (about 2.5 minutes in all).
Method and latest figures: docs/bench.md.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surge.bench import targets

CLIENT_CORE, TARGET_CORE = 0, 1
SPEED_SECS, SPEED_USERS, SPEED_ROUNDS = 7, 50, 3
OPEN_RATE, OPEN_SECS, OPEN_DELAY_MS = 2000, 10, 200
STREAM_TTFT_MS, STREAM_TPOT_MS, STREAM_TOKENS = 100, 50, 100
STREAM_LEVELS = (250, 500, 1000, 1500, 2000)
ITL_LIMIT_S, TTFT_LIMIT_S = 0.075, 0.200

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


def pinned(core: int, *argv: str) -> list[str]:
    return ["taskset", "-c", str(core), *argv] if shutil.which("taskset") else list(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        return _interp(self.samples, b) - _interp(self.samples, a)


def _interp(samples: list[tuple[float, float]], t: float) -> float:
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
    requests: float
    wall_s: float
    cpu_s: float

    @property
    def per_wall_s(self) -> float:
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def per_cpu_s(self) -> float:
        return self.requests / self.cpu_s if self.cpu_s > 0 else 0.0


@dataclass
class Target:
    proc: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        targets.stop(self.proc)


def start_target(kind: str, *args: float) -> Target:
    return Target(*targets.start(kind, *args, core=TARGET_CORE))


def write_plan(tmp: Path, name: str, spec: dict[str, Any]) -> Path:
    from surge.api.loadtest import LoadTestSpec
    from surge.loadgen.plan import build_plan, plan_json

    lt = LoadTestSpec.model_validate(spec)
    plan = build_plan(lt, name=name, namespace="bench", run_id="1")
    path = tmp / f"{name}.json"
    path.write_text(plan_json(plan))
    return path


@dataclass
class WorkerRun:
    summary: Any
    sampler: CpuSampler
    start_at: float
    scraped: dict[str, float] = field(default_factory=dict)


def run_worker(
    tmp: Path, name: str, spec: dict[str, Any], *, scrape_at_s: float | None = None
) -> WorkerRun:
    """One `surge worker` process on the client core, progress on, /metrics served."""
    from surge.loadgen.summary import parse_summary

    plan = write_plan(tmp, name, spec)
    out = tmp / f"{name}.summary.json"
    port = free_port()
    term = tmp / f"{name}.term"
    start_at = time.time() + 2.5  # room for the imports before the load starts
    argv = [sys.executable, "-m", "surge.loadgen.commands", "worker", "--plan", str(plan),
            "--summary-out", str(out), "--start-at", f"{start_at:.3f}",
            "--metrics-port", str(port), "--termination-log", str(term)]  # fmt: skip
    proc = subprocess.Popen(pinned(CLIENT_CORE, *argv), stdout=subprocess.DEVNULL)
    sampler = CpuSampler(proc.pid)
    scraped: dict[str, float] = {}
    if scrape_at_s is not None:
        time.sleep(max(start_at + scrape_at_s - time.time(), 0))
        scraped = scrape(f"http://127.0.0.1:{port}/metrics")
    if proc.wait(timeout=120) != 0:
        raise RuntimeError(f"surge worker {name} exited {proc.returncode}")
    summary = parse_summary(out.read_text())
    assert summary is not None
    return WorkerRun(summary, sampler, start_at, scraped)


def scrape(url: str) -> dict[str, float]:
    """Sums of each sample name on a Prometheus text page."""
    sums: dict[str, float] = {}
    with urllib.request.urlopen(url, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.split("{")[0].split(" ")[0], line.rsplit(" ", 1)[1]
                sums[name] = sums.get(name, 0.0) + float(value)
    return sums


def surge_speed(tmp: Path, url: str, rnd: int) -> tuple[Rate, dict[str, float]]:
    warmup = 1.0
    spec = {
        "target": {"url": url},
        "scenario": {"method": "GET", "path": "/"},
        "load": {"model": "closed", "warmup": f"{warmup}s",
                 "stages": [{"duration": f"{SPEED_SECS}s", "target": SPEED_USERS}]},
    }  # fmt: skip
    run = run_worker(tmp, f"speed{rnd}", spec, scrape_at_s=SPEED_SECS / 2)
    a, b = run.start_at + warmup, run.start_at + SPEED_SECS
    sent = run.summary.counts["sent"]
    return Rate(sent, b - a, run.sampler.cpu_between(a, b)), run.scraped


def locust_speed(tmp: Path, url: str) -> Rate | None:
    exe = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    if not Path(exe).exists():
        return None
    log = tmp / "locust.samples"
    (tmp / "lf.py").write_text(LOCUSTFILE.format(log=str(log)))
    argv = [exe, "-f", str(tmp / "lf.py"), "--headless", "-u", str(SPEED_USERS),
            "-r", str(SPEED_USERS), "-t", f"{SPEED_SECS}s", "--host", url,
            "--only-summary", "--loglevel", "ERROR"]  # fmt: skip
    proc = subprocess.Popen(
        pinned(CLIENT_CORE, *argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    sampler = CpuSampler(proc.pid)
    proc.wait(timeout=SPEED_SECS + 60)
    rows = [tuple(map(float, ln.split())) for ln in log.read_text().splitlines() if ln.strip()]
    samples = [(t, n) for t, n in rows]
    started = next((t for t, n in samples if n > 0), None)
    if started is None or len(samples) < 4:
        return None
    a, b = started + 1.0, samples[-1][0]  # the same 1 s warm-up as the worker
    return Rate(_interp(samples, b) - _interp(samples, a), b - a, sampler.cpu_between(a, b))


def speed(tmp: Path) -> dict[str, Any]:
    target = start_target("fast")
    surge: list[Rate] = []
    locust: list[Rate] = []
    scraped: dict[str, float] = {}
    try:
        for rnd in range(SPEED_ROUNDS):
            rate, scraped = surge_speed(tmp, target.url, rnd)
            surge.append(rate)
            lo = locust_speed(tmp, target.url)
            if lo is not None:
                locust.append(lo)
    finally:
        target.stop()
    return {"surge": surge, "locust": locust, "scraped": scraped}


def open_loop(tmp: Path) -> dict[str, Any]:
    from surge.loadgen.aggregate import compute_results

    target = start_target("slow", OPEN_DELAY_MS)
    try:
        spec = {
            "target": {"url": target.url},
            "scenario": {"method": "GET", "path": "/", "timeout": "5s"},
            "load": {"model": "constant", "warmup": "1s", "maxInFlight": 2000,
                     "stages": [{"duration": f"{OPEN_SECS + 1}s", "target": OPEN_RATE}]},
            "safety": {"maxRate": OPEN_RATE},
        }  # fmt: skip
        run = run_worker(tmp, "openloop", spec)
    finally:
        target.stop()
    s = run.summary
    r = compute_results(s)
    m = r["metrics"]
    return {
        "expected": s.expected,
        "sent": s.counts["sent"],
        "ok": s.counts["ok"],
        "errors": s.counts["sent"] - s.counts["ok"],
        "dropped": s.counts["dropped"],
        "rate": r["throughput"]["sentRps"],  # over the real span: a late worker shows
        "late": s.counts["late"],
        "lag_p99": m["schedule_lag.p99"],
        "p50": m["latency.p50"],
        "p99": m["latency.p99"],
    }


def in_flight(tmp: Path) -> list[dict[str, Any]]:
    from surge.loadgen.aggregate import compute_results

    stream_s = (STREAM_TTFT_MS + (STREAM_TOKENS - 1) * STREAM_TPOT_MS) / 1000
    target = start_target("stream", STREAM_TTFT_MS, STREAM_TPOT_MS, STREAM_TOKENS)
    levels: list[dict[str, Any]] = []
    try:
        for users in STREAM_LEVELS:
            # Users start over 2 s (connects spread out), each opens one stream and holds
            # it; the stages end before a user's stream does, so none sends a second one
            # and all `users` streams are in flight at once from 2 s to 5 s.
            spec = {
                "target": {"url": target.url},
                "scenario": {"method": "GET", "path": "/v1/chat/completions",
                             "streaming": "openai", "timeout": "20s"},
                "load": {"model": "closed", "startTarget": 0,
                         "stages": [{"duration": "2s", "target": users},
                                    {"duration": f"{stream_s - 2.2:.2f}s", "target": users}]},
                "safety": {"maxUsers": users},
            }  # fmt: skip
            # A level that misses is run once more: contention only ever adds lag.
            for attempt in range(2):
                s = run_worker(tmp, f"streams{users}-{attempt}", spec).summary
                m = compute_results(s)["metrics"]
                row = {
                    "users": users,
                    "ok": s.counts["ok"],
                    "errors": s.counts["sent"] - s.counts["ok"],
                    "ttft_p99": m["ttft.p99"],
                    "itl_p99": m["itl.p99"],
                    "tpot_p99": m["tpot.p99"],
                    "tries": attempt + 1,
                }
                row["held"] = (
                    row["errors"] == 0
                    and row["ok"] == users
                    and (row["itl_p99"] or 1e9) < ITL_LIMIT_S
                    and (row["ttft_p99"] or 1e9) < TTFT_LIMIT_S
                )
                if row["held"]:
                    break
            levels.append(row)
            if not row["held"]:
                break
    finally:
        target.stop()
    return levels


def _best(rates: list[Rate]) -> Rate | None:
    # Contention on a shared machine only ever slows a run down: the best round is the
    # closest to what the client can do.
    return max(rates, key=lambda r: r.per_cpu_s) if rates else None


def report(sp: dict[str, Any], ol: dict[str, Any], fl: list[dict[str, Any]]) -> str:
    s, lo = _best(sp["surge"]), _best(sp["locust"])
    assert s is not None
    lines = ["", "Surge bench (loopback; client pinned to core 0, target to core 1)"]
    lines.append("machine load average (1 min) at start/end: " + sp.get("load", "?"))
    lines.append("")
    lines.append(f"{'client':<44}{'req/CPU-s':>12}{'req/s wall':>12}")
    lines.append(f"{'surge worker (closed, 50 users, all metrics)':<44}"
                 f"{s.per_cpu_s:>12,.0f}{s.per_wall_s:>12,.0f}")  # fmt: skip
    if lo is not None:
        lines.append(f"{'locust FastHttpUser (50 users)':<44}"
                     f"{lo.per_cpu_s:>12,.0f}{lo.per_wall_s:>12,.0f}")  # fmt: skip
    got = sp["scraped"]
    lines.append(
        "  /metrics scraped mid-run: surge_requests_total="
        f"{got.get('surge_requests_total', 0):,.0f}, surge_request_latency_seconds_count="
        f"{got.get('surge_request_latency_seconds_count', 0):,.0f}"
    )
    s_rounds = ", ".join(f"{r.per_cpu_s:,.0f}" for r in sp["surge"])
    l_rounds = ", ".join(f"{r.per_cpu_s:,.0f}" for r in sp["locust"]) or "not installed"
    lines.append(f"  every round, req/CPU-s: surge {s_rounds}; locust {l_rounds}")
    if lo is not None:
        lines.append(f"Surge/Locust per core: {s.per_cpu_s / lo.per_cpu_s:.2f}×"
                     f"  (wall clock: {s.per_wall_s / lo.per_wall_s:.2f}×)")  # fmt: skip
    else:
        lines.append("Surge/Locust per core: n/a (locust not installed: pip install -e '.[bench]')")
    lines += [
        "",
        f"Open loop {OPEN_RATE:,} req/s for {OPEN_SECS} s, target answers in {OPEN_DELAY_MS} ms:",
        f"  achieved {ol['rate']:,.1f} req/s (expected {ol['expected']:,.0f}, sent {ol['sent']:,},"
        f" ok {ol['ok']:,}, errors {ol['errors']}, dropped {ol['dropped']}, late {ol['late']:,})",
        f"  schedule lag p99 {ol['lag_p99'] * 1000:.2f} ms;"
        f" latency p50 {ol['p50'] * 1000:.1f} ms, p99 {ol['p99'] * 1000:.1f} ms"
        f" (server: {OPEN_DELAY_MS} ms)",
        "",
        f"In-flight streams (TTFT {STREAM_TTFT_MS} ms, TPOT {STREAM_TPOT_MS} ms,"
        f" {STREAM_TOKENS} tokens; holds = no errors, ITL p99 < {ITL_LIMIT_S * 1000:.0f} ms,"
        f" TTFT p99 < {TTFT_LIMIT_S * 1000:.0f} ms):",
    ]
    for row in fl:
        lines.append(
            f"  {row['users']:>5} streams: ok {row['ok']:>5}, errors {row['errors']},"
            f" TTFT p99 {(row['ttft_p99'] or 0) * 1000:6.1f} ms,"
            f" ITL p99 {(row['itl_p99'] or 0) * 1000:6.1f} ms,"
            f" TPOT p99 {(row['tpot_p99'] or 0) * 1000:5.1f} ms"
            f"  {'held' if row['held'] else 'NOT held'} (tries: {row['tries']})"
        )
    held = max((r["users"] for r in fl if r["held"]), default=0)
    lines.append(
        f"Streams one worker holds: {held:,}" + (" (the cap)" if held == STREAM_LEVELS[-1] else "")
    )
    return "\n".join(lines)


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    only = set(sys.argv[1:])  # e.g. `python -m surge.bench speed`
    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sp = speed(tmp) if not only or "speed" in only else {"surge": [], "locust": []}
        ol = open_loop(tmp) if not only or "open" in only else None
        fl = in_flight(tmp) if not only or "streams" in only else []
    sp["load"] = f"{load0:.2f}/{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    if sp["surge"] and ol is not None:
        print(report(sp, ol, fl))
    else:
        print(json.dumps({"speed": [vars(r) for r in sp["surge"]],
                          "locust": [vars(r) for r in sp["locust"]],
                          "open": ol, "streams": fl}, indent=1))  # fmt: skip
    print(f"\n(bench took {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
