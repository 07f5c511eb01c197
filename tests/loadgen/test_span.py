"""Rates over the real span: a generator that cannot keep up never reports the planned rate.

One in-process worker is asked for far more than one Python process sends against the
bench's "fast" target (its own process, answering at once): the schedule falls behind,
the sends go on past the planned window, and every rate must be the count over the time
in which those requests really left (docs/metrics.md, "The measured window").
"""

from __future__ import annotations

import pytest

from surge.api.thresholds import parse_threshold
from surge.bench import targets
from surge.loadgen.aggregate import compute_results
from surge.loadgen.engine import Engine
from surge.loadgen.plan import build_plan
from surge.loadgen.progress import elapsed_label
from surge.verdicts import evaluate
from tests.loadgen.conftest import make_spec

pytestmark = pytest.mark.timeout(90)

ASKED_RPS = 1_000_000.0
"""Many times what one worker sends or drops on this class of machine (bench: ~30k/s per
core with the target on another core): the run is late by design."""


async def test_a_late_generator_reports_its_real_rate_not_the_planned_one() -> None:
    proc, url = targets.start("fast")
    try:
        spec = make_spec(
            url,
            scenario={"method": "GET", "path": "/", "timeout": "5s"},
            load={
                "model": "constant",
                "stages": [{"duration": "1500ms", "target": ASKED_RPS}],
                "maxInFlight": 200,
            },
            safety={"maxRate": ASKED_RPS},
        )
        plan = build_plan(spec, name="late", namespace="test", run_id="1")
        summary = await Engine(plan, headers={}).run()
    finally:
        targets.stop(proc)

    r = compute_results(summary)
    win, thr, req = r.window, r.throughput, r.requests
    assert win.planned_seconds == pytest.approx(1.5)
    # It fell behind: sends went on past the plan and were counted as late.
    assert win.late_seconds > 0.5, win
    assert req.late > 0 and req.late_max_seconds == pytest.approx(win.late_seconds)
    assert win.end - win.start == pytest.approx(win.measured_seconds)

    # The achieved rate is what the per-second series saw: ok completions in each whole
    # second of the load (the last, partial second is left out), averaged.
    ok_per_s = summary.series["ok"]
    whole = ok_per_s[: int(win.measured_seconds)]
    series_mean = sum(whole) / len(whole)
    assert thr.achieved_rps == pytest.approx(series_mean, rel=0.05)
    assert thr.achieved_rps == pytest.approx(req.ok / win.measured_seconds)
    assert thr.achieved_ratio is not None and thr.achieved_ratio < 0.7
    assert r.metrics["goodput.rps"] == pytest.approx(thr.achieved_rps, rel=0.01)

    verdicts = evaluate([parse_threshold("throughput.achieved > 95%")], r.metrics)
    assert not verdicts[0].passed, verdicts[0].display


async def test_a_generator_that_keeps_up_reports_the_planned_window() -> None:
    proc, url = targets.start("fast")
    try:
        spec = make_spec(
            url,
            scenario={"method": "GET", "path": "/", "timeout": "5s"},
            # 25/s: the last arrival is due 40 ms before the window ends, so a stall shorter
            # than that cannot make it a late send (at 200/s, 5 ms could).
            load={"model": "constant", "stages": [{"duration": "2s", "target": 25}]},
        )
        plan = build_plan(spec, name="ontime", namespace="test", run_id="1")
        summary = await Engine(plan, headers={}).run()
    finally:
        targets.stop(proc)

    r = compute_results(summary)
    assert r.requests.late == 0 and r.requests.late_max_seconds is None
    assert r.window.measured_seconds == pytest.approx(2.0)
    assert r.window.late_seconds == 0.0
    assert r.requests.ok == 50
    assert r.throughput.achieved_rps == pytest.approx(25.0, rel=0.01)
    assert r.throughput.achieved_ratio == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize(
    ("elapsed", "late", "label"),
    [
        (3.2, True, "3/6s"),
        (6.3, True, "6/6s"),
        (24.0, True, "6/6s +18s late"),
        (8.0, False, "6/6s +2s draining"),
    ],
)
def test_progress_shows_real_time_past_the_plan(elapsed: float, late: bool, label: str) -> None:
    assert elapsed_label(6.0, elapsed, late) == label


async def test_a_worker_that_starts_late_keeps_the_shared_timeline() -> None:
    """The barrier's instant passed before this worker learned it (a slow poll): it keeps the
    shared timeline, so its merge with on-time workers stays exact, and its lateness shows as
    schedule lag instead of stretching everyone's span."""
    import time

    from surge.loadgen.worker import run_engine

    proc, url = targets.start("fast")
    try:
        spec = make_spec(
            url,
            scenario={"method": "GET", "path": "/", "timeout": "5s"},
            # 25/s: the last arrival is due 40 ms before the window ends (see above).
            load={"model": "constant", "stages": [{"duration": "1s", "target": 25}]},
        )
        start_at = time.time() - 0.3
        engine = Engine(build_plan(spec, name="slow", namespace="t", run_id="1"), headers={})
        summary = await run_engine(engine, start_at, handle_signals=False)
    finally:
        targets.stop(proc)
    r = compute_results(summary)
    assert summary.start_epoch == pytest.approx(start_at, abs=0.05)
    assert r.requests.ok == 25 and r.requests.late == 0
    assert r.window.measured_seconds == pytest.approx(1.0)
    assert (r.metrics["schedule_lag.max"] or 0) >= 0.25  # the arrivals due before it started
