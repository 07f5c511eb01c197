"""Diagnosing worker pods from their Kubernetes JSON."""

from __future__ import annotations

from typing import Any

from surge.operator.loadtest.pods import diagnose, exit_code, termination_message


def pod(
    idx: int,
    phase: str = "Running",
    *,
    waiting: str | None = None,
    unschedulable: str | None = None,
    terminated: dict[str, Any] | None = None,
    created: str = "2026-11-27T10:00:00Z",
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if waiting:
        status["containerStatuses"] = [
            {"state": {"waiting": {"reason": waiting, "message": "boom"}}}
        ]
    if terminated:
        status["containerStatuses"] = [{"state": {"terminated": terminated}}]
    if unschedulable:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        ]
    return {
        "metadata": {
            "name": f"w-{idx}",
            "creationTimestamp": created,
            "annotations": {"batch.kubernetes.io/job-completion-index": str(idx)},
        },
        "status": status,
    }


def test_all_pods_running() -> None:
    w = diagnose([pod(0), pod(1)], 2)
    assert w.running == 2 and not w.finished
    assert w.fatal is None


def test_missing_pods_wait() -> None:
    w = diagnose([pod(0)], 3)
    assert w.waiting is not None and "1 of 3" in w.waiting.message
    assert w.running == 1


def test_unschedulable_is_reported_not_fatal() -> None:
    msg = "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector."
    w = diagnose([pod(0), pod(1, "Pending", unschedulable=msg)], 2)
    assert w.fatal is None
    assert w.waiting is not None and w.waiting.reason == "Unschedulable"
    assert msg in w.waiting.message


def test_image_pull_error_is_fatal() -> None:
    w = diagnose([pod(0, "Pending", waiting="ImagePullBackOff")], 1)
    assert w.fatal is not None and w.fatal.reason == "ImagePullError"


def test_crash_loop_is_fatal() -> None:
    w = diagnose([pod(0, waiting="CrashLoopBackOff")], 1)
    assert w.fatal is not None and w.fatal.reason == "CrashLoopBackOff"


def test_finished_and_messages() -> None:
    done = {"exitCode": 0, "message": "SURGE-SUMMARY-Z abc"}
    w = diagnose(
        [pod(0, "Succeeded", terminated=done), pod(1, "Failed", terminated={"exitCode": 3})], 2
    )
    assert w.finished and w.succeeded == 1 and w.failed == 1
    assert termination_message(w.by_index[0]) == "SURGE-SUMMARY-Z abc"
    assert exit_code(w.by_index[1]) == 3


def test_failed_worker_is_fatal_with_its_exit_code() -> None:
    w = diagnose([pod(0), pod(1, "Failed", terminated={"exitCode": 2, "message": "bad plan"})], 2)
    assert w.fatal is not None
    assert w.fatal.reason == "WorkerFailed"
    assert w.fatal.message == "pod w-1 exited 2: bad plan"


def test_newest_pod_per_index_wins() -> None:
    old = pod(0, "Failed", created="2026-11-27T10:00:00Z")
    new = pod(0, "Running", created="2026-11-27T10:05:00Z")
    w = diagnose([new, old], 1)
    assert w.running == 1 and w.failed == 0
