"""The follower of Alice's --replicas-file (docs/agent.md, "Following a Deployment").

In the e2e tests the target Deployment's pods are KWOK pods and the load goes to one real
Alice, started with `--gpu-slots N --replicas-file PATH`. This thread makes her capacity follow
the Deployment: every `interval_s` it writes the Deployment's ready replicas to PATH (atomically:
write, then rename). With `cpu_metrics_url` it also gives each ready pod an even share of
Alice's measured process CPU (alice_cpu_seconds_total, as a rate over the interval) through
kwok's `kwok.x-k8s.io/usage-cpu` annotation, so that metrics-server, and a CPU-utilization
scaler, see the CPU the pods' work really costs.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

USAGE_CPU = "kwok.x-k8s.io/usage-cpu"


def write_replicas(path: Path, replicas: int) -> None:
    """Replace PATH's content with the count, atomically (Alice never reads half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{replicas}\n")
    os.replace(tmp, path)


def cpu_seconds(metrics_url: str) -> float:
    """alice_cpu_seconds_total from Alice's /metrics."""
    with urllib.request.urlopen(metrics_url, timeout=2.0) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith("alice_cpu_seconds_total "):
            return float(line.split()[1])
    raise ValueError(f"{metrics_url}: no alice_cpu_seconds_total")


def millicores_per_pod(cpu_delta_s: float, wall_s: float, pods: int) -> int:
    """An even share of the CPU rate, in millicores (at least 1m, kwok's default usage)."""
    if pods <= 0 or wall_s <= 0:
        return 1
    return max(1, round(cpu_delta_s / wall_s / pods * 1000))


class ReplicaFollower:
    """`with ReplicaFollower(api, ns, "alice", path):` follows until the block ends.

    `history` holds (monotonic time, ready replicas) at each change, for tests to check
    what Alice was told."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        deployment: str,
        path: Path,
        *,
        interval_s: float = 0.5,
        cpu_metrics_url: str | None = None,
        selector: str | None = None,
    ) -> None:
        self.apps, self.core = client.AppsV1Api(api), client.CoreV1Api(api)
        self.namespace, self.deployment, self.path = namespace, deployment, path
        self.interval_s = interval_s
        self.cpu_metrics_url = cpu_metrics_url
        self.selector = selector or f"app={deployment}"
        self.history: list[tuple[float, int]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="replica-follower")
        write_replicas(path, self.ready())  # Alice needs the file before she starts

    def ready(self) -> int:
        dep: Any = self.apps.read_namespaced_deployment_status(self.deployment, self.namespace)
        return int((dep.status and dep.status.ready_replicas) or 0)

    def _annotate(self, millicores: int) -> None:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
        for pod in pods:
            meta = pod.metadata
            if meta is None or meta.name is None or meta.deletion_timestamp:
                continue
            if (pod.status and pod.status.phase) != "Running":
                continue
            if (meta.annotations or {}).get(USAGE_CPU) == f"{millicores}m":
                continue
            body = {"metadata": {"annotations": {USAGE_CPU: f"{millicores}m"}}}
            try:
                self.core.patch_namespaced_pod(meta.name, self.namespace, body)
            except ApiException as exc:
                if exc.status != 404:  # a pod deleted since the list is no error
                    raise

    def _run(self) -> None:
        last_cpu = cpu_seconds(self.cpu_metrics_url) if self.cpu_metrics_url else 0.0
        last_t = time.monotonic()
        while not self._stop.wait(self.interval_s):
            try:
                ready = self.ready()
                write_replicas(self.path, ready)
                now = time.monotonic()
                if not self.history or self.history[-1][1] != ready:
                    self.history.append((now, ready))
                if self.cpu_metrics_url:
                    cpu = cpu_seconds(self.cpu_metrics_url)
                    self._annotate(millicores_per_pod(cpu - last_cpu, now - last_t, ready))
                    last_cpu, last_t = cpu, now
            except Exception as exc:  # keep following; the test reads `errors`
                self.errors.append(repr(exc))

    def __enter__(self) -> ReplicaFollower:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
