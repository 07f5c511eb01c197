"""A verdict that knows when it cannot be trusted: sends never leave early, their lag is
reported exactly, and a generator that was the bottleneck makes the run Inconclusive
(GeneratorSaturated) with the worker count that would have sufficed.

The engine tests run one in-process worker against the bench's "fast" target in its own
process (surge.bench.targets), as tests/loadgen/test_span.py does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from surge.api.loadtest import LoadTestSpec
from surge.api.results import load_results
from surge.api.thresholds import parse_threshold
from surge.bench import targets
from surge.loadgen.aggregate import compute_results
from surge.loadgen.engine import Engine
from surge.loadgen.outcome import Outcome
from surge.loadgen.plan import build_plan
from surge.loadgen.recorder import Recorder
from surge.loadgen.summary import WorkerSummary, record_seconds, termination_message
from surge.operator.loadtest.collect import analyse
from surge.operator.loadtest.pods import diagnose
from surge.verdicts import LAG_P99_BOUND_S, generator_saturation, verdict
from tests.loadgen.conftest import make_spec

pytestmark = pytest.mark.timeout(90)


def _summary(**over: Any) -> WorkerSummary:
    """A 10 s open-loop window at a 100/s target, 1000 sends, all on time."""
    s = WorkerSummary(load_model="constant", measured_s=10.0, expected=1000.0, worker_count=2)
    s.workers = [0, 1]
    for _ in range(1000):
        record_seconds(s.hists["latency"], 0.02)
        record_seconds(s.hists["schedule_lag"], 0.0002)
    s.counts.update(sent=1000, ok=1000, good=1000)
    s.last_attempt_s, s.lag_min_s = 9.99, 0.00001
    for k, v in over.items():
        setattr(s, k, v)
    return s


def test_an_on_time_generator_is_trusted() -> None:
    assert generator_saturation(compute_results(_summary())) is None


def test_lag_late_sends_and_drops_each_saturate() -> None:
    lagging = _summary()
    for _ in range(30):  # 3 % of the sends 80 ms late: the p99 is 80 ms
        record_seconds(lagging.hists["schedule_lag"], 0.080)
    why = generator_saturation(compute_results(lagging))
    assert why is not None and "schedule lag p99 80ms > 50ms" in why
    assert "load.workers >= 3" in why  # 2 workers sent the whole rate: one more, at least

    # The window's last sends went on 6 s past its end, at 1000 / 16 s: about 62/s of 100/s.
    late = _summary(last_attempt_s=16.0, late_max_s=6.0)
    late.counts["late"] = 400
    why = generator_saturation(compute_results(late))
    assert why is not None and "400 sends left up to 6.00s after the window ended" in why
    assert "load.workers >= 4" in why  # ceil(2 × 100 / 62.5 × 1.25)

    dropping = _summary()
    dropping.counts["dropped"] = 5
    why = generator_saturation(compute_results(dropping))
    assert why is not None and "5 arrivals dropped" in why and "load.maxInFlight" in why
    assert "load.workers" not in why  # more workers do not raise maxInFlight


def test_small_hiccups_and_closed_loops_do_not_saturate() -> None:
    few = _summary()
    few.counts["sent"] = 60  # one stalled send of 60 decides a p99: not judged
    for _ in range(2):
        record_seconds(few.hists["schedule_lag"], 0.200)
    assert generator_saturation(compute_results(few)) is None
    just_late = _summary(last_attempt_s=10.02, late_max_s=0.02)  # within 50 ms of the end
    just_late.counts["late"] = 2
    assert generator_saturation(compute_results(just_late)) is None
    closed = _summary(load_model="closed", expected=None)
    for _ in range(100):
        record_seconds(closed.hists["schedule_lag"], 1.0)
    assert generator_saturation(compute_results(closed)) is None


def test_the_operator_reports_a_saturated_generator_as_inconclusive() -> None:
    spec = LoadTestSpec.model_validate(
        {
            "target": {"url": "http://127.0.0.1:1"},
            "load": {"model": "constant", "stages": [{"duration": "10s", "target": 100}]},
            "thresholds": ["latency.p95 < 1s"],
        }
    )
    late = _summary(last_attempt_s=16.0, late_max_s=6.0, worker_count=1, workers=[0])
    late.counts["late"] = 400
    term = {"exitCode": 0, "message": termination_message(late)}
    pod = {
        "metadata": {
            "name": "w-0",
            "annotations": {"batch.kubernetes.io/job-completion-index": "0"},
        },
        "status": {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": term}}]},
    }
    out = analyse(spec, diagnose([pod], 1), lambda p: None)
    assert (out.judgement.verdict, out.judgement.reason) == ("Inconclusive", "GeneratorSaturated")
    assert out.summary.verdict == "Inconclusive"
    assert out.thresholds_held  # ThresholdsPassed still says what the thresholds did


async def test_no_send_leaves_before_its_due_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # 400/s: gaps of 2.5 ms, so most waits are shorter than a timer tick, where an early
    # wake-up (or no sleep at all) used to send up to ~1 ms ahead of the schedule.
    lags: list[float] = []
    record = Recorder.record

    def spy(self: Recorder, intended_at: float, out: Outcome) -> None:
        lags.append(out.sent_at - intended_at)
        record(self, intended_at, out)

    monkeypatch.setattr(Recorder, "record", spy)
    proc, url = targets.start("fast")
    try:
        spec = make_spec(
            url,
            scenario={"method": "GET", "path": "/", "timeout": "5s"},
            load={"model": "constant", "stages": [{"duration": "2s", "target": 400}]},
        )
        summary = await Engine(build_plan(spec, name="due", namespace="t", run_id="1")).run()
    finally:
        targets.stop(proc)
    r = compute_results(summary)
    assert len(lags) == summary.counts["sent"] == 800
    assert min(lags) >= 0.0, sorted(lags)[:5]
    assert summary.counts["early"] == 0 and r.schedule_lag.early == 0
    # The exact minimum is reported, not the histogram's 1 µs floor.
    assert r.metrics["schedule_lag.min"] == pytest.approx(min(lags))
    lags.sort()
    print(
        f"lag p50 {lags[400] * 1e3:.3f} ms, p99 {lags[792] * 1e3:.3f} ms, max {lags[-1] * 1e3:.3f}"
    )
    assert (r.metrics["schedule_lag.p99"] or 0) < LAG_P99_BOUND_S
    assert generator_saturation(r) is None


async def test_a_starved_generator_ends_inconclusive() -> None:
    # One worker asked for several times what one Python process sends (test_span.py).
    asked = 300_000.0  # (60,000 was enough before the task-free send path, #29)
    proc, url = targets.start("fast")
    try:
        spec = make_spec(
            url,
            scenario={"method": "GET", "path": "/", "timeout": "5s"},
            load={
                "model": "constant",
                "stages": [{"duration": "1s", "target": asked}],
                "maxInFlight": 200,
            },
            safety={"maxRate": asked},
            thresholds=["latency.p95 < 10s", "throughput.achieved > 95%"],
        )
        summary = await Engine(build_plan(spec, name="starved", namespace="t", run_id="1")).run()
    finally:
        targets.stop(proc)
    r = compute_results(summary)
    why = generator_saturation(r)
    assert why is not None and "load.workers >= " in why, why
    needed = int(why.split("load.workers >= ")[1].split()[0].rstrip(";"))
    sent = r.throughput.sent_rps
    assert sent is not None
    assert needed >= asked / sent  # enough workers at the rate this one managed
    judged = verdict([parse_threshold(t) for t in spec.thresholds], r.metrics, saturation=why)
    assert (judged.verdict, judged.reason) == ("Inconclusive", "GeneratorSaturated")
    assert not judged.thresholds[1].passed  # still reported, but not the verdict
    print(f"sent {sent:.0f}/s of {asked:.0f}/s: {why}")


def test_surge_run_says_inconclusive_and_why(tmp_path: Path) -> None:
    # `surge run` end to end (its worker process, the merge, the verdict line, --out)
    # with one worker asked for far more than it sends.
    proc, url = targets.start("fast")
    try:
        manifest = tmp_path / "lt.yaml"
        manifest.write_text(
            "apiVersion: surge.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: starved}\n"
            f"spec:\n  target: {{url: '{url}'}}\n"
            "  scenario: {method: GET, path: /, timeout: 5s}\n"
            "  load: {model: constant, stages: [{duration: 1s, target: 300000}]}\n"
            "  safety: {maxRate: 300000}\n"
            "  thresholds: ['latency.p95 < 10s']\n"
        )
        out = tmp_path / "results.json"
        argv = [sys.executable, "-m", "surge.loadgen.commands", "run", str(manifest)]
        p = subprocess.run(
            [*argv, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=80,
            check=False,
        )
    finally:
        targets.stop(proc)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "verdict: Inconclusive (GeneratorSaturated: the generator was the bottleneck" in (
        " ".join(p.stdout.split())  # rich wraps long lines
    )
    r = load_results(json.loads(out.read_text()), str(out))
    assert r.verdict is not None
    assert (r.verdict.outcome, r.verdict.reason) == ("Inconclusive", "GeneratorSaturated")
    assert "load.workers >= " in r.verdict.message
    assert len(r.thresholds) == 1  # judged and kept all the same
