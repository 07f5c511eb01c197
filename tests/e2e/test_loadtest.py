"""The LoadTest lifecycle on the real control plane: the operator runs as a local process,
workers run as real local processes (the pod runner, node local-0) against a real Alice.

Each test has its own namespace and its own operator watching only that namespace.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.e2e.operator_support import (
    BIN,
    GROUP,
    PLURAL,
    VERSION,
    Operator,
    alice,
    condition,
    create,
    events,
    get,
    jobs,
    loadtest,
    operator,
    plain,
    pods,
    wait_phase,
)
from tests.support.cluster import wait_until
from tests.support.podrunner import PodRunner

__all__ = ["alice", "operator"]  # fixtures used by the tests below

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


def test_valid_run_succeeds_with_real_numbers(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "lt.yaml"
    manifest.write_text(yaml.safe_dump(loadtest("smoke", alice, cleanup={"workers": "Keep"})))
    subprocess.run(
        [str(BIN / "kubectl"), "apply", "-n", namespace, "-f", str(manifest)],
        check=True,
        timeout=30,
        capture_output=True,
    )
    obj = wait_phase(api_client, namespace, "smoke", {"Succeeded", "Failed"}, operator)
    status = obj["status"]
    assert status["phase"] == "Succeeded", (status.get("message"), operator.tail())
    assert status["summary"]["verdict"] == "Passed"
    assert status["summary"]["achievedRps"] > 10
    assert 15 <= status["results"]["latency"]["p50"] < 500  # Alice answers in 20 ms
    assert status["results"]["requests"]["sent"] >= 40  # 20/s for the 3 s measured
    assert status["workers"]["reported"] == 2
    assert all(t["passed"] for t in status["thresholds"])
    assert condition(obj, "ThresholdsPassed")["status"] == "True"
    assert condition(obj, "WorkersScheduled")["status"] == "True"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    # Placement: both workers ran on local-0, from one Indexed Job.
    (job,) = jobs(api_client, namespace)
    assert job["spec"]["completionMode"] == "Indexed"
    assert {p["spec"].get("nodeName") for p in pods(api_client, namespace)} == {"local-0"}
    want = {
        "RunStarted",
        "WaitingForTarget",
        "WorkersCreated",
        "BarrierOpened",
        "AllThresholdsPassed",
    }
    # kopf posts Events from a queue of its own, after or before the status patch: wait for them.
    wait_until(
        lambda: want <= {e.get("reason") for e in events(api_client, namespace, "smoke")},
        timeout_s=30,
        what=f"Events {sorted(want)} on smoke",
    )
    # Printer columns show the results.
    out = subprocess.run(
        [str(BIN / "kubectl"), "get", "lt", "smoke", "-n", namespace],
        check=True,
        timeout=30,
        capture_output=True,
        text=True,
    ).stdout
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "PHASE", "TARGET", "RPS"]
    assert "Succeeded" in row
    assert "Passed" in row


def test_invalid_spec_fails_with_field_message(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
) -> None:
    # Valid for the CRD schema, invalid for the models: the warm-up outlasts the stages.
    create(api_client, namespace, loadtest("bad", alice, load={"warmup": "10s"}))
    obj = wait_phase(api_client, namespace, "bad", {"Failed"}, operator, timeout_s=30)
    ready = condition(obj, "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "InvalidSpec"
    assert "spec.load" in ready["message"] and "warmup" in ready["message"]
    # kopf posts Events from a queue of its own, not with the status patch: wait for it.
    warnings = wait_until(
        lambda: [
            e for e in events(api_client, namespace, "bad") if e.get("reason") == "InvalidSpec"
        ],
        timeout_s=30,
        what="InvalidSpec Event on bad",
    )
    assert warnings[0]["type"] == "Warning"
    assert "warmup" in warnings[0]["message"]
    time.sleep(3)  # never retried in a loop: still exactly one InvalidSpec event
    again = [e for e in events(api_client, namespace, "bad") if e.get("reason") == "InvalidSpec"]
    assert len(again) == 1


def test_target_never_ready_fails_within_timeout(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
) -> None:
    lt = loadtest(
        "nothere",
        "http://127.0.0.1:9",
        target={
            "url": "http://127.0.0.1:9",
            "deploymentRef": {"name": "missing"},
            "readiness": {"timeout": "3s"},
        },
    )
    start = time.monotonic()
    create(api_client, namespace, lt)
    obj = wait_phase(api_client, namespace, "nothere", {"Failed"}, operator, timeout_s=40)
    assert time.monotonic() - start < 30
    ready = condition(obj, "TargetReady")
    assert ready["status"] == "False"
    assert ready["reason"] == "TargetNotReady"
    assert "Deployment missing not found" in ready["message"]
    assert jobs(api_client, namespace) == []


def test_unschedulable_workers_fail_with_reason(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
) -> None:
    lt = loadtest(
        "nowhere",
        alice,
        load={"placement": {"nodeSelector": {"surge.dev/pool": "tpu"}}},
        timeouts={"workersReady": "5s"},
    )
    create(api_client, namespace, lt)
    obj = wait_phase(api_client, namespace, "nowhere", {"Failed"}, operator, timeout_s=60)
    assert obj["status"]["summary"]["verdict"] == "Failed"
    sched = condition(obj, "WorkersScheduled")
    assert sched["reason"] == "Unschedulable", sched
    assert "node" in sched["message"]
    wait_until(lambda: not jobs(api_client, namespace), timeout_s=30, what="Job deleted")


def test_gpu_placement_lands_on_gpu_pool(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
) -> None:
    placement = {
        "nodeSelector": {"surge.dev/pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    create(api_client, namespace, loadtest("gpu", alice, load={"placement": placement}))

    def scheduled() -> list[str] | None:
        names = [str(p["spec"].get("nodeName") or "") for p in pods(api_client, namespace)]
        return names if len(names) == 2 and all(names) else None

    nodes = wait_until(scheduled, timeout_s=60, what="worker pods scheduled")
    pools = {
        n["metadata"]["labels"].get("surge.dev/pool")
        for n in plain(api_client, client.CoreV1Api(api_client).list_node().items)
        if n["metadata"]["name"] in nodes
    }
    assert pools == {"gpu"}
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "gpu"
    )


def test_delete_mid_run_leaves_nothing(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    lt = loadtest("long", alice, load={"stages": [{"duration": "60s", "target": 10}]})
    create(api_client, namespace, lt)
    wait_until(
        lambda: (get(api_client, namespace, "long").get("status") or {}).get("loadStartTime"),
        timeout_s=90,
        what="load started",
    )
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "long"
    )
    wait_until(
        lambda: not jobs(api_client, namespace) and not pods(api_client, namespace),
        timeout_s=60,
        what="Jobs and pods gone",
    )
    cms = (
        client.CoreV1Api(api_client)
        .list_namespaced_config_map(namespace, label_selector="surge.dev/loadtest=long")
        .items
    )
    wait_until(
        lambda: (
            not client.CoreV1Api(api_client)
            .list_namespaced_config_map(namespace, label_selector="surge.dev/loadtest=long")
            .items
            or None
        ),
        timeout_s=30,
        what=f"ConfigMaps collected ({len(cms)} left)",
    )


def test_operator_killed_mid_run_resumes_with_one_job(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    lt = loadtest(
        "resume",
        alice,
        load={"stages": [{"duration": "8s", "target": 20}]},
        cleanup={"workers": "Keep"},
    )
    create(api_client, namespace, lt)
    wait_until(lambda: jobs(api_client, namespace), timeout_s=60, what="Job created")
    operator.kill()
    time.sleep(3)
    operator.start()
    obj = wait_phase(api_client, namespace, "resume", {"Succeeded", "Failed"}, operator)
    assert obj["status"]["phase"] == "Succeeded", obj["status"].get("message")
    assert len(jobs(api_client, namespace)) == 1
    assert len(pods(api_client, namespace)) == 2
    assert obj["status"]["workers"]["reported"] == 2


def test_run_id_bump_runs_again_and_keeps_both(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    create(api_client, namespace, loadtest("again", alice, load={"workers": 1}))
    wait_phase(api_client, namespace, "again", {"Succeeded"}, operator)
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "again", {"spec": {"runId": "2"}}
    )
    obj = wait_phase(api_client, namespace, "again", {"Succeeded"}, operator)

    def second_done() -> dict[str, Any] | None:
        o = get(api_client, namespace, "again")
        st = o.get("status") or {}
        return o if st.get("runId") == "2" and st.get("phase") == "Succeeded" else None

    obj = wait_until(second_done, timeout_s=120, what="run 2 Succeeded")
    history = obj["status"]["history"]
    assert [h["runId"] for h in history] == ["2", "1"]
    assert all(h["phase"] == "Succeeded" and h["summary"]["achievedRps"] > 0 for h in history)


def _started(api: client.ApiClient, ns: str, name: str) -> Any:
    return (get(api, ns, name).get("status") or {}).get("loadStartTime")


def test_spec_edit_mid_run_drifts_without_disturbing(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    lt = loadtest("drift", alice, load={"stages": [{"duration": "6s", "target": 10}], "workers": 1})
    create(api_client, namespace, lt)
    wait_until(lambda: _started(api_client, namespace, "drift"), timeout_s=60, what="started")
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "drift",
        {"spec": {"load": {"stages": [{"duration": "6s", "target": 99}]}}},
    )
    obj = wait_phase(api_client, namespace, "drift", {"Succeeded", "Failed"}, operator)
    assert obj["status"]["phase"] == "Succeeded"
    drift = condition(obj, "SpecDrifted")
    assert drift["status"] == "True"
    assert "bump spec.runId" in drift["message"]
    # The run kept the spec it started with: 10 req/s, not 99.
    assert obj["status"]["summary"]["targetRps"] == 10
    assert obj["status"]["results"]["requests"]["sent"] < 80


def test_suspend_aborts_a_running_test(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    create(
        api_client,
        namespace,
        loadtest("pause", alice, load={"stages": [{"duration": "60s", "target": 5}], "workers": 1}),
    )
    wait_until(lambda: _started(api_client, namespace, "pause"), timeout_s=60, what="started")
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "pause", {"spec": {"suspend": True}}
    )
    obj = wait_phase(api_client, namespace, "pause", {"Aborted"}, operator, timeout_s=30)
    assert condition(obj, "Completed")["reason"] == "Suspended"
    assert obj["status"]["history"][0]["phase"] == "Aborted"
    wait_until(lambda: not jobs(api_client, namespace), timeout_s=30, what="workers stopped")


def test_second_run_on_a_busy_target_waits_with_a_reason(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    create(
        api_client,
        namespace,
        loadtest("first", alice, load={"stages": [{"duration": "8s", "target": 5}], "workers": 1}),
    )
    wait_until(lambda: _started(api_client, namespace, "first"), timeout_s=60, what="started")
    create(
        api_client,
        namespace,
        loadtest(
            "second",
            alice,
            load={"stages": [{"duration": "2s", "target": 5}], "warmup": "0s", "workers": 1},
        ),
    )

    def queued() -> dict[str, Any] | None:
        obj = get(api_client, namespace, "second")
        conds = (obj.get("status") or {}).get("conditions") or []
        return obj if any(c["type"] == "Queued" and c["status"] == "True" for c in conds) else None

    waiting = wait_until(queued, timeout_s=30, what="second queued")
    assert waiting["status"]["phase"] == "Pending"
    assert (
        f"LoadTest {namespace}/first run 1 holds the target"
        in (condition(waiting, "Queued")["message"])
    )
    first = wait_phase(api_client, namespace, "first", {"Succeeded"}, operator)
    second = wait_phase(api_client, namespace, "second", {"Succeeded"}, operator)
    assert second["status"]["startTime"] <= first["status"]["completionTime"]
    assert condition(second, "Queued")["status"] == "False"
    assert second["status"]["loadStartTime"] > first["status"]["completionTime"]
