"""Alice as a separate process: the launcher, SIGTERM, and CPU as an HPA signal."""

from __future__ import annotations

import asyncio
import subprocess
import time

import aiohttp
import pytest

from surge.agent.server import start_agent_process, stop_agent_process

USERS = 8
CPU_MS = 20.0
WARMUP_S = 0.5
WINDOW_S = 2.0
CPU = "alice_cpu_seconds_total"
BUSY = "alice_busy_cpu_seconds_total"


def _run_delay_s(pid: int) -> float:
    """Seconds this process spent runnable but waiting for a CPU (Linux schedstat)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _counter(text: str, name: str) -> float:
    return next(float(x.split()[1]) for x in text.splitlines() if x.startswith(name + " "))


async def _user(session: aiohttp.ClientSession, url: str, stop_at: float) -> int:
    sent = 0
    # Bounded in time and count: a closed loop, one request at a time.
    while time.monotonic() < stop_at and sent < 2_000:
        async with session.post(url + "/respond", json={"query": "refund"}) as resp:
            await resp.read()
        sent += 1
    return sent


async def test_eight_users_at_20ms_cpu_use_one_core() -> None:
    proc, url = start_agent_process(
        ["--cpu-ms", str(CPU_MS), "--latency", "none", "--seed", "1"],
        stderr=subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:
            stop_at = time.monotonic() + WARMUP_S + WINDOW_S + 0.3
            users = [asyncio.create_task(_user(session, url, stop_at)) for _ in range(USERS)]
            await asyncio.sleep(WARMUP_S)
            # /metrics waits its turn behind the CPU work like any request, so the
            # counter is read by the server at scrape time, timed by us around it.
            t0, wait0 = time.monotonic(), _run_delay_s(proc.pid)
            first = await (await session.get(url + "/metrics")).text()
            await asyncio.sleep(WINDOW_S)
            second = await (await session.get(url + "/metrics")).text()
            t1, wait1 = time.monotonic(), _run_delay_s(proc.pid)
            sent = sum(await asyncio.gather(*users))
    finally:
        assert stop_agent_process(proc) == 0  # SIGTERM is a clean shutdown
    cpu_s = _counter(second, CPU) - _counter(first, CPU)
    busy_s = _counter(second, BUSY) - _counter(first, BUSY)
    wall_s = t1 - t0
    # On a shared machine other processes take turns on the cores; time the
    # server spent runnable but waiting for a CPU is not capacity it had.
    stolen_s = min(wall_s / 2, max(0.0, wait1 - wait0))
    rate = cpu_s / wall_s
    available_rate = cpu_s / (wall_s - stolen_s)
    print(
        f"cpu {rate:.3f} s/s ({available_rate:.3f} of what it could get), "
        f"busy {busy_s / wall_s:.3f} s/s, waited {stolen_s:.3f} s, {sent} requests"
    )
    assert 0.8 <= available_rate <= 1.1
    assert rate >= 0.5
    assert busy_s <= cpu_s
    assert sent >= 50


def test_launcher_reports_a_failed_start() -> None:
    with pytest.raises(RuntimeError, match="did not become healthy"):
        start_agent_process(["--latency", "bogus:1"], timeout_s=10, stderr=subprocess.DEVNULL)
