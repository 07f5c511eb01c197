"""From finished worker pods to results and verdicts.

Each worker's summary is read from its termination message first and from its log
when the message is missing or marked too large. Summaries merge exactly (HDR
histogram addition). A worker that reported nothing is named, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from surge.api.loadtest import LoadTestSpec
from surge.api.status import Summary
from surge.loadgen.aggregate import compute_results
from surge.loadgen.summary import WorkerSummary, first_summary, merge
from surge.loadgen.sweep_results import with_sweep
from surge.loadgen.trace import trace_results
from surge.operator.kube.client import Kube
from surge.operator.loadtest.pods import Workers, termination_message
from surge.results import ClusterMetrics, metrics_available_condition
from surge.results.capacity import apply_capacity
from surge.verdicts import (
    Judgement,
    generator_saturation,
    sweep_verdict,
    thresholds_outcome,
    verdict,
)

LogReader = Callable[[dict[str, Any]], str | None]
ClusterReader = Callable[[dict[str, Any]], ClusterMetrics]
"""Given the merged results (for their measured window), what Prometheus says."""

NO_PROMETHEUS = {
    "type": "MetricsAvailable",
    "status": "Unknown",
    "reason": "NoPrometheus",
    "message": "no Prometheus configured (spec.prometheus.url or the operator's "
    "--prometheus-url): cluster metrics were not collected",
}


@dataclass
class Outcome:
    """The merged results of a run and what they mean."""

    results: dict[str, Any] | None
    judgement: Judgement
    summary: Summary
    thresholds_held: bool
    thresholds_reason: str
    thresholds_message: str
    reported: int = 0
    missing: list[int] = field(default_factory=list)
    metrics_condition: dict[str, str] = field(default_factory=lambda: dict(NO_PROMETHEUS))


def read_summary(pod: dict[str, Any] | None, read_log: LogReader) -> WorkerSummary | None:
    """The worker's summary from its termination message, else its log; None when neither
    holds one."""
    if pod is None:
        return None
    return first_summary([lambda: termination_message(pod), lambda: read_log(pod)])


def sweep_replicas(spec: LoadTestSpec, kube: Kube, namespace: str) -> int | None:
    """A sweep's target replicas, from its Deployment (where Prometheus has no series)."""
    ref = spec.target.deployment_ref
    if spec.load.sweep is None or ref is None:
        return None
    dep = kube.deployment(ref.namespace or namespace, ref.name)
    got = ((dep or {}).get("status") or {}).get("replicas")
    return int(got) if got else None


def analyse(
    spec: LoadTestSpec,
    workers: Workers,
    read_log: LogReader,
    cluster: ClusterReader | None = None,
    replicas: int | None = None,
) -> Outcome:
    """replicas: a sweep's target replicas as the operator read them from the Deployment
    (used where Prometheus has no replica series for a step)."""
    n = spec.load.workers
    found: list[WorkerSummary] = []
    missing: list[int] = []
    for idx in range(n):
        s = read_summary(workers.by_index.get(idx), read_log)
        if s is None:
            missing.append(idx)
        else:
            found.append(s)
    merged = merge(found) if found else None
    results = compute_results(merged) if merged is not None else None
    if results is not None and merged is not None:
        with_sweep(results, merged, spec)  # first: the cluster window then spans every step
        if (trace := trace_results(spec.load, merged.series)) is not None:
            results["trace"] = trace  # the replayed curve beside the achieved rates
    metrics_condition = dict(NO_PROMETHEUS)
    if results is not None and cluster is not None:
        cm = cluster(results)
        results["cluster"] = cm.section
        results["metrics"].update(cm.metrics)
        metrics_condition = metrics_available_condition(cm)
    if results is not None and "sweep" in results:
        apply_capacity(results, replicas=replicas, source="Deployment status")
        judged = sweep_verdict(
            results,
            spec.parsed_thresholds(),
            missing_workers=missing,
            failed_workers=workers.failed,
        )
    else:
        judged = verdict(
            spec.parsed_thresholds(),
            results["metrics"] if results is not None else None,
            missing_workers=missing,
            failed_workers=workers.failed,
            saturation=generator_saturation(results) if results is not None else None,
        )
    if results is None:
        held, reason, message = False, judged.reason, judged.message
    else:
        held, reason, message = thresholds_outcome(judged.thresholds)
    summary = Summary.model_validate((results or {}).get("summary") or {})
    if summary.target_rps is None and spec.load.model != "closed":
        summary.target_rps = spec.load.peak
    summary.verdict = judged.verdict
    return Outcome(
        results=results,
        judgement=judged,
        summary=summary,
        thresholds_held=held,
        thresholds_reason=reason,
        thresholds_message=message,
        reported=len(found),
        missing=missing,
        metrics_condition=metrics_condition,
    )
