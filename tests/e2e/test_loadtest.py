"""The LoadTest lifecycle on the real control plane: the operator runs as a local process,
workers run as real local processes (the pod runner, node local-0) against a real Alice.

Each test has its own namespace and its own operator watching only that namespace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from surge.agent import start_agent_process, stop_agent_process
from tests.support.cluster import REPO_ROOT, wait_until
from tests.support.podrunner import PodRunner

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

BIN = REPO_ROOT / ".venv" / "bin"
GROUP, VERSION, PLURAL = "surge.dev", "v1alpha1", "loadtests"
LOCAL_PLACEMENT = {
    "nodeSelector": {"kubernetes.io/hostname": "local-0"},
    "tolerations": [{"key": "surge.dev/local", "operator": "Exists", "effect": "NoSchedule"}],
}


class Operator:
    """`surge operator -n NS` as a subprocess; restartable, to test resumption."""

    def __init__(self, namespace: str, log: Path) -> None:
        self.namespace, self.log = namespace, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "SURGE_WORKER_METRICS_PORT": "0",
            "SURGE_INTERVAL_S": "1",
            "SURGE_START_DELAY_S": "1",
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "surge"), "operator", "-n", self.namespace],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


@pytest.fixture
def operator(namespace: str, tmp_path: Path) -> Iterator[Operator]:
    op = Operator(namespace, tmp_path / "operator.log")
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def alice() -> Iterator[str]:
    proc, url = start_agent_process(["--latency", "fixed:20ms"], stderr=subprocess.DEVNULL)
    yield url
    stop_agent_process(proc)


def loadtest(
    name: str, url: str, *, load: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "target": {"url": url, "readiness": {"http": {"path": "/readyz"}, "timeout": "20s"}},
        "scenario": {
            "path": "/respond",
            "body": {"query": "{{q}}"},
            "dataset": {"inline": [{"q": "Where is my order?"}]},
            "timeout": "5s",
        },
        "load": {
            "model": "constant",
            "stages": [{"duration": "4s", "target": 20}],
            "warmup": "1s",
            "workers": 2,
            "placement": LOCAL_PLACEMENT,
            **(load or {}),
        },
        "thresholds": ["latency.p95 < 2s", "errors.rate < 5%"],
        "timeouts": {"workersReady": "60s", "runGrace": "60s"},
    }
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LoadTest",
        "metadata": {"name": name},
        "spec": body,
    }


def create(api: client.ApiClient, ns: str, obj: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, obj)


def get(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    obj: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, name
    )
    return dict(obj)


def wait_phase(
    api: client.ApiClient,
    ns: str,
    name: str,
    phases: set[str],
    op: Operator,
    timeout_s: float = 120,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(api, ns, name)
        return obj if (obj.get("status") or {}).get("phase") in phases else None

    try:
        return wait_until(probe, timeout_s=timeout_s, interval_s=0.5, what=f"{name} in {phases}")
    except TimeoutError:
        status = get(api, ns, name).get("status") or {}
        pytest.fail(
            f"{name} stuck in {status.get('phase')}: {status.get('message')}\n"
            f"conditions: {status.get('conditions')}\noperator log:\n{op.tail()}"
        )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    conds = (obj.get("status") or {}).get("conditions") or []
    return next(c for c in conds if c["type"] == type_)


def _plain(api: client.ApiClient, items: Any) -> list[dict[str, Any]]:
    return [dict(api.sanitize_for_serialization(i)) for i in items]  # type: ignore[no-untyped-call]


def events(api: client.ApiClient, ns: str, name: str) -> list[dict[str, Any]]:
    items = _plain(api, client.CoreV1Api(api).list_namespaced_event(ns).items)
    return [e for e in items if e["involvedObject"].get("name") == name]


def jobs(api: client.ApiClient, ns: str) -> list[dict[str, Any]]:
    return _plain(api, client.BatchV1Api(api).list_namespaced_job(ns).items)


def pods(api: client.ApiClient, ns: str) -> list[dict[str, Any]]:
    return _plain(api, client.CoreV1Api(api).list_namespaced_pod(ns).items)


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
    reasons = {e.get("reason") for e in events(api_client, namespace, "smoke")}
    assert {
        "RunStarted",
        "WaitingForTarget",
        "WorkersCreated",
        "BarrierOpened",
        "AllThresholdsPassed",
    } <= reasons
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
    warnings = [e for e in events(api_client, namespace, "bad") if e.get("reason") == "InvalidSpec"]
    assert warnings
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
        for n in _plain(api_client, client.CoreV1Api(api_client).list_node().items)
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
