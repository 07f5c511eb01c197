"""`surge simulate` against the real HPA controller on the local control plane (issue #18).

Three Deployments of KWOK pods, each with an HPA on CPU utilization (no behavior; a slow
scale-up; a short scale-down window), see the same load λ(t) at once. The test is the load:
each half second it writes every pod's `kwok.x-k8s.io/usage-cpu` annotation with its share
of λ(t) (λ × cpu per request / the Deployment's Ready pods), kwok reports it to
metrics-server, and kube-controller-manager's HPA controller scales for real. The simulator
replays the same trace through the same metrics pipeline (tests/support/hpa_compare.py,
docs/simulator.md "Comparison with a real HPA"), and the two replica timelines are
compared at the HPA's sync instants: within ±1 replica at ≥ 95 % of them, per behaviour.

SURGE_HPA_COMPARISON_DIR=docs/simulator writes the comparison (JSON) and the plots there.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support import cluster as support
from tests.support import hpa_compare as hc

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(540)]

USAGE = "kwok.x-k8s.io/usage-cpu"
PAUSE = "registry.k8s.io/pause:3.10"  # never pulled: kwok runs no containers
TICK_S = 0.5


def _deployment(name: str) -> dict[str, Any]:
    resources = {"requests": {"cpu": f"{hc.POD_REQUEST_M}m"}}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": hc.MIN_REPLICAS,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"surge.dev/pool": "cpu"},
                    "containers": [{"name": "app", "image": PAUSE, "resources": resources}],
                },
            },
        },
    }


def _hpa(name: str) -> dict[str, Any]:
    spec = hc.hpa_spec(hc.BEHAVIORS[name])
    spec["scaleTargetRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    return {"metadata": {"name": name}, "spec": spec}


def _ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _next_scrape(custom: client.CustomObjectsApi, namespace: str) -> float:
    """The monotonic instant of a metrics-server scrape: when the pods' metrics change."""

    def stamp() -> str:
        found: Any = custom.list_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", namespace, "pods"
        )
        return " ".join(sorted(f"{m['metadata']['name']}@{m['timestamp']}" for m in found["items"]))

    first = support.wait_until(stamp, timeout_s=60, what=f"pod metrics in {namespace}")
    changed = support.wait_until(
        lambda: time.monotonic() if stamp() != first else None,
        timeout_s=40,
        interval_s=0.1,
        what="a metrics-server scrape",
    )
    return changed - 0.05  # polled every 0.1 s


def _changes(record: list[tuple[float, int | None]]) -> list[tuple[float, int | None]]:
    """The points of a polled record where the value changed."""
    return [(round(t, 2), v) for i, (t, v) in enumerate(record) if i == 0 or record[i - 1][1] != v]


class Driver:
    """The load: every TICK_S, each pod's usage annotation gets its share of λ(t); and the
    record of every Deployment's spec.replicas, as (t, value)."""

    def __init__(self, api: client.ApiClient, namespace: str, w0: float) -> None:
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.autoscaling: Any = client.AutoscalingV2Api(api)
        self.namespace, self.w0 = namespace, w0
        self.rates = hc.rates()
        self.record: dict[str, list[tuple[float, int]]] = {n: [] for n in hc.BEHAVIORS}
        self.hpa: dict[str, list[tuple[float, int | None]]] = {n: [] for n in hc.BEHAVIORS}
        """(t, the CPU utilization the HPA last reported in status.currentMetrics)."""
        self.patches = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while (now := time.monotonic() - self.w0) < hc.DURATION_S:
                self._tick(self.rates[max(0, int(now))])
                time.sleep(max(0.0, TICK_S - (time.monotonic() - self.w0 - now)))
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def _tick(self, rps: float) -> None:
        pods: dict[str, list[client.V1Pod]] = {}
        for pod in self.core.list_namespaced_pod(self.namespace).items:
            if pod.metadata is None or pod.metadata.deletion_timestamp is not None:
                continue
            pods.setdefault((pod.metadata.labels or {}).get("app", ""), []).append(pod)
        for members in pods.values():
            value = f"{hc.usage_milli(rps, sum(_ready(p) for p in members))}m"
            for pod in members:
                assert pod.metadata is not None
                if (pod.metadata.annotations or {}).get(USAGE) != value:
                    body = {"metadata": {"annotations": {USAGE: value}}}
                    self.core.patch_namespaced_pod(str(pod.metadata.name), self.namespace, body)
                    self.patches += 1
        for dep in self.apps.list_namespaced_deployment(self.namespace).items:
            assert dep.metadata is not None and dep.spec is not None
            at = time.monotonic() - self.w0
            self.record[str(dep.metadata.name)].append((at, int(dep.spec.replicas or 0)))
        found: Any = self.autoscaling.list_namespaced_horizontal_pod_autoscaler(self.namespace)
        for hpa in found.items:
            current = (hpa.status.current_metrics if hpa.status else None) or [None]
            util = current[0].resource.current.average_utilization if current[0] else None
            self.hpa[str(hpa.metadata.name)].append((time.monotonic() - self.w0, util))


