"""The open loop's task-free path (surge.loadgen.dispatch) records what the task path
records: every error class, timeouts from the send, and the same counts as a run that
takes the task path (a connections cap forces it)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
import uvloop

from surge.loadgen.engine import Engine
from surge.loadgen.plan import build_plan
from surge.loadgen.summary import WorkerSummary
from tests.loadgen.conftest import Truth, make_spec

pytestmark = pytest.mark.timeout(60)


async def run(
    url: str, connections: int | None = None, **over: Any
) -> tuple[WorkerSummary, bool, float]:
    """(summary, whether the task-free path ran, wall seconds)."""
    plan = build_plan(make_spec(url, **over), name="d", namespace="test", run_id="1")
    engine = Engine(plan, headers={}, connections=connections)
    t = time.monotonic()
    summary = await asyncio.to_thread(uvloop.run, engine.run())
    return summary, engine._dispatch is not None, time.monotonic() - t


LOAD = {"model": "constant", "stages": [{"duration": "1s", "target": 40}]}


@pytest.mark.parametrize(
    ("path", "error"),
    [("/status?code=503", "http_5xx"), ("/status?code=404", "http_4xx"), ("/reset", "connect")],
)
async def test_error_classes_match_the_task_path(
    truth: tuple[str, Truth], path: str, error: str
) -> None:
    url, _ = truth
    fast, used, _ = await run(url, scenario={"path": path}, load=LOAD)
    slow, used_slow, _ = await run(url, connections=100, scenario={"path": path}, load=LOAD)
    assert used and not used_slow
    assert fast.counts["sent"] == slow.counts["sent"] == 40
    assert fast.counts[error] == slow.counts[error] == 40
    assert fast.counts["ok"] == 0
    assert set(fast.reasons) == set(slow.reasons)


async def test_ok_counts_and_latency_from_the_due_time(truth: tuple[str, Truth]) -> None:
    url, _ = truth
    s, used, _ = await run(url, scenario={"path": "/fixed?ms=20"}, load=LOAD)
    assert used
    assert s.counts["ok"] == s.counts["sent"] == 40
    lat = s.hists["latency"]
    # HDR values are µs; every request took the server's 20 ms, never less.
    assert lat.get_min_value() >= 19_000
    # And typically not much more (the median: of 40 samples the p99 is the maximum, which
    # one scheduler stall on a loaded CI machine can move).
    assert lat.get_value_at_percentile(50) < 20_000 + 10_000
    assert s.hists["schedule_lag"].get_min_value() >= 0


async def test_refused_connections_are_connect_errors() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        s, used, _ = await run(f"http://127.0.0.1:{port}", scenario={"path": "/"}, load=LOAD)
    assert used
    assert s.counts["connect"] == 40 and s.counts["ok"] == 0


async def test_timeouts_count_from_the_send(truth: tuple[str, Truth]) -> None:
    url, _ = truth
    load = {"model": "constant", "stages": [{"duration": "500ms", "target": 20}]}
    s, used, wall = await run(url, scenario={"path": "/hang", "timeout": "700ms"}, load=load)
    assert used
    assert s.counts["timeout"] == 10 and s.counts["ok"] == 0
    assert s.reasons == {"timeout: timed out": 10}
    # The last arrival is due at 0.45 s and times out 0.7 s later; the run waits for it.
    assert 1.1 <= wall < 3.0
