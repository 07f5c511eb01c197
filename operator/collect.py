"""From finished worker pods to results and verdicts.

Each worker's summary is read from its termination message first and from its log
when the message is missing or marked too large. Summaries merge exactly (HDR
histogram addition). A worker that reported nothing is named, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from surge.api.loadtest import LoadTestSpec
from surge.loadgen.aggregate import compute_results
from surge.loadgen.summary import WorkerSummary, first_summary, merge
from surge.operator.pods import Workers, termination_message
from surge.results import ClusterMetrics, metrics_available_condition
from surge.verdicts import evaluate

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
    results: dict[str, Any] | None
    thresholds: list[dict[str, Any]]
    summary: dict[str, Any]
    passed: bool
    reason: str
    message: str
    thresholds_status: Literal["True", "False"]
    reported: int = 0
    missing: list[int] = field(default_factory=list)
    metrics_condition: dict[str, str] = field(default_factory=lambda: dict(NO_PROMETHEUS))


def read_summary(pod: dict[str, Any] | None, read_log: LogReader) -> WorkerSummary | None:
    """The worker's summary from its termination message, else its log; None when neither
    holds one."""
    if pod is None:
        return None
    return first_summary([lambda: termination_message(pod), lambda: read_log(pod)])


def analyse(
    spec: LoadTestSpec, workers: Workers, read_log: LogReader, cluster: ClusterReader | None = None
) -> Outcome:
    n = spec.load.workers
    found: list[WorkerSummary] = []
    missing: list[int] = []
    for idx in range(n):
        s = read_summary(workers.by_index.get(idx), read_log)
        if s is None:
            missing.append(idx)
        else:
            found.append(s)
    results = compute_results(merge(found)) if found else None
    metrics_condition = dict(NO_PROMETHEUS)
    if results is not None and cluster is not None:
        cm = cluster(results)
        results["cluster"] = cm.section
        results["metrics"].update(cm.metrics)
        metrics_condition = metrics_available_condition(cm)
    metrics: dict[str, float | None] = dict(results["metrics"]) if results else {}
    verdicts = evaluate(spec.parsed_thresholds(), metrics)
    failed = [v for v in verdicts if not v.passed]
    if not verdicts:
        reason, message = "NoThresholds", "no thresholds set"
    elif failed:
        reason = "NoData" if failed[0].measured is None else "ThresholdFailed"
        message = "; ".join(v.display for v in failed)
    else:
        reason, message = "AllThresholdsPassed", "; ".join(v.display for v in verdicts)
    passed = not failed and results is not None
    if results is None:
        reason, message = "WorkerMissingSummary", "no worker reported a summary"
    summary = dict((results or {}).get("summary") or {})
    if summary.get("targetRps") is None and spec.load.model != "closed":
        summary["targetRps"] = spec.load.peak
    if not passed:
        summary["verdict"] = "Failed"
    else:
        summary["verdict"] = "Inconclusive" if missing else "Passed"
    return Outcome(
        results=results,
        thresholds=[v.model_dump(mode="json", by_alias=True) for v in verdicts],
        summary=summary,
        passed=passed,
        reason=reason,
        message=message,
        thresholds_status="True" if passed else "False",
        reported=len(found),
        missing=missing,
        metrics_condition=metrics_condition,
    )