def test_simulated_replicas_follow_the_real_hpa(
    api_client: client.ApiClient,
    namespace: str,
    cluster: support.Cluster,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    autoscaling: Any = client.AutoscalingV2Api(api_client)
    for name in hc.BEHAVIORS:
        apps.create_namespaced_deployment(namespace, _deployment(name))  # type: ignore[arg-type]
    want = hc.MIN_REPLICAS * len(hc.BEHAVIORS)
    support.wait_until(
        lambda: sum(map(_ready, core.list_namespaced_pod(namespace).items)) == want,
        timeout_s=60,
        what=f"{want} pods Ready",
    )
    # Align the trace with metrics-server's ticker: a scrape at SCRAPE_OFFSET_S (mid-block).
    scrape = _next_scrape(client.CustomObjectsApi(api_client), namespace)
    w0 = scrape - hc.SCRAPE_OFFSET_S
    while w0 < time.monotonic() + 0.2:
        w0 += hc.SCRAPE_S
    driver_api = support.api_client_for(cluster.kubeconfig)
    driver = Driver(driver_api, namespace, w0)
    thread = threading.Thread(target=driver.run, name="load-driver", daemon=True)
    time.sleep(max(0.0, w0 - time.monotonic()))
    thread.start()
    # The controller first syncs an HPA one sync period after it sees it: at FIRST_SYNC_S.
    time.sleep(max(0.0, w0 + hc.HPA_CREATED_S - time.monotonic()))
    created_at = time.monotonic() - w0
    for name in hc.BEHAVIORS:
        autoscaling.create_namespaced_horizontal_pod_autoscaler(namespace, _hpa(name))
    thread.join(timeout=hc.DURATION_S + 60)
    driver_api.close()  # type: ignore[no-untyped-call]
    assert not thread.is_alive(), "the load driver did not finish"
    if driver.error is not None:
        raise driver.error

    comparisons = [hc.compare(name, driver.record[name]) for name in hc.BEHAVIORS]
    out_dir = Path(os.environ.get("SURGE_HPA_COMPARISON_DIR") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "measuredAt": datetime.now().astimezone().isoformat(timespec="seconds"),
        "trace": {"knots": hc.KNOTS, "blockSeconds": hc.BLOCK_S, "rps": hc.rates()},
        "pipeline": {
            "syncPeriodSeconds": hc.SYNC_S,
            "metricResolutionSeconds": hc.SCRAPE_S,
            "scrapeOffsetSeconds": hc.SCRAPE_OFFSET_S,
            "firstSyncSeconds": hc.FIRST_SYNC_S,
            "hpaCreatedAtSeconds": round(created_at, 2),
        },
        "podCpuRequestMilli": hc.POD_REQUEST_M,
        "cpuPerRequestMilli": hc.CPU_PER_REQUEST_M,
        "targetUtilization": hc.TARGET_UTILIZATION,
        "annotationPatches": driver.patches,
        "wallSeconds": round(time.monotonic() - started, 1),
        "behaviors": {c.name: c.as_json() for c in comparisons},
        "realRecord": {k: [(round(t, 2), v) for t, v in r] for k, r in driver.record.items()},
        "realUtilization": {k: _changes(r) for k, r in driver.hpa.items()},
    }
    (out_dir / "hpa-comparison.json").write_text(json.dumps(doc, indent=1) + "\n")
    for c in comparisons:
        hc.plot(c, driver.record[c.name], str(out_dir / f"hpa-{c.name}.png"))
        print(
            f"{c.name}: within ±1 replica at {c.matches}/{len(c.instants)} sync instants "
            f"({c.ratio:.1%}); real scale events {c.scale_offsets} s after a sync"
        )
    print(f"wall {doc['wallSeconds']} s, {driver.patches} annotation patches, out: {out_dir}")

    for c in comparisons:
        # The premise of the mirror: the real controller changed the count at the sync
        # instants the simulator uses (within the drift of its 15 s queue), not between them.
        assert all(-1.0 <= x <= 4.0 for x in c.scale_offsets), (c.name, c.scale_offsets)
        assert max(c.real) > hc.MIN_REPLICAS, f"{c.name}: the real HPA never scaled up"
        assert c.ratio >= hc.REQUIRED_MATCH, (
            c.name,
            list(zip(c.instants, c.real, c.sim, strict=True)),
        )
