"""The worker's start barrier (pure, with an injected clock and reader) and its SIGTERM path."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from surge.agent.process import start_agent_process, stop_agent_process
from surge.loadgen.barrier import BarrierTimeout, wait_for_start_at
from surge.loadgen.plan import build_plan, plan_json
from surge.loadgen.summary import parse_summary
from tests.loadgen.conftest import make_spec


class FakeClock:
    """A monotonic clock that only moves when the barrier sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_barrier_polls_until_start_at_appears() -> None:
    clock = FakeClock()
    answers: list[str | None] = [None, None, "", "1700000000.5"]
    reads: list[float] = []

    def read() -> str | None:
        reads.append(clock.now)
        return answers.pop(0)

    got = wait_for_start_at(read, timeout_s=10, poll_s=0.5, clock=clock, sleep=clock.sleep)
    assert got == 1700000000.5
    assert reads == [100.0, 100.5, 101.0, 101.5]  # one read per poll, no busy loop
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_barrier_treats_read_errors_as_not_yet() -> None:
    clock = FakeClock()
    calls = {"n": 0}

    def read() -> str | None:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("API server blip")
        return " 1700000001 "

    got = wait_for_start_at(read, timeout_s=5, poll_s=0.5, clock=clock, sleep=clock.sleep)
    assert got == 1700000001.0
    assert calls["n"] == 3


def test_barrier_times_out_at_the_deadline() -> None:
    clock = FakeClock()
    with pytest.raises(BarrierTimeout, match="startAt within 2s"):
        wait_for_start_at(lambda: None, timeout_s=2, poll_s=0.5, clock=clock, sleep=clock.sleep)
    # Reads at 100.0, 100.5, ..., 102.0; the read at the deadline still counts.
    assert clock.now == pytest.approx(102.0)
    assert len(clock.sleeps) == 4


@pytest.mark.parametrize("bad", ["soon", "0", "-5", "nan"])
def test_barrier_rejects_a_bad_start_at(bad: str) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError):
        wait_for_start_at(lambda: bad, timeout_s=2, clock=clock, sleep=clock.sleep)


@pytest.mark.timeout(60)
def test_sigterm_flushes_an_interrupted_summary(tmp_path: Path) -> None:
    proc, url = start_agent_process(
        ["--latency", "fixed:20ms", "--cpu-ms", "0", "--seed", "1"], stderr=subprocess.DEVNULL
    )
    try:
        spec = make_spec(
            url,
            scenario={"path": "/respond", "body": {"query": "where is my order"}},
            load={"model": "constant", "stages": [{"duration": "60s", "target": 50}]},
        )
        plan = tmp_path / "plan.json"
        plan.write_text(plan_json(build_plan(spec, name="sig", namespace="test", run_id="1")))
        out = tmp_path / "summary.json"
        worker = subprocess.Popen(
            [sys.executable, "-m", "surge.loadgen.commands", "worker", "--plan", str(plan),
             "--summary-out", str(out), "--termination-log", str(tmp_path / "term")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert worker.stdout is not None
        # Wait for the first progress line (the load is running), then ~1 s more.
        first = worker.stdout.readline()
        assert first.startswith("SURGE-PROGRESS "), first
        time.sleep(1.0)
        sent_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=20)
        took = time.monotonic() - sent_at
    finally:
        stop_agent_process(proc)
    assert worker.returncode == 0, stderr
    assert took < 5  # a short grace, not the 60 s stage
    lines = [ln for ln in stdout.splitlines() if ln.startswith("SURGE-SUMMARY ")]
    assert len(lines) == 1 and stdout.rstrip().endswith(lines[0])
    summary = parse_summary(lines[0])
    assert summary is not None
    assert summary.interrupted is True
    assert summary.counts["ok"] > 50
    assert 1.0 < summary.measured_s < 10.0
    # The same summary went to --summary-out and, compact, to the termination log.
    assert json.loads(out.read_text())["interrupted"] is True
    term = parse_summary((tmp_path / "term").read_text())
    assert term is not None and term.counts == summary.counts
