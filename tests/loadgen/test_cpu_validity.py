"""A worker short of CPU says so in its summary, and the run is Inconclusive
(GeneratorSaturated) with the worker count that would suffice (docs/metrics.md,
"Validity"). The pure parts (cpu.stat, quota and schedstat parsing, the decision) are
tested on text; one test starves a real `surge worker` with a cgroup CPU limit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from surge.api.results import RunResults
from surge.bench import targets
from surge.loadgen.aggregate import compute_results
from surge.loadgen.cpustat import (
    CpuSample,
    assess,
    cgroup_dirs,
    parse_cpu_stat,
    parse_quota,
    parse_schedstat,
    throttling,
    window_record,
)
from surge.loadgen.plan import build_plan
from surge.loadgen.summary import WorkerSummary, merge, record_seconds
from surge.loadgen.supervisor import Hooks, supervise
from surge.verdicts import generator_saturation, verdict
from tests.loadgen.conftest import make_spec

V2_STAT = "usage_usec 9000000\nuser_usec 8000000\nsystem_usec 1000000\nnr_periods 200\n"
V2_STAT += "nr_throttled 150\nthrottled_usec 12500000\nnr_bursts 0\nburst_usec 0\n"
V1_STAT = "nr_periods 40\nnr_throttled 4\nthrottled_time 300000000\nnr_bursts 0\n"


def test_cpu_stat_v1_and_v2() -> None:
    assert throttling(parse_cpu_stat(V2_STAT)) == (200, 150, 12.5)
    assert throttling(parse_cpu_stat(V1_STAT)) == (40, 4, 0.3)
    # A v2 group without the cpu controller has usage only: nothing to judge.
    assert throttling(parse_cpu_stat("usage_usec 5\nuser_usec 4\nsystem_usec 1\n")) is None
    assert parse_cpu_stat("nr_periods x\ngarbage\nnr_throttled 3") == {"nr_throttled": 3}


def test_quota_and_schedstat() -> None:
    assert parse_quota("50000 100000\n", None, None) == 0.5
    assert parse_quota("max 100000\n", "-1", "100000") is None
    assert parse_quota(None, "150000\n", "100000\n") == 1.5
    assert parse_quota(None, "-1\n", "100000\n") is None
    assert parse_quota(None, None, None) is None
    assert parse_schedstat("2500000000 500000000 1234\n") == (2.5, 0.5)
    assert parse_schedstat("") is None


def test_cgroup_dirs_v1_v2_and_a_container_without_its_own_namespace() -> None:
    root = Path("/cg")
    v1 = "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n"
    dirs = cgroup_dirs(v1, root)
    assert dirs[:2] == [root / "cpu,cpuacct/docker/abc", root / "cpu,cpuacct"]
    assert root in dirs  # the v2 group last
    assert cgroup_dirs("0::/kubepods/pod1/c1\n", root)[:2] == [root / "kubepods/pod1/c1", root]


def _rec(**over: Any) -> dict[str, Any]:
    """A 10 s window of a worker at 30 % of its core, no cgroup limit."""
    a = CpuSample(wall_s=100.0, process_s=1.0, loop_s=0.9, loop_wait_s=0.1)
    b = CpuSample(wall_s=110.0, process_s=4.2, loop_s=3.9, loop_wait_s=0.2)
    return {**window_record(0, a, b), **over}


def test_counters_of_two_groups_make_no_delta() -> None:
    a = CpuSample(1.0, 0.0, 0.0, 0.0, periods=5, throttled=1, throttled_s=0.1, group="/a")
    b = CpuSample(3.0, 1.0, 1.0, 0.0, periods=50, throttled=20, throttled_s=1.0, group="/b")
    rec = window_record(3, a, b)
    assert (rec["worker"], rec["wallS"], rec["processS"]) == (3, 2.0, 1.0)
    assert rec["periods"] is rec["throttled"] is rec["quotaCores"] is None
    same = window_record(3, a, CpuSample(3.0, 1.0, 1.0, 0.0, 50, 20, 1.0, "/a", 0.5))
    assert (same["periods"], same["throttled"], same["quotaCores"]) == (45, 19, 0.5)


def test_a_worker_with_spare_cpu_is_not_saturated() -> None:
    got = assess(_rec())
    assert got["loopShare"] == pytest.approx(0.31)  # (3.0 s CPU + 0.1 s waiting) / 10 s
    assert got["saturated"] is None and got["demand"] == pytest.approx(0.31)
    # Throttled now and then (a burst used the period's quota): under the bound.
    sometimes = assess(_rec(quotaCores=1.0, periods=100, throttled=10, throttledS=0.4))
    assert sometimes["throttledShare"] == 0.1 and sometimes["saturated"] is None
    # Too short a window, or too few periods, judges nothing.
    assert assess(_rec(wallS=0.2, loopS=0.2))["saturated"] is None
    assert assess(_rec(quotaCores=1.0, periods=4, throttled=4))["throttledShare"] is None


def test_a_busy_loop_a_used_up_limit_or_throttling_each_saturate() -> None:
    busy = assess(_rec(loopS=8.0, loopWaitS=1.5))  # running 80 %, runnable-waiting 15 %
    assert busy["saturated"] == (
        "worker 0 was short of CPU: its event loop was busy or waiting for a core 95%"
    )
    limited = assess(_rec(quotaCores=0.25, processS=2.4))  # 0.24 of 0.25 cores
    assert "it used 96% of its 0.25-core CPU limit" in limited["saturated"]
    throttled = assess(_rec(quotaCores=2.0, periods=100, throttled=40, throttledS=1.5))
    assert "CPU-throttled in 40 of 100 periods (1.5s)" in throttled["saturated"]
    assert throttled["demand"] == 1.0  # it wanted more than its limit gave


def _merged(cpu: list[dict[str, Any]], workers: int = 2) -> RunResults:
    """Results of W workers that sent their 100/s on time, with these CPU records."""
    parts = []
    for i in range(workers):
        s = WorkerSummary(load_model="constant", measured_s=10.0, expected=500.0, worker_count=2)
        s.workers = [i]
        for _ in range(500):
            record_seconds(s.hists["latency"], 0.02)
            record_seconds(s.hists["schedule_lag"], 0.0002)
        s.counts.update(sent=500, ok=500, good=500)
        s.last_attempt_s = 9.99
        s.cpu = [r for r in cpu if r["worker"] == i]
        parts.append(s)
    merged = WorkerSummary.from_json(merge(parts).to_json())  # the wire form keeps it
    return compute_results(merged)


def test_the_merged_result_names_the_starved_worker_and_the_workers_that_suffice() -> None:
    calm = _merged([_rec(worker=0), _rec(worker=1)])
    assert [c.worker for c in calm.generator.cpu] == [0, 1]
    assert generator_saturation(calm) is None
    # Worker 1 used 96 % of a 0.5-core limit: d = 0.96, ceil(2 × 0.96 × 1.25) = 3.
    r = _merged([_rec(worker=0), _rec(worker=1, quotaCores=0.5, processS=4.8)])
    why = generator_saturation(r)
    assert why is not None
    assert "worker 1 was short of CPU: it used 96% of its 0.5-core CPU limit" in why
    assert "run with load.workers >= 3 (or a higher CPU limit)" in why
    judged = verdict([], r.metrics, saturation=why)
    assert (judged.verdict, judged.reason) == ("Inconclusive", "GeneratorSaturated")
    # A loop at 100 % on both: ceil(2 × 1.0 × 1.25) = 3, no limit to raise.
    full = _merged([_rec(worker=i, loopS=9.6, loopWaitS=0.4) for i in range(2)])
    assert "run with load.workers >= 3;" not in (generator_saturation(full) or "")
    assert (generator_saturation(full) or "").endswith("run with load.workers >= 3")


# -- a real worker under a CPU limit ----------------------------------------------------

QUOTA_US, PERIOD_US = 2_000, 100_000
"""0.02 of a core: far below what 800 req/s costs a worker (~0.05 core at best)."""


@contextlib.contextmanager
def cpu_limited_group() -> Iterator[Path]:
    """A child cgroup with a CPU limit of QUOTA_US per PERIOD_US (v1 cpu controller, or
    v2 with cpu.max); skips the test when this machine lets us create none."""
    root = Path("/sys/fs/cgroup")
    name = f"surge-test-{os.getpid()}"
    made: Path | None = None
    try:
        if (root / "cpu" / "cpu.cfs_quota_us").exists():
            made = root / "cpu" / name
            made.mkdir()
            (made / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (made / "cpu.cfs_quota_us").write_text(str(QUOTA_US))
        elif "cpu" in (root / "cgroup.controllers").read_text().split():
            with contextlib.suppress(OSError):
                (root / "cgroup.subtree_control").write_text("+cpu")
            made = root / name
            made.mkdir()
            (made / "cpu.max").write_text(f"{QUOTA_US} {PERIOD_US}")
        else:
            pytest.skip("no cgroup cpu controller here")
    except OSError as exc:
        if made is not None:
            with contextlib.suppress(OSError):
                made.rmdir()
        pytest.skip(f"cannot create a CPU-limited cgroup here: {exc}")
    try:
        yield made
    finally:
        # The worker has exited by now; anything left goes back to the parent first.
        with contextlib.suppress(OSError):
            for pid in (made / "cgroup.procs").read_text().split():
                (made.parent / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            made.rmdir()


@pytest.mark.timeout(120)
async def test_a_cpu_limited_worker_ends_inconclusive(tmp_path: Path) -> None:
    # One `surge worker` process, as `surge run` spawns it, asked for a rate one worker
    # sends with ease; once its load has started (half a second into the warm-up, its
    # imports done) it is moved into a cgroup that gives it 2 % of a core.
    with cpu_limited_group() as group:
        proc, url = targets.start("fast")
        try:
            spec = make_spec(
                url,
                scenario={"method": "GET", "path": "/", "timeout": "5s"},
                load={
                    "model": "constant",
                    "stages": [{"duration": "3s", "target": 800}],
                    "warmup": "1.5s",
                    "maxInFlight": 400,
                },
            )
            plan = build_plan(spec, name="cpu-starved", namespace="t", run_id="1")
            pids: list[int] = []
            moved: list[int] = []

            def starve(elapsed_s: float) -> None:
                if pids and not moved and elapsed_s >= 0.5:
                    (group / "cgroup.procs").write_text(str(pids[0]))
                    moved.append(pids[0])

            hooks = Hooks(
                on_spawn=lambda i, pid: pids.append(pid),
                on_tick=starve,
                extra_args=lambda i: ("--processes", "1"),  # the moved pid is the sender
            )
            done = await supervise(plan, tmp_path, hooks)
        finally:
            targets.stop(proc)
    assert moved and len(done.summaries) == 1, done.problems
    s = done.summaries[0]
    assert len(s.cpu) == 1 and s.cpu[0]["quotaCores"] == QUOTA_US / PERIOD_US
    r = compute_results(merge(done.summaries))
    cpu = r.generator.cpu[0]
    print(cpu)
    assert cpu.saturated is not None and "CPU-throttled" in cpu.saturated
    why = generator_saturation(r)
    assert why is not None and "worker 0 was short of CPU" in why, why
    needed = int(why.split("load.workers >= ")[1].split()[0].rstrip(";"))
    assert needed >= 2 and "(or a higher CPU limit)" in why
    judged = verdict(spec.parsed_thresholds(), r.metrics, saturation=why)
    assert (judged.verdict, judged.reason) == ("Inconclusive", "GeneratorSaturated")
