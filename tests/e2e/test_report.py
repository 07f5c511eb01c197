"""`surge report NAME` on a LoadTest in a real API server reports the verdict the run
recorded: a run judged Inconclusive (GeneratorSaturated) whose thresholds all held is
reported Inconclusive, never Passed, from status.results as the CRD stores it (its schema
is generated from RunResults, so a field the model lacks would be pruned here)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from kubernetes import client

from surge.api.base import GROUP, VERSION
from surge.api.results import RunResults, RunVerdict, Verdict
from surge.api.status import Reason
from surge.api.thresholds import parse_threshold
from surge.loadgen.aggregate import compute_results
from surge.loadgen.summary import WorkerSummary, record_seconds
from surge.verdicts import evaluate
from tests.e2e.operator_support import create, get, loadtest
from tests.support.cluster import REPO_ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

SATURATED = "the generator was the bottleneck: 12 sends left up to 0.40s after the window ended"


def _saturated_run() -> RunResults:
    """A run whose thresholds held and whose generator fell behind."""
    s = WorkerSummary(loadtest="saturated", load_model="constant", measured_s=10.0, expected=1000.0)
    s.start_epoch = 1_700_000_000.0
    for i in range(990):
        record_seconds(s.hists["latency"], 0.02 + i * 1e-5)
    s.counts.update(sent=990, ok=990, good=990, late=12)
    results = compute_results(s)
    thresholds = [parse_threshold(t) for t in ("latency.p95 < 2s", "errors.rate < 5%")]
    results.thresholds = evaluate(thresholds, results.metrics)
    assert all(t.passed for t in results.thresholds)
    results.verdict = RunVerdict(
        outcome=Verdict.INCONCLUSIVE, reason=Reason.GENERATOR_SATURATED, message=SATURATED
    )
    results.summary.verdict = Verdict.INCONCLUSIVE
    return results


def _status(results: dict[str, Any], passed: list[dict[str, Any]]) -> dict[str, Any]:
    """The status the operator writes when it ends such a run (phase Failed, Completed with
    the reason), with every threshold held."""
    return {
        "phase": "Failed",
        "runId": "1",
        "summary": {"verdict": "Inconclusive", "achievedRps": 99.0},
        "conditions": [
            {
                "type": "Completed",
                "status": "True",
                "reason": "GeneratorSaturated",
                "message": SATURATED,
            },
            {
                "type": "ThresholdsPassed",
                "status": "True",
                "reason": "AllThresholdsPassed",
                "message": "every threshold held",
            },
        ],
        "results": results,
        "thresholds": passed,
    }


def _report(name: str, namespace: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "surge", "report", name, "-n", namespace],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _put(api: client.ApiClient, namespace: str, name: str, status: dict[str, Any]) -> None:
    create(api, namespace, loadtest(name, "http://127.0.0.1:9"))
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "loadtests", name, {"status": status}
    )


def test_report_of_an_inconclusive_run_with_passing_thresholds(
    api_client: client.ApiClient, namespace: str
) -> None:
    results = _saturated_run()
    passed = [t.wire() for t in results.thresholds]
    _put(api_client, namespace, "saturated", _status(results.to_json(), passed))
    stored = get(api_client, namespace, "saturated")["status"]["results"]
    # A merge patch drops nulls (a metric without data); the schema pruned nothing else.
    measured = {k: v for k, v in results.metrics.items() if v is not None}
    assert RunResults.model_validate(stored) == results.model_copy(update={"metrics": measured})
    text = _report("saturated", namespace)
    assert "**Verdict: Inconclusive (GeneratorSaturated)**" in text
    assert "Verdict: Passed" not in text


def test_report_of_results_written_before_the_verdict_was_recorded(
    api_client: client.ApiClient, namespace: str
) -> None:
    # Version 1 kept the verdict only in status.summary: the report takes it from there.
    results = _saturated_run()
    passed = [t.wire() for t in results.thresholds]
    legacy = results.to_json() | {"version": 1}
    del legacy["verdict"], legacy["thresholds"]
    _put(api_client, namespace, "legacy", _status(legacy, passed))
    text = _report("legacy", namespace)
    assert "**Verdict: Inconclusive (GeneratorSaturated)**" in text
