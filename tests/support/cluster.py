"""Helpers for e2e tests on the local control plane of hack/cluster (see docs/cluster.md)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack" / "cluster"
STATE_DIR = Path(os.environ.get("SURGE_CLUSTER_DIR", REPO_ROOT / ".cluster"))
LOCAL_KUBECONFIG = STATE_DIR / "kubeconfig"

T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    """A cluster the e2e tests talk to.

    ``state`` is hack/cluster's state.json (ports, pids, logs) when the cluster is the local
    one, else empty. ``started_here``: this session started it (and stops it at the end).
    """

    kubeconfig: Path
    api_client: client.ApiClient
    state: dict[str, Any]
    started_here: bool

    @property
    def ksm_metrics_url(self) -> str | None:
        """kube-state-metrics' /metrics on 127.0.0.1, for Prometheus to scrape."""
        url = self.state.get("ksm_metrics_url")
        return str(url) if url else None


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout_s: float,
    interval_s: float = 0.5,
    what: str = "condition",
) -> T:
    """Calls ``probe`` until it returns something truthy, and returns that.

    Raises TimeoutError after ``timeout_s`` seconds, naming ``what`` and the last value.
    """
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not reached in {timeout_s:.0f} s (last: {last!r})")
        time.sleep(interval_s)


def api_client_for(kubeconfig: Path) -> client.ApiClient:
    """A client for the current context of ``kubeconfig``."""
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return api


def answers(kubeconfig: Path, timeout_s: float = 3.0) -> bool:
    """True when the cluster of ``kubeconfig`` answers a version request."""
    if not kubeconfig.is_file():
        return False
    try:
        with api_client_for(kubeconfig) as api:
            client.VersionApi(api).get_code(_request_timeout=timeout_s)
    except Exception:
        return False
    return True


def read_state() -> dict[str, Any]:
    path = STATE_DIR / "state.json"
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def cluster_up(timeout_s: float = 300.0) -> None:
    """Runs hack/cluster/up.sh (needs ``make cluster-build`` first)."""
    subprocess.run([str(HACK / "up.sh")], check=True, timeout=timeout_s, cwd=REPO_ROOT)


def cluster_down(timeout_s: float = 120.0) -> None:
    subprocess.run([str(HACK / "down.sh")], check=True, timeout=timeout_s, cwd=REPO_ROOT)


def apply_crds(
    api_client: client.ApiClient, paths: list[Path], timeout_s: float = 60.0
) -> list[str]:
    """Creates or replaces the CRDs in ``paths`` and waits until each is Established.

    Returns the CRD names. Raises TimeoutError when one is not Established in time.
    """
    ext = client.ApiextensionsV1Api(api_client)
    names: list[str] = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            apply_crd(ext, doc)
            names.append(doc["metadata"]["name"])
    for name in names:
        wait_until(
            lambda name=name: crd_established(ext, name),  # type: ignore[misc]
            timeout_s=timeout_s,
            what=f"CRD {name} Established",
        )
    return names


def apply_crd(ext: client.ApiextensionsV1Api, doc: dict[str, Any]) -> None:
    """Creates the CRD ``doc``, or replaces the existing one with it."""
    name = doc["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(doc)  # type: ignore[arg-type]
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = ext.read_custom_resource_definition(name)
        assert current.metadata is not None
        meta = {**doc["metadata"], "resourceVersion": current.metadata.resource_version}
        doc = {**doc, "metadata": meta}
        ext.replace_custom_resource_definition(name, doc)  # type: ignore[arg-type]


def crd_established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    crd = ext.read_custom_resource_definition(name)
    conditions = crd.status.conditions if crd.status else None
    return any(c.type == "Established" and c.status == "True" for c in conditions or [])
