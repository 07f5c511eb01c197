"""Differential edge cases: the task-free path against the task path (a connections
cap forces it) on the same schedule, against a raw server in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import Generator, Iterator
from subprocess import DEVNULL
from typing import Any

import pytest

from surge.agent.process import start_agent_process, stop_agent_process
from surge.loadgen.outcome import Outcome
from surge.loadgen.recorder import Recorder
from tests.loadgen.test_dispatch import run

pytestmark = pytest.mark.timeout(60)


def _edge(mode: str, n: int) -> Generator[str, None, None]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.loadgen.edge_server", mode, str(n)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def edge(request: pytest.FixtureRequest) -> Iterator[str]:
    mode, n = request.param
    yield from _edge(mode, n)


def _counts(s: Any) -> dict[str, int]:
    return {k: v for k, v in s.counts.items() if v and k not in ("sent_total", "late")}


# Constant: arrivals 16 ms apart, each answered well before the next, so both paths use
# one connection at a time and the Nth-request-of-a-connection modes hit the same arrivals.
LOAD = {"model": "constant", "stages": [{"duration": "1s", "target": 60}]}


@pytest.mark.parametrize(
    ("edge", "scenario", "error"),
    [
        (("close", 3), {"path": "/"}, None),
        (("drop", 4), {"path": "/"}, "connect"),
        (("early", 0), {"path": "/", "method": "POST", "body": "x" * 200_000}, None),
        (("chunked", 0), {"path": "/"}, None),
        (("partial", 3), {"path": "/"}, "connect"),
        (("continue", 0), {"path": "/"}, None),
        (("double", 3), {"path": "/"}, None),
        (("reject", 0), {"path": "/", "method": "POST", "body": "x" * 200_000}, "http_4xx"),
        (("slow", 5), {"path": "/", "timeout": "300ms"}, "timeout"),
    ],
    indirect=["edge"],
)
async def test_edges_count_as_the_task_path(
    edge: str, scenario: dict[str, Any], error: str | None, request: pytest.FixtureRequest
) -> None:
    fast, used, _ = await run(edge, scenario=scenario, load=LOAD)
    # A fresh server for the second path: the failing edges count requests over the
    # server's life, so each path starts from its first request.
    mode, n = request.node.callspec.params["edge"]
    again = _edge(mode, n)
    try:
        url = next(again)
        slow, used_slow, _ = await run(url, connections=1000, scenario=scenario, load=LOAD)
    finally:
        again.close()
    assert used and not used_slow
    assert fast.counts["sent"] == slow.counts["sent"] > 30
    assert _counts(fast) == _counts(slow), (
        _counts(fast),
        _counts(slow),
        fast.reasons,
        slow.reasons,
    )
    # An edge that fails requests did happen, so the agreement above is about it (a server
    # that stopped producing it would leave both paths all-ok and equal). Edges the client
    # must absorb (close, early, chunked, continue, double) leave every request ok: that
    # they happened rests on the edge server, not on this check.
    if error is None:
        assert fast.counts["ok"] == fast.counts["sent"], _counts(fast)
    else:
        assert fast.counts[error] > 0 and fast.counts["ok"] < fast.counts["sent"], _counts(fast)
        # The failing edges count requests over all connections, so exactly every Nth fails
        # whichever connection carried it (counted per connection, the total hung on which
        # connection the pool picked after a failure, and CI once saw 12 timeouts against 11).
        every = n or 1  # reject (N=0) refuses every one
        assert fast.counts[error] == fast.counts["sent"] // every, _counts(fast)


async def test_a_hung_connect_times_out_each_request_on_its_own_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connects that hang (the listener's accept queue full: SYNs dropped) must not fail a
    later waiting request at the earlier one's deadline: each timeout ≥ its own timeout."""
    held: list[float] = []
    record = Recorder.record

    def spy(self: Recorder, intended_at: float, out: Outcome, scheduled: bool = True) -> None:
        if out.error == "timeout":
            held.append(out.done_at - out.sent_at)
        record(self, intended_at, out, scheduled)

    monkeypatch.setattr(Recorder, "record", spy)
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        fillers = [socket.socket() for _ in range(3)]  # fill the accept queue
        for c in fillers:
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(lsock.getsockname())
        try:
            url = f"http://127.0.0.1:{lsock.getsockname()[1]}"
            load = {"model": "constant", "stages": [{"duration": "1s", "target": 20}]}
            s, used, _ = await run(url, scenario={"path": "/", "timeout": "500ms"}, load=load)
        finally:
            for c in fillers:
                c.close()
    assert used
    assert s.counts["timeout"] == s.counts["sent"] == 20
    assert len(held) == 20 and min(held) >= 0.5 - 0.002  # the timer's 1 ms resolution


def _alice_run(connections: int | None) -> tuple[dict[str, int], list[float], bool]:
    """A fresh seeded Alice in her own process: the same draws for the same send order."""
    args = ["--latency", "lognormal:median=30ms,sigma=0.5", "--error-rate", "0.05"]
    proc, url = start_agent_process([*args, "--cpu-ms", "0", "--seed", "1"], stderr=DEVNULL)
    try:
        load = {"model": "poisson", "seed": 5, "stages": [{"duration": "1s", "target": 300}]}
        scenario = {"path": "/respond", "body": {"query": "where is my order"}, "timeout": "2s"}
        s, used, _ = asyncio.run(run(url, connections, scenario=scenario, load=load))
    finally:
        stop_agent_process(proc)
    lat = s.hists["latency"]
    return _counts(s), [lat.get_value_at_percentile(p) / 1e3 for p in (10, 50, 90)], used


def test_seeded_alice_counts_and_latency_match_the_task_path() -> None:
    fast, fast_ms, used = _alice_run(None)
    slow, slow_ms, used_slow = _alice_run(1000)
    assert used and not used_slow
    assert fast == slow and fast["http_5xx"] > 0 and fast["ok"] > 250
    # Same server draws in the same order: the percentiles differ by the paths' own
    # overhead only (measured: 0.1-0.5 ms on a loaded 2-core machine; 5 ms is a stall).
    # Not the p99: of 300 samples it is the third largest, which one stall in one of the
    # two runs moves; the tails are checked against the seeded truth in test_accuracy.
    for f, s in zip(fast_ms, slow_ms, strict=True):
        assert abs(f - s) < 5.0, (fast_ms, slow_ms)
