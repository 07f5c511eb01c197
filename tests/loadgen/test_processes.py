"""A worker's sending processes: the split of its slice is exact, the merge is exact, the
count comes from the flag, the env, the spec or the cores; and a real run at 2 processes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import pytest

from surge.agent.process import start_agent_process, stop_agent_process
from surge.api.loadtest import LoadTestSpec
from surge.loadgen import schedule
from surge.loadgen.multiproc import ProcessesFailed, merge_processes, run_processes
from surge.loadgen.plan import WorkerPlan, build_plan, plan_json
from surge.loadgen.processes import for_resources, local_share, merge_cpu, resolve, whole_cores
from surge.loadgen.scenario import RowSource
from surge.loadgen.summary import WorkerSummary, parse_summary, record_many_seconds
from tests.loadgen.conftest import make_spec

RAMP = [schedule.Segment(0.0, 2.0, 50.0, 400.0), schedule.Segment(2.0, 3.0, 400.0, 400.0)]


@pytest.mark.parametrize("model", ["constant", "poisson"])
@pytest.mark.parametrize(("workers", "parts"), [(1, 2), (1, 3), (3, 2), (2, 4)])
def test_processes_split_the_worker_schedule_exactly(model: Any, workers: int, parts: int) -> None:
    for index in range(workers):
        whole = list(schedule.arrival_times(RAMP, model, index=index, workers=workers, seed=9))
        split = [
            list(schedule.arrival_times(
                RAMP, model, index=index, workers=workers, seed=9, part=p, parts=parts
            ))
            for p in range(parts)
        ]  # fmt: skip
        # Process p sends the worker's arrivals p, p + P, ...: the union is the schedule,
        # the same floats, each once.
        assert sorted(t for s in split for t in s) == whole
        for p, times in enumerate(split):
            assert times == whole[p::parts]


def test_a_process_outside_its_worker_is_refused() -> None:
    with pytest.raises(ValueError, match=r"process 2 is not in 0\.\.1"):
        next(schedule.arrival_times(RAMP, "constant", part=2, parts=2))


@pytest.mark.parametrize(("workers", "parts"), [(1, 2), (3, 2), (2, 3), (4, 4)])
def test_users_and_rows_split_exactly(workers: int, parts: int) -> None:
    segs = [schedule.Segment(0.0, 10.0, 0.0, 37.0)]
    for t in (0.5, 3.3, 7.9, 9.99):
        for i in range(workers):
            own = schedule.users_at(segs, t, index=i, workers=workers)
            slots = [i + p * workers for p in range(parts)]
            split = [schedule.users_at(segs, t, index=s, workers=workers * parts) for s in slots]
            assert sum(split) == own
    rows = [{"n": n} for n in range(7)]
    for i in range(workers):
        whole = RowSource(rows, "sequential", index=i, workers=workers)
        procs = [
            RowSource(rows, "sequential", index=i + p * workers, workers=workers * parts)
            for p in range(parts)
        ]
        # The worker's k-th request goes to process k mod P (its (k // P)-th): same row.
        assert [procs[k % parts].next() for k in range(40)] == [whole.next() for _ in range(40)]


def _summary(values: list[float], ok: int, cpu: dict[str, Any] | None = None) -> WorkerSummary:
    s = WorkerSummary(workers=[1], worker_count=2, start_epoch=1000.0, expected=ok / 2)
    record_many_seconds(s.hists["latency"], values)
    s.counts["ok"] = s.counts["sent"] = ok
    s.series = {"ok": [ok, 1]}
    s.cpu = [cpu] if cpu else []
    return s


def test_merge_of_processes_is_exact() -> None:
    rng = random.Random(5)
    values = [rng.lognormvariate(-3, 1) for _ in range(3000)]
    one = _summary(values, 3000)
    parts = [_summary(values[p::3], len(values[p::3])) for p in range(3)]
    plan = build_plan(make_spec("http://127.0.0.1:1"), name="m", namespace="t", run_id="1",
                      workers=2, index=1)  # fmt: skip
    merged = merge_processes(plan, parts)
    assert list(merged.hists["latency"].counts) == list(one.hists["latency"].counts)
    assert merged.counts == one.counts
    assert merged.expected == one.expected
    assert merged.series == {"ok": [3000, 3]}
    assert merged.workers == [1]


def test_cpu_records_merge_into_the_worker() -> None:
    base = {"worker": 0, "periods": 100, "throttled": 3, "throttledS": 0.2, "quotaCores": 4.0}
    a = {**base, "wallS": 10.0, "processS": 9.0, "loopS": 8.0, "loopWaitS": 1.5}
    b = {**base, "wallS": 10.2, "processS": 7.0, "loopS": 6.0, "loopWaitS": 0.5, "periods": 102}
    out = merge_cpu([a, b])
    # The pod's CPU against its quota; the busiest loop (a: 9.5 s of 10.2 s) is judged.
    assert out["processS"] == 16.0 and out["wallS"] == 10.2
    assert (out["loopS"], out["loopWaitS"]) == (8.0, 1.5)
    assert out["periods"] == 102 and out["quotaCores"] == 4.0
    assert merge_cpu([a]) == a


def _spec(**load: Any) -> LoadTestSpec:
    stages = {"stages": [{"duration": "5s", "target": 10}]}
    return make_spec("http://127.0.0.1:1", load={**stages, **load}, thresholds=["errors.rate < 1%"])


def test_count_flag_then_env_then_spec_then_cores() -> None:
    spec = _spec(processesPerWorker=3)
    assert resolve(spec, workers=1, flag=2, env={"SURGE_PROCESSES": "5"}) == 2
    assert resolve(spec, workers=1, env={"SURGE_PROCESSES": "5"}) == 5
    assert resolve(spec, workers=1, env={}) == 3
    assert resolve(_spec(), workers=1, env={}, cores=4.7) == 4
    assert resolve(_spec(), workers=1, env={}, cores=0.5) == 1
    # Every process may hold one request: maxInFlight 6 over 2 workers is 3 processes.
    assert resolve(_spec(maxInFlight=6, workers=2), workers=2, env={}, cores=8) == 3
    with pytest.raises(ValueError, match="SURGE_PROCESSES='two'"):
        resolve(spec, workers=1, env={"SURGE_PROCESSES": "two"})


def test_sweeps_and_bad_counts_are_refused_with_the_field() -> None:
    sweep = {"model": "sweep", "stages": [],
             "sweep": {"startRate": 10, "maxRate": 40, "stepDuration": "2s"}}  # fmt: skip
    with pytest.raises(ValueError, match="processesPerWorker: a sweep runs one process"):
        _spec(**sweep, processesPerWorker=2)
    assert resolve(_spec(**sweep), workers=1, env={"SURGE_PROCESSES": "4"}) == 1
    with pytest.raises(ValueError, match=r"maxInFlight must be at least load\.workers ×"):
        _spec(processesPerWorker=4, maxInFlight=3)
    with pytest.raises(ValueError, match="less than or equal to 64"):
        _spec(processesPerWorker=65)


def test_cores_from_resources_and_the_local_share() -> None:
    assert for_resources({"limits": {"cpu": "4"}, "requests": {"cpu": "1"}}) == 4
    assert for_resources({"requests": {"cpu": "1500m"}}) == 1
    assert for_resources({"limits": {"memory": "1Gi"}}) is None
    assert whole_cores(200) == 64
    assert local_share(_spec(workers=2), 4.0) == 2
    assert local_share(_spec(workers=4), 2.0) == 1
    assert local_share(_spec(processesPerWorker=3), 2.0) == 3


@pytest.mark.timeout(60)
def test_a_worker_at_two_processes_sends_its_whole_slice(tmp_path: Path) -> None:
    """A real `surge worker --processes 2` against Alice in its own process: every
    arrival of the constant schedule is sent once, the summary is one worker's."""
    proc, url = start_agent_process(
        ["--latency", "fixed:10ms", "--cpu-ms", "0", "--seed", "1"], stderr=subprocess.DEVNULL
    )
    try:
        spec = make_spec(
            url,
            scenario={"path": "/respond", "body": {"query": "where is my order"}},
            load={"stages": [{"duration": "3s", "target": 101}], "warmup": "1s", "workers": 2},
        )
        plan = tmp_path / "plan.json"
        plan.write_text(plan_json(build_plan(spec, name="mp", namespace="t", run_id="1")))
        p = subprocess.run(
            [sys.executable, "-m", "surge.loadgen.commands", "worker", "--plan", str(plan),
             "--index", "1", "--processes", "2", "--termination-log", str(tmp_path / "term")],
            capture_output=True, text=True, timeout=50, check=False,
        )  # fmt: skip
    finally:
        stop_agent_process(proc)
    assert p.returncode == 0, p.stderr
    summary = parse_summary(p.stdout)
    assert summary is not None
    # Worker 1 of 2 owns the odd arrivals k of the whole schedule, due at k/101 s; those
    # in the window [1 s, 3 s) are k = 101..302, so 101 of them.
    due = list(schedule.arrival_times(spec_segments(spec), "constant", index=1, workers=2))
    in_window = [t for t in due if 1.0 <= t < 3.0]
    assert summary.counts["sent"] == summary.counts["ok"] == len(in_window) == 101
    assert summary.expected == pytest.approx(101.0)
    assert summary.workers == [1] and len(summary.cpu) == 1
    progress = [json.loads(ln.split(" ", 1)[1]) for ln in p.stdout.splitlines()
                if ln.startswith("SURGE-PROGRESS ")]  # fmt: skip
    assert {r["p"] for r in progress} == {0, 1} and {r["w"] for r in progress} == {1}
    assert sum(r["ok"] for r in progress) == summary.counts["ok"]  # window requests


def spec_segments(spec: LoadTestSpec) -> list[schedule.Segment]:
    return schedule.segments(spec.load.stages, spec.load.start_target)


def test_a_process_that_dies_fails_the_worker_naming_it() -> None:
    """A child killed mid-run (os._exit: no summary line) fails the worker with its index
    and exit status; the survivors' summaries are not passed off as the worker's."""
    plan = build_plan(make_spec("http://127.0.0.1:1"), name="m", namespace="t", run_id="1")

    def runner(p: WorkerPlan, start_at: float, out: TextIO | None, prom: bool) -> WorkerSummary:
        if p.process == 1:
            os._exit(3)
        return _summary([0.01], 1)

    with pytest.raises(ProcessesFailed, match=r"process 1 of worker 0 .*exit status 3"):
        run_processes(plan, 2, time.time(), runner, progress=None)
