"""Differential edge cases: the task-free path against the task path (a connections
cap forces it) on the same schedule, against a raw server in its own process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.loadgen.test_dispatch import run

pytestmark = pytest.mark.timeout(60)


def _edge(mode: str, n: int) -> Iterator[str]:
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


POISSON = {"model": "poisson", "seed": 7, "stages": [{"duration": "1s", "target": 60}]}


@pytest.mark.parametrize(
    ("edge", "scenario"),
    [
        (("close", 3), {"path": "/"}),
        (("drop", 4), {"path": "/"}),
        (("early", 0), {"path": "/", "method": "POST", "body": "x" * 200_000}),
        (("chunked", 0), {"path": "/"}),
        (("chunked", 0), {"path": "/", "method": "HEAD"}),
        (("slow", 5), {"path": "/", "timeout": "300ms"}),
    ],
    indirect=["edge"],
)
async def test_edges_count_as_the_task_path(edge: str, scenario: dict[str, Any]) -> None:
    fast, used, _ = await run(edge, scenario=scenario, load=POISSON)
    slow, used_slow, _ = await run(edge, connections=1000, scenario=scenario, load=POISSON)
    assert used and not used_slow
    assert fast.counts["sent"] == slow.counts["sent"] > 30
    assert _counts(fast) == _counts(slow), (_counts(fast), _counts(slow), fast.reasons, slow.reasons)
