"""Collection: termination message first, log as fallback, missing workers named."""

from __future__ import annotations

from typing import Any

import pytest

from surge.api.loadtest import LoadTestSpec
from surge.api.results import RunResults
from surge.api.results.sections import Window
from surge.loadgen.summary import (
    TOO_LARGE_MARKER,
    WorkerSummary,
    record_seconds,
    summary_line,
    termination_message,
)
from surge.operator.loadtest.collect import analyse
from surge.operator.loadtest.pods import diagnose


def _summary(index: int, latencies_s: list[float], errors: int = 0) -> WorkerSummary:
    s = WorkerSummary(
        loadtest="alice",
        run_id="1",
        workers=[index],
        worker_count=2,
        measured_s=10.0,
        expected=10.0 * len(latencies_s) / 10.0,
    )
    for v in latencies_s:
        record_seconds(s.hists["latency"], v)
        record_seconds(s.hists["service"], v)
    s.counts["sent"] = len(latencies_s) + errors
    s.counts["ok"] = len(latencies_s)
    s.counts["good"] = len(latencies_s)
    s.counts["http_5xx"] = errors
    return s


def _pod(idx: int, message: str | None) -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": 0}
    if message is not None:
        term["message"] = message
    return {
        "metadata": {
            "name": f"w-{idx}",
            "annotations": {"batch.kubernetes.io/job-completion-index": str(idx)},
        },
        "status": {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": term}}]},
    }


def _spec(thresholds: list[str]) -> LoadTestSpec:
    return LoadTestSpec.model_validate(
        {
            "target": {"url": "http://127.0.0.1:1"},
            "load": {
                "model": "constant",
                "stages": [{"duration": "10s", "target": 2}],
                "workers": 2,
            },
            "thresholds": thresholds,
        }
    )


def test_merges_message_and_log_fallback() -> None:
    a = _summary(0, [0.010] * 10)
    b = _summary(1, [0.030] * 10)
    pods = [_pod(0, termination_message(a)), _pod(1, TOO_LARGE_MARKER)]
    logs = {"w-1": "starting\n" + summary_line(b) + "\n"}
    out = analyse(
        _spec(["latency.p95 < 50ms"]), diagnose(pods, 2), lambda p: logs.get(p["metadata"]["name"])
    )
    assert out.missing == [] and out.reported == 2
    assert out.results is not None
    assert out.results.requests.sent == 20
    assert out.results.latency.p50 == pytest.approx(10.0, rel=0.01)
    assert out.results.latency.p95 == pytest.approx(30.0, rel=0.01)
    assert out.judgement.passed and out.summary.verdict == "Passed"
    assert out.judgement.thresholds[0].passed is True
    assert out.judgement.thresholds[0].display.startswith("latency.p95 = ")


def test_missing_worker_is_named() -> None:
    a = _summary(0, [0.010] * 10)
    pods = [_pod(0, termination_message(a)), _pod(1, None)]
    out = analyse(_spec([]), diagnose(pods, 2), lambda p: "no summary here")
    assert out.missing == [1]
    assert out.reported == 1
    assert out.summary.verdict == "Inconclusive"


def test_failing_threshold_shows_measured_value() -> None:
    a = _summary(0, [0.200] * 10, errors=5)
    b = _summary(1, [0.200] * 10)
    pods = [_pod(0, termination_message(a)), _pod(1, termination_message(b))]
    out = analyse(
        _spec(["latency.p95 < 100ms", "errors.rate < 1%"]), diagnose(pods, 2), lambda p: None
    )
    assert not out.judgement.passed and out.judgement.reason == "ThresholdFailed"
    assert out.summary.verdict == "Failed"
    assert [t.passed for t in out.judgement.thresholds] == [False, False]
    assert out.judgement.thresholds[0].measured == pytest.approx(0.2, rel=0.01)
    assert (
        "latency.p95 = 200" in out.judgement.message
        and "errors.rate = 20%" in out.judgement.message
    )


def test_no_summaries_fails_without_crashing() -> None:
    out = analyse(
        _spec(["latency.p95 < 100ms"]), diagnose([_pod(0, None), _pod(1, None)], 2), lambda p: None
    )
    assert out.results is None and out.missing == [0, 1]
    assert not out.judgement.passed and out.judgement.reason == "WorkerMissingSummary"
    assert out.judgement.thresholds[0].measured is None


def test_cluster_metrics_join_the_thresholds() -> None:
    from surge.results import ClusterMetrics

    a = _summary(0, [0.010] * 10)
    b = _summary(1, [0.010] * 10)
    pods = [_pod(0, termination_message(a)), _pod(1, termination_message(b))]
    seen: list[Window] = []

    def reader(results: RunResults) -> ClusterMetrics:
        seen.append(results.window)
        return ClusterMetrics(
            section={
                "window": {
                    "start": results.window.start,
                    "end": results.window.end,
                    "stepSeconds": 1,
                },
                "queries": {},
                "replicas": {"max": 3},
            },
            metrics={"replicas.max": 3.0, "gpu.mean": None},
            no_data={"gpu_util": "no data"},
        )

    spec = _spec(["replicas.max <= 4", "gpu.mean < 50"])
    out = analyse(spec, diagnose(pods, 2), lambda p: None, reader)
    assert seen[0].measured_seconds == 10.0
    assert out.results is not None and out.results.cluster is not None
    assert out.results.cluster.replicas is not None and out.results.cluster.replicas.max == 3
    assert [t.passed for t in out.judgement.thresholds] == [True, False]
    assert out.judgement.reason == "NoData"
    assert out.metrics_condition["status"] == "False"
    assert "gpu_util" in out.metrics_condition["message"]


def test_without_prometheus_cluster_thresholds_have_no_data() -> None:
    a = _summary(0, [0.010] * 10)
    pods = [_pod(0, termination_message(a)), _pod(1, termination_message(a))]
    out = analyse(_spec(["replicas.max <= 4"]), diagnose(pods, 2), lambda p: None)
    assert out.metrics_condition["reason"] == "NoPrometheus"
    assert out.judgement.thresholds[0].measured is None
    assert not out.judgement.passed
