"""Two operator replicas with leader election on the real control plane: one acts, the
other takes over within the lease duration when the leader dies mid-run."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from surge.agent import start_agent_process, stop_agent_process
from tests.e2e.operator_support import (
    Operator,
    alice,
    create,
    jobs,
    loadtest,
    wait_phase,
)
from tests.support.cluster import wait_until
from tests.support.podrunner import PodRunner

__all__ = ["alice"]

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]
LEASE_S = 6
ACTIVE = {"WaitingForTarget", "Running", "Analyzing"}
TERMINAL = {"Succeeded", "Failed", "Aborted"}


def _holder(api: client.ApiClient, ns: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease("surge-operator-leader", ns)
    except client.ApiException:
        return None
    return lease.spec.holder_identity if lease.spec else None


def _acquired_at(api: client.ApiClient, ns: str) -> float:
    lease = client.CoordinationV1Api(api).read_namespaced_lease("surge-operator-leader", ns)
    assert lease.spec is not None and lease.spec.acquire_time is not None
    return float(lease.spec.acquire_time.timestamp())


def test_the_standby_takes_over_a_run_when_the_leader_dies(
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    alice: str,
    pod_runner: PodRunner,
) -> None:
    env = {"POD_NAMESPACE": namespace, "SURGE_LEADER_LEASE_S": str(LEASE_S)}
    ops = [
        Operator(namespace, tmp_path / f"operator-{i}.log", ("--leader-elect",), env)
        for i in range(2)
    ]
    for op in ops:
        op.start()
    try:
        holder = wait_until(lambda: _holder(api_client, namespace), timeout_s=30, what="leader")
        leader = next(
            op for op in ops if op.proc and holder == f"{socket.gethostname()}-{op.proc.pid}"
        )
        standby = next(op for op in ops if op is not leader)
        lt = loadtest(
            "ha", alice, load={"stages": [{"duration": "12s", "target": 10}], "workers": 1}
        )
        create(api_client, namespace, lt)
        wait_until(lambda: jobs(api_client, namespace), timeout_s=60, what="Job created")
        leader.kill()
        killed_at = time.time()
        new = wait_until(
            lambda: (h := _holder(api_client, namespace)) != holder and h,
            timeout_s=LEASE_S * 3,
            what="standby leads",
        )
        # The standby's own acquireTime, not when this poll saw it (poll and read latency).
        took = _acquired_at(api_client, namespace) - killed_at
        assert took < LEASE_S + 3, took  # within the lease duration and one retry
        assert standby.proc is not None and str(new).endswith(f"-{standby.proc.pid}")
        obj = wait_phase(api_client, namespace, "ha", {"Succeeded", "Failed"}, standby)
        assert obj["status"]["phase"] == "Succeeded", obj["status"].get("message")
        assert obj["status"]["results"]["requests"]["sent"] > 0
        assert len(jobs(api_client, namespace)) <= 1  # never a second Job for the run
        assert obj["status"]["workers"]["reported"] == 1
    finally:
        for op in ops:
            op.stop()


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


def test_fifty_loadtests_created_while_the_operator_was_down(
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    pod_runner: PodRunner,
) -> None:
    """50 LoadTests on 10 targets, all created before the operator starts (a GitOps sync
    into a cluster whose operator was down): every one ends, and no target ever has two
    runs under way at once. Two targets are real Alices (the runs load them); eight are
    closed ports whose runs end TargetNotReady after their readiness timeout."""
    alices = [
        start_agent_process(["--latency", "fixed:5ms"], stderr=subprocess.DEVNULL) for _ in range(2)
    ]
    urls = [url for _, url in alices] + [f"http://127.0.0.1:{p}" for p in _free_ports(8)]
    names: dict[str, str] = {}  # LoadTest -> its target URL
    try:
        one = {"stages": [{"duration": "1s", "target": 5}], "warmup": "0s", "workers": 1}
        for i in range(50):
            url = urls[i % len(urls)]
            lt = loadtest(f"lt-{i:02d}", url, load=one, thresholds=[])
            lt["spec"]["target"]["readiness"]["timeout"] = "2s"
            create(api_client, namespace, lt)
            names[f"lt-{i:02d}"] = url
        # 50 worker processes start on 2 cores here: a 1 s barrier lead (the fixture's) can
        # pass before a loaded worker has read it, and its run ends GeneratorSaturated.
        op = Operator(namespace, tmp_path / "operator.log", env={"SURGE_START_DELAY_S": "4"})
        op.start()
        try:
            custom: Any = client.CustomObjectsApi(api_client)
            deadline = time.monotonic() + 200
            phases: dict[str, str] = {}
            while time.monotonic() < deadline:
                items = custom.list_namespaced_custom_object(
                    "surge.dev", "v1alpha1", namespace, "loadtests"
                )["items"]
                phases = {
                    o["metadata"]["name"]: str((o.get("status") or {}).get("phase")) for o in items
                }
                for url in urls:
                    active = [n for n, p in phases.items() if names[n] == url and p in ACTIVE]
                    assert len(active) <= 1, (url, active, op.tail())
                if all(p in TERMINAL for p in phases.values()):
                    break
                time.sleep(0.3)
            assert all(p in TERMINAL for p in phases.values()), (phases, op.tail())
            real = {n: p for n, p in phases.items() if names[n] in urls[:2]}
            assert set(real.values()) == {"Succeeded"}, real
            assert len(real) == 10
        finally:
            op.stop()
    finally:
        for proc, _ in alices:
            stop_agent_process(proc)
