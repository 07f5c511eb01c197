"""The bench's three measurements, each against its own loopback target on the target
core: speed (Surge and Locust, closed loop), open-loop accuracy, in-flight streams."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surge.bench import targets
from surge.bench.cpu import TARGET_CORE, CpuSampler, Rate
from surge.bench.peers import locust_speed
from surge.bench.worker import run_worker
from surge.loadgen.aggregate import compute_results

SPEED_SECS, SPEED_USERS, SPEED_ROUNDS = 7, 50, 3
OPEN_RATE, OPEN_SECS, OPEN_DELAY_MS = 2000, 10, 200
STREAM_TTFT_MS, STREAM_TPOT_MS, STREAM_TOKENS = 100, 50, 100
STREAM_LEVELS = (250, 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000)
ITL_LIMIT_S, TTFT_LIMIT_S = 0.075, 0.200
TARGET_BOUND = 0.9
"""A stream level missed while the target used this share of its core or more (and the
client less) in the window of the criterion that missed is the target's miss: the
ladder's figure is then a lower bound. Both at it or above: either may have missed."""
RAMP_S, ALL_IN_S = (0.0, 2.2), (2.2, 5.0)
"""Seconds after the load's start: the ramp, when users connect and their first tokens
come (what TTFT judges: users start over 2 s on the engine's 50 ms poll), then the
window in which every stream is in flight (what ITL judges; a stream lasts 5.05 s)."""


def miss_bound(row: dict[str, Any]) -> tuple[bool, bool | None]:
    """(target bound, client bound) of a missed level: whether each side used at least
    TARGET_BOUND of its core in the windows of the criteria that missed (TTFT: the ramp;
    ITL or anything else: every stream in flight). The client's is None when it was not
    measured (several sending processes). A level that held is neither's."""
    if row["held"]:
        return False, False
    keys = []
    if (row["ttft_p99"] or 1e9) >= TTFT_LIMIT_S:
        keys.append("ramp")
    if (row["itl_p99"] or 1e9) >= ITL_LIMIT_S or not keys:
        keys.append("all_in")
    target = max(row[f"target_cpu_{k}"] for k in keys) >= TARGET_BOUND
    shares = [row[f"client_cpu_{k}"] for k in keys]
    if any(x is None for x in shares):
        return target, None
    return target, max(shares) >= TARGET_BOUND


@dataclass
class Target:
    proc: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        targets.stop(self.proc)


def start_target(kind: str, *args: float) -> Target:
    return Target(*targets.start(kind, *args, core=TARGET_CORE))


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


def speed(tmp: Path) -> dict[str, Any]:
    target = start_target("fast")
    surge: list[Rate] = []
    locust: list[Rate] = []
    scraped: dict[str, float] = {}
    try:
        for rnd in range(SPEED_ROUNDS):
            rate, scraped = surge_speed(tmp, target.url, rnd)
            surge.append(rate)
            lo = locust_speed(tmp, target.url, users=SPEED_USERS, secs=SPEED_SECS)
            if lo is not None:
                locust.append(lo)
    finally:
        target.stop()
    return {"surge": surge, "locust": locust, "scraped": scraped}


def open_loop(tmp: Path) -> dict[str, Any]:
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
    m = r.metrics
    return {
        "expected": s.expected,
        "sent": s.counts["sent"],
        "ok": s.counts["ok"],
        "errors": s.counts["sent"] - s.counts["ok"],
        "dropped": s.counts["dropped"],
        "rate": r.throughput.sent_rps,  # over the real span: a late worker shows
        "late": s.counts["late"],
        "lag_p99": m["schedule_lag.p99"],
        "p50": m["latency.p50"],
        "p99": m["latency.p99"],
    }


def in_flight(tmp: Path, processes: int = 1) -> list[dict[str, Any]]:
    """The stream ladder for one worker of `processes` sending processes (more than one:
    the worker is pinned to every core, the target's included; see docs/bench.md)."""
    stream_s = (STREAM_TTFT_MS + (STREAM_TOKENS - 1) * STREAM_TPOT_MS) / 1000
    # Coarse timers (stream_shapes.at_ms): the target's CPU share, which judges whose miss a
    # level is, then holds no spinning through the millisecond before each token.
    target = start_target("stream", STREAM_TTFT_MS, STREAM_TPOT_MS, STREAM_TOKENS, 1)
    target_cpu = CpuSampler(target.proc.pid)
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
                "load": {"model": "closed", "startTarget": 0, "processesPerWorker": processes,
                         "stages": [{"duration": "2s", "target": users},
                                    {"duration": f"{stream_s - 2.2:.2f}s", "target": users}]},
                "safety": {"maxUsers": users},
            }  # fmt: skip
            # A level that misses is run once more: contention only ever adds lag.
            for attempt in range(2):
                name = f"streams{users}x{processes}-{attempt}"
                run = run_worker(tmp, name, spec, processes=processes)
                s = run.summary
                m = compute_results(s).metrics
                row: dict[str, Any] = {
                    "users": users,
                    "processes": processes,
                    "ok": s.counts["ok"],
                    "errors": s.counts["sent"] - s.counts["ok"],
                    "ttft_p99": m["ttft.p99"],
                    "itl_p99": m["itl.p99"],
                    "tpot_p99": m["tpot.p99"],
                    "tries": attempt + 1,
                }
                # Shares of a core in each window. The client's only for one process: the
                # sampler sees the worker's own process, not its children.
                for key, (t0, t1) in (("ramp", RAMP_S), ("all_in", ALL_IN_S)):
                    a, b = run.start_at + t0, run.start_at + t1
                    row[f"target_cpu_{key}"] = target_cpu.cpu_between(a, b) / (b - a)
                    row[f"client_cpu_{key}"] = (
                        run.sampler.cpu_between(a, b) / (b - a) if processes == 1 else None
                    )
                row["held"] = (
                    row["errors"] == 0
                    and row["ok"] == users
                    and (row["itl_p99"] or 1e9) < ITL_LIMIT_S
                    and (row["ttft_p99"] or 1e9) < TTFT_LIMIT_S
                )
                row["target_bound"], row["client_bound"] = miss_bound(row)
                if row["held"]:
                    break
            levels.append(row)
            if not row["held"]:
                break
    finally:
        target.stop()
    return levels
