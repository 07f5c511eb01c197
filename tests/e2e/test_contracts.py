"""The LoadTest controller's contracts on the real control plane (docs/status.md,
"Contracts"): API errors end runs with the server's message, one run per target even when
both were created at once, a verdict survives a crash between computing and writing it, a
finished LoadTest deletes without the operator, GitOps edits, and `kubectl wait`.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
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
    get,
    jobs,
    loadtest,
    operator,
    wait_phase,
)
from tests.support.cluster import wait_until
from tests.support.podrunner import PodRunner

__all__ = ["alice", "operator"]  # fixtures used by the tests below

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]
ACTIVE = {"WaitingForTarget", "Running", "Analyzing"}


def _patch(api: client.ApiClient, ns: str, name: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, name, body
    )


def test_a_job_the_api_server_rejects_fails_the_run_with_its_message(
    api_client: client.ApiClient, namespace: str, operator: Operator, alice: str
) -> None:
    # Free-form tolerations pass the CRD; the Job's validation refuses the operator "Sometimes".
    placement = {"tolerations": [{"key": "x", "operator": "Sometimes", "effect": "NoSchedule"}]}
    start = time.monotonic()
    create(api_client, namespace, loadtest("rejected", alice, load={"placement": placement}))
    obj = wait_phase(api_client, namespace, "rejected", {"Failed"}, operator, timeout_s=30)
    assert time.monotonic() - start < 30
    st = obj["status"]
    assert condition(obj, "Completed")["reason"] == "JobRejected", st["message"]
    assert st["message"].startswith(f"create Job {namespace}/rejected-run-1: ")
    assert "Sometimes" in st["message"]  # the API server's own words
    assert jobs(api_client, namespace) == []


def test_two_runs_created_together_never_overlap(
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    # Both exist before the operator sees either (one Argo CD sync, an operator restart).
    short = {"stages": [{"duration": "3s", "target": 10}], "workers": 1}
    for name in ("one", "two"):
        create(api_client, namespace, loadtest(name, alice, load=short))
    op = Operator(namespace, tmp_path / "operator.log")
    op.start()
    try:
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            # One list, one snapshot: two GETs could see one before its end, two after it.
            listed: Any = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL
            )
            by_name = {
                o["metadata"]["name"]: (o.get("status") or {}).get("phase") for o in listed["items"]
            }
            phases = [str(by_name.get(n)) for n in ("one", "two")]
            seen.append((phases[0], phases[1]))
            assert not (phases[0] in ACTIVE and phases[1] in ACTIVE), (phases, op.tail())
            if all(p in ("Succeeded", "Failed") for p in phases):
                break
            time.sleep(0.2)
        assert seen[-1] == ("Succeeded", "Succeeded"), (seen[-1], op.tail())
        one, two = (get(api_client, namespace, n)["status"] for n in ("one", "two"))
        first, second = sorted((one, two), key=lambda s: s["loadStartTime"])
        assert second["loadStartTime"] > first["completionTime"]
    finally:
        op.stop()


def test_a_verdict_survives_a_crash_before_it_is_written(
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    create(api_client, namespace, loadtest("crash", alice, load={"workers": 1}))
    op = Operator(namespace, tmp_path / "operator.log")
    os.environ["SURGE_TEST_FAULT"] = "exit-after-verdict"
    try:
        op.start()
    finally:
        del os.environ["SURGE_TEST_FAULT"]
    try:
        assert op.proc is not None
        assert op.proc.wait(timeout=120) == 3, op.tail()  # died holding the verdict
        assert get(api_client, namespace, "crash")["status"]["phase"] == "Analyzing"
        assert len(jobs(api_client, namespace)) == 1  # nothing deleted before the write
        op.start()
        obj = wait_phase(api_client, namespace, "crash", {"Succeeded", "Failed"}, op)
        st = obj["status"]
        assert st["phase"] == "Succeeded", st["message"]
        assert st["workers"]["reported"] == 1 and st["results"]["requests"]["sent"] > 0
        wait_until(lambda: not jobs(api_client, namespace), timeout_s=30, what="Job deleted")
    finally:
        op.stop()


def test_a_finished_loadtest_deletes_without_the_operator(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    create(api_client, namespace, loadtest("done", alice, load={"workers": 1}))
    wait_phase(api_client, namespace, "done", {"Succeeded"}, operator)
    wait_until(
        lambda: not get(api_client, namespace, "done")["metadata"].get("finalizers"),
        timeout_s=15,
        what="finalizer removed after the end",
    )
    operator.stop()
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "done"
    )
    start = time.monotonic()

    def gone() -> bool:
        try:
            get(api_client, namespace, "done")
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_until(gone, timeout_s=5, interval_s=0.2, what="LoadTest deleted")
    assert time.monotonic() - start < 5


def test_a_fixed_typo_runs_and_a_reused_run_id_is_refused(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    bad = loadtest("typo", alice, load={"warmup": "10s", "workers": 1})
    bad["spec"]["runId"] = "a"
    create(api_client, namespace, bad)
    obj = wait_phase(api_client, namespace, "typo", {"Failed"}, operator, timeout_s=30)
    assert condition(obj, "Completed")["reason"] == "InvalidSpec"
    _patch(api_client, namespace, "typo", {"spec": {"load": {"warmup": "1s"}}})  # the fix

    def succeeded() -> dict[str, Any] | None:
        o = get(api_client, namespace, "typo")
        return o if (o.get("status") or {}).get("phase") == "Succeeded" else None

    obj = wait_until(succeeded, timeout_s=120, what="the fixed run succeeded")
    assert obj["status"]["runId"] == "a"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2
    _patch(api_client, namespace, "typo", {"spec": {"runId": "b", "load": {"warmup": "10s"}}})
    wait_until(
        lambda: (get(api_client, namespace, "typo").get("status") or {}).get("runId") == "b",
        timeout_s=30,
        what="run b",
    )
    _patch(api_client, namespace, "typo", {"spec": {"runId": "a"}})  # a `git revert`

    def refused() -> dict[str, Any] | None:
        o = get(api_client, namespace, "typo")
        st = o.get("status") or {}
        return o if st.get("runId") == "a" and st.get("phase") == "Failed" else None

    obj = wait_until(refused, timeout_s=30, what="runId a refused")
    assert condition(obj, "Completed")["reason"] == "RunIdReused"
    history = obj["status"]["history"]
    assert [h["runId"] for h in history] == ["b", "a"]
    assert history[1]["phase"] == "Succeeded"  # the old run's record is kept


def _kubectl_wait(namespace: str, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(BIN / "kubectl"), "wait", "-n", namespace, f"lt/{name}",
            "--for=condition=Completed", "--timeout=180s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_kubectl_wait_for_completed_returns_on_every_ending(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    one = {"workers": 1, "stages": [{"duration": "3s", "target": 10}]}
    cases: dict[str, dict[str, Any]] = {
        "ok": loadtest("ok", alice, load=one),
        "slow": loadtest("slow", alice, load=one, thresholds=["latency.p95 < 1ms"]),
        "invalid": loadtest("invalid", alice, load={**one, "warmup": "10s"}),
        "never": loadtest(
            "never",
            "http://127.0.0.1:9",
            load=one,
            target={
                "url": "http://127.0.0.1:9",
                "readiness": {"http": {"path": "/"}, "timeout": "3s"},
            },
        ),
        "paused": loadtest(
            "paused", alice, load={**one, "stages": [{"duration": "60s", "target": 5}]}
        ),
    }
    for obj in cases.values():
        create(api_client, namespace, obj)
    waits = {name: _kubectl_wait(namespace, name) for name in cases}  # they must exist first
    wait_until(
        lambda: (get(api_client, namespace, "paused").get("status") or {}).get("loadStartTime"),
        timeout_s=150,
        what="paused started",
    )
    _patch(api_client, namespace, "paused", {"spec": {"suspend": True}})
    want = {
        "ok": ("Succeeded", "AllThresholdsPassed"),
        "slow": ("Failed", "ThresholdFailed"),
        "invalid": ("Failed", "InvalidSpec"),
        "never": ("Failed", "TargetNotReady"),
        "paused": ("Aborted", "Suspended"),
    }
    for name, proc in waits.items():
        out, _ = proc.communicate(timeout=200)
        assert proc.returncode == 0, (name, out.decode(), operator.tail())
        obj = get(api_client, namespace, name)
        assert (obj["status"]["phase"], condition(obj, "Completed")["reason"]) == want[name]
