"""The shared worker supervisor: one `surge worker` command line for `surge run` and
`make bench`, and what supervising fake workers (small Python scripts standing in for
`surge worker`, started in its place) leaves: summaries, progress, problems, deadline."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

import surge.loadgen.worker
from surge.bench import worker as bench_worker
from surge.bench.cpu import CLIENT_CORE, pin_prefix
from surge.loadgen import commands, supervisor
from surge.loadgen.local import run_workers
from surge.loadgen.plan import WorkerPlan, build_plan
from surge.loadgen.progress import Progress
from surge.loadgen.summary import PROGRESS_PREFIX, SUMMARY_PREFIX, WorkerSummary
from surge.loadgen.supervisor import Hooks, WorkerFiles, supervise, worker_argv
from tests.loadgen.conftest import make_spec

pytestmark = pytest.mark.timeout(60)

WORKER_HEAD = [sys.executable, "-m", "surge.loadgen.commands", "worker"]
WORKER_FLAGS = ["--plan", "--index", "--start-at", "--summary-out", "--termination-log"]

FAKE_WORKER = """
import json, signal, sys, time
args = sys.argv[1:]
def flag(name):
    return args[args.index(name) + 1]
index = int(flag("--index"))
mode = {modes!r}[index]
if mode == "hang":  # deaf to SIGTERM: only the kill ends it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
print({progress!r} + json.dumps({{"s": 0, "w": index, "ok": 5, "sending": True}}), flush=True)
print({progress!r} + "not json", flush=True)
summary = json.dumps({summary!r}).replace('"workers": []', '"workers": [%d]' % index)
if mode == "file":
    open(flag("--summary-out"), "w").write(summary)
elif mode == "stdout":
    print({summary_prefix!r} + summary, flush=True)
else:
    print("boom", file=sys.stderr)
    sys.exit(3)
