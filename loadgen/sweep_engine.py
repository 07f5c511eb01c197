"""Running a capacity sweep in one worker: one constant-rate Engine run per step.

Each step is the plan's spec with the load replaced by one constant stage at the step's
rate, load.sweep.settle as its warm-up; it gets its own Engine, hence its own histograms,
and latency counts from the intended send as in every open-loop run. When a step ends
(its in-flight requests finished), it is judged: every threshold on that step's own
results (surge.verdicts.evaluate), and whether the generator kept up
(surge.verdicts.generator_saturation). surge.loadgen.sweep decides the next rate.
"""

from __future__ import annotations

import math
import time
from typing import TextIO

from surge.api.loadtest import Load, Stage
from surge.loadgen.engine import Engine
from surge.loadgen.plan import WorkerPlan, resolve_headers
from surge.loadgen.recorder import PromMetrics
from surge.loadgen.summary import WorkerSummary, merge
from surge.loadgen.sweep import StepResult, next_rate
from surge.loadgen.sweep_results import step_record


def step_plan(plan: WorkerPlan, rate: float) -> WorkerPlan:
    """The plan of one step: a constant load at `rate` for stepDuration, settle excluded."""
    load = plan.spec.load
    assert load.sweep is not None
    step_load = Load.model_construct(
        **{
            **dict(load),
            "model": "constant",
            "sweep": None,
            "stages": [Stage.model_construct(duration=load.sweep.step_duration, target=rate)],
            "start_target": None,
            "warmup": load.sweep.settle_s,
        }
    )
    spec = plan.spec.model_copy(update={"load": step_load})
    return plan.model_copy(update={"spec": spec})


def sweep_summary(plan: WorkerPlan, steps: list[WorkerSummary]) -> WorkerSummary:
    """The whole sweep as one summary: every step's counts and histograms added, the
    measured time their sum; the steps themselves go in `sweep` (set by the caller)."""
    if not steps:
        out = WorkerSummary(
            loadtest=plan.name,
            namespace=plan.namespace,
            run_id=plan.run_id,
            variant=plan.variant,
            load_model="sweep",
            workers=[plan.index],
        )
        out.start_epoch = time.time()
        return out
    out = merge(steps)
    out.load_model = "sweep"
    out.start_epoch = steps[0].start_epoch
    out.window_start_s = steps[0].window_start_s
    out.measured_s = sum(s.measured_s for s in steps)
    # One step's late sends are no lateness of the whole; each step is judged on its own.
    out.last_attempt_s, out.late_max_s, out.cpu = None, 0.0, []
    out.counts["late"] = 0
    return out


class SweepEngine:
    """A sweep's run in one worker; the same surface as Engine (run, stop, prom)."""

    def __init__(
        self,
        plan: WorkerPlan,
        *,
        headers: dict[str, str] | None = None,
        progress: TextIO | None = None,
        prom: bool = False,
        url_override: str | None = None,
    ) -> None:
        self.plan = plan
        self.headers = resolve_headers(plan) if headers is None else headers
        self.progress = progress
        self.url_override = url_override
        self._current: Engine | None = None
        self._stopped = False
        self.prom = (
            PromMetrics(plan.labels, lambda: self._current.in_flight if self._current else 0)
            if prom
            else None
        )

    def stop(self) -> None:
        self._stopped = True
        if self._current is not None:
            self._current.stop()

    async def run(self, t0: float | None = None) -> WorkerSummary:
        """Run steps until the sweep is done or stop(); t0: the first step's start."""
        sweep = self.plan.spec.load.sweep
        assert sweep is not None
        start = time.monotonic() if t0 is None else t0
        records: list[dict[str, object]] = []
        summaries: list[WorkerSummary] = []
        judged: list[StepResult] = []
        rate = next_rate(sweep, judged)
        while rate is not None and not self._stopped:
            offset = max(math.ceil(time.monotonic() - start), 0)
            engine = Engine(
                step_plan(self.plan, rate),
                headers=self.headers,
                progress=self.progress,
                url_override=self.url_override,
                progress_offset_s=offset,
            )
            engine.prom = self.prom
            self._current = engine
            summary = await engine.run(start if not summaries else None)
            self._current = None
            if summary.interrupted or self._stopped:
                summaries.append(summary)
                records.append(step_record(rate, summary, self.plan.spec, interrupted=True))
                break
            record = step_record(rate, summary, self.plan.spec)
            summaries.append(summary)
            records.append(record)
            judged.append(StepResult(rate, bool(record["passed"]), record["saturated"] is not None))
            rate = next_rate(sweep, judged)
        out = sweep_summary(self.plan, summaries)
        out.interrupted = self._stopped
        out.sweep = records
        return out
