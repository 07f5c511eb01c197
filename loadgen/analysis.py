"""Merge, judge, summarise: the one path from worker summaries to judged RunResults,
shared by the operator (surge.operator.loadtest.collect) and `surge run`
(surge.loadgen.local). Pure but for the cluster reader it is given.

Order matters: a sweep's steps go in first (the window then spans every step), then the
cluster's metrics for that window, then a sweep's capacity (it needs the cluster's
replicas), then the verdict, which is recorded in the results with the thresholds as
judged, so every reader shows the verdict the run got.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from surge.api.loadtest import LoadTestSpec
from surge.api.results import RunResults, RunVerdict, Summary
from surge.api.results.cluster import ClusterSection
from surge.api.results.sections import TimeseriesPoint
from surge.loadgen.aggregate import compute_results
from surge.loadgen.summary import WorkerSummary, merge
from surge.loadgen.sweep_results import with_sweep
from surge.loadgen.trace import trace_results
from surge.results.capacity import apply_capacity
from surge.results.cluster import ClusterMetrics
from surge.verdicts import Judgement, generator_saturation, sweep_verdict, verdict

ClusterReader = Callable[[RunResults], ClusterMetrics]
"""Given the merged results (for their measured window), what Prometheus says."""


@dataclass(frozen=True, slots=True)
class Replicas:
    """A sweep's target replicas where Prometheus has no series, and where they came from."""

    count: int | None
    source: str


@dataclass(slots=True)
class Analysis:
    results: RunResults | None
    """None when no worker reported a summary."""
    judgement: Judgement
    summary: Summary
    """The printer columns' numbers, with the verdict (also results.summary)."""
    cluster: ClusterMetrics | None = None


def analyse(
    spec: LoadTestSpec,
    summaries: Sequence[WorkerSummary],
    *,
    missing: Sequence[int] = (),
    failed_workers: int = 0,
    worker_count: int | None = None,
    timeseries: Sequence[TimeseriesPoint] | None = None,
    cluster: ClusterReader | None = None,
    replicas: Replicas = Replicas(None, "given"),
) -> Analysis:
    """Merge the summaries, add a sweep's steps, the cluster and the capacity, judge, and
    record the verdict in the results. `missing`: workers that reported nothing;
    `failed_workers`: workers that exited non-zero; `worker_count`: the planned workers
    (default: what the summaries say)."""
    thresholds = spec.parsed_thresholds()
    if not summaries:
        judged = verdict(thresholds, None, missing_workers=missing, failed_workers=failed_workers)
        return Analysis(None, judged, _summary(Summary(), spec, judged))
    merged = merge(summaries)
    if worker_count is not None:
        merged.worker_count = worker_count
    results = compute_results(merged, timeseries=timeseries)
    with_sweep(results, merged, spec)  # first: the cluster window then spans every step
    results.trace = trace_results(spec.load, merged.series)  # the curve beside the counts
    seen = None
    if cluster is not None:
        seen = cluster(results)
        results.cluster = ClusterSection.model_validate(seen.section)
        results.metrics.update(seen.metrics)
    if results.sweep is not None:
        apply_capacity(results, replicas=replicas.count, source=replicas.source)
        judged = sweep_verdict(
            results, thresholds, missing_workers=missing, failed_workers=failed_workers
        )
    else:
        judged = verdict(
            thresholds,
            results.metrics,
            missing_workers=missing,
            failed_workers=failed_workers,
            saturation=generator_saturation(results),
        )
    results.thresholds = list(judged.thresholds)
    results.verdict = RunVerdict(
        outcome=judged.verdict, reason=judged.reason, message=judged.message
    )
    results.summary = _summary(results.summary, spec, judged)
    return Analysis(results, judged, results.summary, seen)


def _summary(summary: Summary, spec: LoadTestSpec, judged: Judgement) -> Summary:
    """The summary with the verdict; an open loop's target from the spec when the run had
    none to measure it by."""
    out = summary.model_copy()
    if out.target_rps is None and spec.load.model != "closed":
        out.target_rps = spec.load.peak
    out.verdict = judged.verdict
    return out
