"""Shared by the e2e tests of the operator: the operator as a local process, Alice,
and small helpers over the Kubernetes API returning plain JSON dicts."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from surge.agent import start_agent_process, stop_agent_process
from tests.support.cluster import REPO_ROOT, wait_until

BIN = REPO_ROOT / ".venv" / "bin"
GROUP, VERSION, PLURAL = "surge.dev", "v1alpha1", "loadtests"
POLICY = Path(__file__).with_name("policy.yaml")
"""The cluster policy the functional tests run under (the tenancy tests bring their own)."""
LOCAL_PLACEMENT = {
    "nodeSelector": {"kubernetes.io/hostname": "local-0"},
    "tolerations": [{"key": "surge.dev/local", "operator": "Exists", "effect": "NoSchedule"}],
}


class Operator:
    """`surge operator -n NS` as a subprocess; restartable, to test resumption."""

    def __init__(
        self,
        namespace: str,
        log: Path,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.namespace, self.log = namespace, log
        self.args, self.extra_env = args, dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "SURGE_WORKER_METRICS_PORT": "0",
            "SURGE_INTERVAL_S": "1",
            "SURGE_START_DELAY_S": "1",
            "SURGE_POLICY_FILE": str(POLICY),
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            **self.extra_env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "surge"), "operator", "-n", self.namespace, *self.args],
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


def plain(api: client.ApiClient, items: Any) -> list[dict[str, Any]]:
    return [dict(api.sanitize_for_serialization(i)) for i in items]  # type: ignore[no-untyped-call]


def events(api: client.ApiClient, ns: str, name: str) -> list[dict[str, Any]]:
    items = plain(api, client.CoreV1Api(api).list_namespaced_event(ns).items)
    return [e for e in items if e["involvedObject"].get("name") == name]


def jobs(api: client.ApiClient, ns: str) -> list[dict[str, Any]]:
    return plain(api, client.BatchV1Api(api).list_namespaced_job(ns).items)


def pods(api: client.ApiClient, ns: str) -> list[dict[str, Any]]:
    return plain(api, client.CoreV1Api(api).list_namespaced_pod(ns).items)
