"""A sweep's results: each step's own numbers and what the steps found. Pure.

`step_record` is each step through compute_results on its own summary (its own window,
histograms, errors), made by the worker as the step ends; `with_sweep` adds results.sweep
(those steps and the outcome of surge.loadgen.sweep) to compute_results' RunResults. The window
becomes the whole sweep's (first step's window start to the last one's end), so cluster
queries cover every step; replicas, rate per replica and CPU per request are
surge.results.capacity's (they need the cluster).
"""

from __future__ import annotations

from typing import Any

from surge.api.loadtest import LoadTestSpec
from surge.api.results import RunResults
from surge.api.results.sweep import SweepSection, SweepStep
from surge.loadgen.aggregate import compute_results
from surge.loadgen.summary import WorkerSummary
from surge.loadgen.sweep import StepResult, outcome
from surge.verdicts import evaluate, generator_saturation


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def step_record(
    rate: float, summary: WorkerSummary, spec: LoadTestSpec, *, interrupted: bool = False
) -> dict[str, Any]:
    """One step as results.sweep.steps[i] (latencies in ms, rates per second), computed by
    the worker when the step ends: a sweep has one worker, so nothing is merged later, and
    the steps' numbers (not their histograms) fit the pod's termination message."""
    res = compute_results(summary)
    m = res.metrics
    streamed = m.get("ttft.p50") is not None
    thresholds = spec.parsed_thresholds()
    checks = evaluate(thresholds, m)
    return {
        "rate": rate,
        "achievedRps": res.throughput.achieved_rps,
        "sentRps": res.throughput.sent_rps,
        "latency": {k: _ms(m.get(f"latency.{k}")) for k in ("p50", "p95", "p99")},
        "ttft": {k: _ms(m.get(f"ttft.{k}")) for k in ("p50", "p95")} if streamed else None,
        "errorRate": m.get("errors.rate"),
        "requests": res.requests.model_dump(mode="json", by_alias=True),
        "passed": all(c.passed for c in checks),
        "saturated": generator_saturation(res),
        "interrupted": interrupted,
        "thresholds": [c.display for c in checks],
        "window": {"start": res.window.start, "end": res.window.end},
        # What the thresholds read, to judge them again at the capacity step.
        "metrics": {t.metric: m.get(t.metric) for t in thresholds},
    }


def with_sweep(results: RunResults, merged: WorkerSummary, spec: LoadTestSpec) -> None:
    """Add results.sweep (steps and outcome) and stretch results.window over every step,
    in place. A summary without steps (not a sweep) is left alone."""
    sweep = spec.load.sweep
    if merged.sweep is None or sweep is None:
        return
    rows = [SweepStep.model_validate({"index": i, **r}) for i, r in enumerate(merged.sweep)]
    judged = [
        StepResult(r.rate, r.passed, r.saturated is not None) for r in rows if not r.interrupted
    ]
    found = outcome(sweep, judged, interrupted=merged.interrupted)
    results.sweep = SweepSection(
        config=sweep,
        settle_seconds=sweep.settle_s,
        steps=rows,
        max_sustainable_rps=found.max_sustainable_rps,
        first_failing_rps=found.first_failing_rps,
        resolution_rps=found.resolution_rps,
        lower_bound=found.lower_bound,
        stop=found.stop,
        saturated=next((r.saturated for r in rows if r.saturated), None),
    )
    if rows:
        win = results.window
        win.start, win.end = rows[0].window.start, rows[-1].window.end
        win.steps_measured_seconds = merged.measured_s
