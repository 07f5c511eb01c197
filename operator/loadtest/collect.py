"""From finished worker pods to results and verdicts (surge.loadgen.analysis judges).

Each worker's summary is read from its termination message first and from its log
when the message is missing or marked too large. Summaries merge exactly (HDR
histogram addition). A worker that reported nothing is named, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from surge.api.loadtest import LoadTestSpec
from surge.api.results import RunResults, Summary
from surge.api.status import Reason
from surge.loadgen.analysis import ClusterReader, Replicas
from surge.loadgen.analysis import analyse as run_analysis
from surge.loadgen.summary import WorkerSummary, first_summary
from surge.operator.kube.client import Kube
from surge.operator.loadtest.pods import Workers, termination_message
from surge.results import metrics_available_condition
from surge.verdicts import Judgement, thresholds_outcome

LogReader = Callable[[dict[str, Any]], str | None]

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

    results: RunResults | None
    judgement: Judgement
    summary: Summary
    thresholds_held: bool
    thresholds_reason: Reason
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
    found: list[WorkerSummary] = []
    missing: list[int] = []
    for idx in range(spec.load.workers):
        s = read_summary(workers.by_index.get(idx), read_log)
        if s is None:
            missing.append(idx)
        else:
            found.append(s)
    done = run_analysis(
        spec,
        found,
        missing=missing,
        failed_workers=workers.failed,
        cluster=cluster,
        replicas=Replicas(replicas, "Deployment status"),
    )
    judged = done.judgement
    if done.results is None:
        held, reason, message = False, judged.reason, judged.message
    else:
        held, reason, message = thresholds_outcome(judged.thresholds)
    return Outcome(
        results=done.results,
        judgement=judged,
        summary=done.summary,
        thresholds_held=held,
        thresholds_reason=reason,
        thresholds_message=message,
        reported=len(found),
        missing=missing,
        metrics_condition=(
            metrics_available_condition(done.cluster)
            if done.cluster is not None
            else dict(NO_PROMETHEUS)
        ),
    )
