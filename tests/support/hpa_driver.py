"""The load of the HPA differential test (tests/e2e/test_hpa_simulator.py): what it writes
on the pods before the HPA reads it, and the record of what the controller did.

- CPU scenarios: before every metrics-server scrape (from 6 s to 0.4 s before it, after the
  syncs 7.5 s earlier have created or deleted pods) each pod's `kwok.x-k8s.io/usage-cpu`
  gets its Deployment's even share of the load of the second before the scrape.
- Pods scenarios (hack/cluster/podmetrics reads `metrics.surge.dev/<metric>` at the HPA's
  request): before every HPA sync (from 7 s to 0.4 s before it, after the writes for the
  scrape at sync − 7.5 s) each Ready pod that has a metric by the simulator's rule
  (hpa_compare.has_pods_metric: from its second scrape instant after its creation on) gets
  the even share over the Ready pods of the signal of the second before the sync; the
  others get no annotation, and the HPA counts them missing.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from surge.api.simulation import parse_quantity
from tests.support import hpa_compare as hc

USAGE = "kwok.x-k8s.io/usage-cpu"
PODS_PREFIX = "metrics.surge.dev/"
PATCH_LEAD_S = (6.0, 0.4)
"""CPU: annotations are written from 6 s to 0.4 s before each scrape."""
PODS_LEAD_S = (7.0, 0.4)
"""Pods metrics: from 7 s to 0.4 s before each sync (the scrapes lie 7.5 s before it)."""


def ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


class Driver:
    """The load, written before each scrape (CPU) or sync (Pods), and the record of every
    Deployment's spec.replicas and every HPA's reported metric, as (t, value) on the trace
    clock (seconds since the monotonic instant w0)."""

    def __init__(self, api: client.ApiClient, namespace: str, w0: float, batch: list[Any]) -> None:
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.autoscaling: Any = client.AutoscalingV2Api(api)
        self.namespace, self.w0 = namespace, w0
        self.wall0 = time.time() - (time.monotonic() - w0)  # t = 0 on the wall clock
        self.scenarios: dict[str, hc.Scenario] = {s.name: s for s in batch}
        self.rates = {s.name: s.rates() for s in batch}
        self.record: dict[str, list[tuple[float, int]]] = {s.name: [] for s in batch}
        self.metric: dict[str, list[tuple[float, int | None]]] = {s.name: [] for s in batch}
        self.patches = self.pods_patches = 0
        self.errors: list[BaseException] = []
        self.pool = ThreadPoolExecutor(8, thread_name_prefix="patch")

    def now(self) -> float:
        return time.monotonic() - self.w0

    def _passes(self, instants: list[float], lead: tuple[float, float], run: Any) -> None:
        for at in instants:
            time.sleep(max(0.0, at - lead[0] - self.now()))
            while self.now() < at - lead[1]:
                started = self.now()
                run(at)
                time.sleep(max(0.0, 0.5 - (self.now() - started)))

    def load(self) -> None:
        try:
            self._passes(hc.scrape_instants(), PATCH_LEAD_S, self._patch_pass)
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)

    def pods_load(self) -> None:
        try:
            self._passes(hc.sync_instants(), PODS_LEAD_S, self._pods_pass)
        except BaseException as exc:
            self.errors.append(exc)

    def _by_app(self, pods_metric: bool) -> dict[str, list[client.V1Pod]]:
        """The live pods (none being deleted) of the CPU or of the Pods scenarios."""
        out: dict[str, list[client.V1Pod]] = {}
        for pod in self.core.list_namespaced_pod(self.namespace).items:
            if pod.metadata is None or pod.metadata.deletion_timestamp is not None:
                continue
            s = self.scenarios.get((pod.metadata.labels or {}).get("app", ""))
            if s is not None and (s.signal is not None) == pods_metric:
                out.setdefault(s.name, []).append(pod)
        return out

    def _patch_pass(self, scrape: float) -> None:
        todo = []
        for app, members in self._by_app(False).items():
            rps = hc.load_at_scrape(self.rates[app], scrape)
            value = hc.usage_annotation(hc.usage_milli(rps, sum(map(ready, members))))
            for pod in members:
                assert pod.metadata is not None
                if (pod.metadata.annotations or {}).get(USAGE) != value:
                    todo.append((str(pod.metadata.name), {USAGE: value}))
        calls = [self.pool.submit(self._patch, n, v) for n, v in todo]
        self.patches += sum(call.result() for call in calls)

    def _pods_pass(self, sync: float) -> None:
        todo = []
        for app, members in self._by_app(True).items():
            s = self.scenarios[app]
            assert s.signal is not None
            key = PODS_PREFIX + hc.PODS_METRICS[s.signal]
            rps = hc.load_at_scrape(self.rates[app], sync)  # the second before the sync
            live = [p for p in members if ready(p)]
            value = f"{hc.pods_value_milli(s.signal, rps, len(live))}m"
            for pod in live:
                assert pod.metadata is not None and pod.metadata.creation_timestamp is not None
                created = pod.metadata.creation_timestamp.timestamp() - self.wall0
                has = (pod.metadata.annotations or {}).get(key)
                if hc.has_pods_metric(created, sync) and has != value:
                    todo.append((str(pod.metadata.name), {key: value}))
        calls = [self.pool.submit(self._patch, n, v) for n, v in todo]
        self.pods_patches += sum(call.result() for call in calls)

    def _patch(self, pod: str, annotations: dict[str, str]) -> bool:
        patch: Any = self.core.patch_namespaced_pod
        try:
            patch(pod, self.namespace, {"metadata": {"annotations": annotations}})
        except ApiException as exc:
            if exc.status != 404:  # deleted by a scale-down since the list: nothing to write
                raise
            return False
        return True

    def watch(self) -> None:
        try:
            while (at := self.now()) < hc.DURATION_S:
                for dep in self.apps.list_namespaced_deployment(self.namespace).items:
                    assert dep.metadata is not None and dep.spec is not None
                    self.record[str(dep.metadata.name)].append((at, int(dep.spec.replicas or 0)))
                found: Any = self.autoscaling.list_namespaced_horizontal_pod_autoscaler(
                    self.namespace
                )
                for hpa in found.items:
                    self.metric[str(hpa.metadata.name)].append((at, _reported(hpa)))
                time.sleep(max(0.0, 0.5 - (self.now() - at)))
        except BaseException as exc:
            self.errors.append(exc)


def _reported(hpa: Any) -> int | None:
    """The HPA's status.currentMetrics[0]: CPU utilization or average value, or the Pods
    metric's average value in milli-units."""
    current = (hpa.status.current_metrics if hpa.status else None) or [None]
    first = current[0]
    if first is None:
        return None
    if first.pods is not None:
        cur = first.pods.current
        value = cur.average_value if cur else None
        return None if value is None else _milli(str(value))
    cur = first.resource.current if first.resource else None
    if cur is None:
        return None
    return cur.average_utilization or cur.average_value  # type: ignore[no-any-return]


def _milli(quantity: str) -> int:
    return round(parse_quantity(quantity) * 1000)
