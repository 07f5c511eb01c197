"""The start barrier: every worker reads the plan, then waits for one shared start instant.

In a cluster the operator writes `plan.json` into the run's ConfigMap, and adds the
key `startAt` (epoch seconds as a string) once every worker pod is Running. Workers
poll for it every `poll_s` (0.5 s), bounded by the plan's barrier timeout, then
sleep until that instant, so N processes start their schedules together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

PLAN_KEY = "plan.json"
START_AT_KEY = "startAt"


class BarrierTimeout(Exception):
    """startAt did not appear within the barrier timeout."""


def parse_start_at(text: str) -> float:
    """Epoch seconds from the ConfigMap value. Raises ValueError on anything else."""
    value = float(text.strip())
    if not value > 0:
        raise ValueError(f"startAt {text!r} is not a positive epoch time")
    return value


def wait_for_start_at(
    read: Callable[[], str | None],
    *,
    timeout_s: float,
    poll_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Poll `read()` until it returns startAt; return it as epoch seconds.

    Read errors count as "not yet" (the API server may blip). Raises BarrierTimeout.
    """
    deadline = clock() + timeout_s
    while True:
        try:
            text = read()
        except Exception:  # a transient API error is retried until the deadline
            text = None
        if text:
            return parse_start_at(text)
        if clock() >= deadline:
            raise BarrierTimeout(f"no {START_AT_KEY} within {timeout_s:g}s")
        sleep(poll_s)


def kube_core_api() -> Any:
    """CoreV1Api from in-cluster config, falling back to KUBECONFIG / ~/.kube/config."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.CoreV1Api()


class ConfigMapSource:
    """Reads keys of one ConfigMap through the Kubernetes API."""

    def __init__(self, namespace: str, name: str, api: Any = None) -> None:
        self.namespace = namespace
        self.name = name
        self._api = api

    @classmethod
    def parse(cls, ref: str, api: Any = None) -> ConfigMapSource:
        """From 'NAMESPACE/NAME'. Raises ValueError otherwise."""
        ns, sep, name = ref.partition("/")
        if not sep or not ns or not name:
            raise ValueError(f"--configmap {ref!r}: write it as NAMESPACE/NAME")
        return cls(ns, name, api)

    def _data(self) -> dict[str, str]:
        if self._api is None:
            self._api = kube_core_api()
        cm = self._api.read_namespaced_config_map(self.name, self.namespace)
        return dict(cm.data or {})

    def get(self, key: str) -> str | None:
        return self._data().get(key)