"""


def fake_workers(monkeypatch: pytest.MonkeyPatch, modes: list[str]) -> list[list[str]]:
    """Start FAKE_WORKER wherever a worker is spawned; returns the argv each one got.
    Modes per index: file (summary in --summary-out), stdout (summary line only), fail
    (exit 3, "boom" on stderr), hang (ignores SIGTERM)."""
    real_exec = asyncio.create_subprocess_exec
    calls: list[list[str]] = []
    code = FAKE_WORKER.format(
        modes=modes,
        progress=PROGRESS_PREFIX,
        summary=WorkerSummary(loadtest="t").to_json(),
        summary_prefix=SUMMARY_PREFIX,
    )

    async def fake_exec(*argv: str, **kw: Any) -> asyncio.subprocess.Process:
        calls.append(list(argv))
        return await real_exec(sys.executable, "-c", code, *argv, **kw)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", fake_exec)
    return calls


def plan_for(workers: int, duration: str = "1s", timeout: str = "5s") -> WorkerPlan:
    spec = make_spec(
        "http://127.0.0.1:9",
        scenario={"timeout": timeout},
        load={"stages": [{"duration": duration, "target": 10}], "workers": workers},
    )
    return build_plan(spec, name="t", namespace="test", run_id="1")


def test_worker_argv_is_the_worker_command_with_its_files(tmp_path: Path) -> None:
    files = WorkerFiles(tmp_path, 2)
    argv = worker_argv(tmp_path / "plan.json", files, 1700000000.25)
    assert argv == [
        *WORKER_HEAD,
        "--plan", str(tmp_path / "plan.json"),
        "--index", "2",
        "--start-at", "1700000000.250000",
        "--summary-out", str(tmp_path / "summary-2.json"),
        "--termination-log", str(tmp_path / "termination-2.log"),
    ]  # fmt: skip
    wrapped = worker_argv(
        tmp_path / "plan.json",
        files,
        1700000000.25,
        prefix=["taskset", "-c", "0"],
        extra=["--metrics-port", "9100"],
    )
    assert wrapped == ["taskset", "-c", "0", *argv, "--metrics-port", "9100"]


def test_the_worker_command_line_parses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    got: dict[str, Any] = {}

    def fake_main(**kw: Any) -> int:
        got.update(kw)
        return 0

    monkeypatch.setattr(surge.loadgen.worker, "main", fake_main)
    app = typer.Typer()
    commands.register(app)
    argv = worker_argv(
        tmp_path / "plan.json", WorkerFiles(tmp_path, 1), 5.5, extra=["--metrics-port", "9100"]
    )
    result = CliRunner().invoke(app, argv[len(WORKER_HEAD) - 1 :])
    assert result.exit_code == 0, result.output
    assert got["plan_file"] == tmp_path / "plan.json"
    assert (got["index"], got["start_at"], got["metrics_port"]) == (1, 5.5, 9100)
    assert got["summary_out"] == tmp_path / "summary-1.json"
    assert got["termination_log"] == tmp_path / "termination-1.log"


def test_surge_run_and_the_bench_spawn_the_same_worker_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = fake_workers(monkeypatch, ["file", "file"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    console = Console(file=io.StringIO())
    done, prog = asyncio.run(run_workers(plan_for(2), run_dir, console, live=False))
    assert not done.problems and len(done.summaries) == 2
    assert prog.ok == 10  # one progress record from each worker; the malformed one skipped

    spec: dict[str, Any] = {
        "target": {"url": "http://127.0.0.1:9"},
        "scenario": {"method": "GET", "path": "/"},
        "load": {"model": "closed", "stages": [{"duration": "1s", "target": 1}]},
    }
    bench = bench_worker.run_worker(tmp_path, "speed0", spec)
    assert bench.summary.loadtest == "t"

    for i in range(2):
        # `surge run` names each worker's sending processes (here run_workers' default, 1).
        assert calls[i] == worker_argv(
            run_dir / "plan.json",
            WorkerFiles(run_dir, i),
            done.start_at,
            extra=["--processes", "1"],
        )
    bench_dir = tmp_path / "speed0"
    core = worker_argv(bench_dir / "plan.json", WorkerFiles(bench_dir, 0), bench.start_at)
    prefix = pin_prefix(CLIENT_CORE)
    assert calls[2][: len(prefix) + len(core)] == [*prefix, *core]
    assert calls[2][len(prefix) + len(core) :][0] == "--metrics-port"
    for argv in (calls[0], calls[2][len(prefix) :]):
        assert argv[: len(WORKER_HEAD)] == WORKER_HEAD
        assert [a for a in argv if a.startswith("--")][: len(WORKER_FLAGS)] == WORKER_FLAGS


async def test_supervise_collects_summaries_progress_and_problems(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_workers(monkeypatch, ["file", "stdout", "fail"])
    prog = Progress()
    spawned: list[int] = []
    ticks: list[float] = []
    hooks = Hooks(
        start_delay_s=0.0,
        on_spawn=lambda index, pid: spawned.append(index),
        on_progress=prog.add,
        on_tick=ticks.append,
        tick_s=0.05,
    )
    done = await supervise(plan_for(3), tmp_path, hooks)
    assert spawned == [0, 1, 2]
    assert ticks
    assert [s.workers for s in done.summaries] == [[0], [1]]  # the file, then stdout
    assert done.returncodes == [0, 0, 3]
    assert done.problems == {2: "worker 2 exited 3 without a summary: boom"}
    assert prog.ok == 15 and prog.sending == {(0, 0): True, (1, 0): True, (2, 0): True}
    assert not done.interrupted and not done.timed_out
    assert json.loads((tmp_path / "plan.json").read_text())["workers"] == 3


async def test_workers_past_the_deadline_are_stopped_then_killed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_workers(monkeypatch, ["file", "hang"])
    monkeypatch.setattr(supervisor, "DEADLINE_GRACE_S", 0.0)
    monkeypatch.setattr(supervisor, "KILL_AFTER_S", 0.5)
    hooks = Hooks(start_delay_s=0.0, tick_s=0.05)
    done = await supervise(plan_for(2, duration="1s", timeout="1s"), tmp_path, hooks)
    assert done.timed_out
    assert done.returncodes == [0, -9]  # SIGTERM ignored, so SIGKILL
    assert len(done.summaries) == 1 and list(done.problems) == [1]
