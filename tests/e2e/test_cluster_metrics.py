"""An HPA scales the target during a LoadTest; the replica timeline that the operator reads
from kube-state-metrics through a real Prometheus matches what the API server recorded.

The HPA is created only once the load has started, so its scale-up falls inside the
measured window. kwok reports 800m of CPU for each pod against a 500m request (160%).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from surge.api.results import load_results
from tests.e2e.operator_support import (
    LOCAL_PLACEMENT,
    Operator,
    alice,
    create,
    get,
    loadtest,
    operator,
    plain,
    wait_phase,
)
from tests.support import cluster as support
from tests.support.podrunner import PodRunner
from tests.support.prometheus import prometheus_missing_reason, running_prometheus

__all__ = ["alice", "operator"]

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

SCRAPE_S = 1.0
STEP_S = 0.25
# How far the change Prometheus shows may lie from the API server's event: one scrape
# interval, one query step (changes show at the next step), the event's timestamp (whole
# seconds, so up to 1 s early), and the controllers between the HPA's decision and the
# Deployment's status (ReplicaSet, kube-state-metrics' watch), given 0.5 s.
TOLERANCE_S = SCRAPE_S + STEP_S + 1.0 + 0.5


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_hpa_timeline_from_prometheus_matches_api_events(
    api_client: client.ApiClient,
    namespace: str,
    operator: Operator,
    alice: str,
    pod_runner: PodRunner,
    cluster: support.Cluster,
    tmp_path: Path,
) -> None:
    missing = prometheus_missing_reason()
    if missing:
        pytest.skip(missing)
    ksm = cluster.ksm_metrics_url
    assert ksm, "the local cluster's kube-state-metrics URL is unknown"
    target = ksm.removeprefix("http://").split("/")[0]
    apps: Any = client.AppsV1Api(api_client)
    autoscaling: Any = client.AutoscalingV2Api(api_client)
    apps.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "alice"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "alice"}},
                "template": {
                    "metadata": {
                        "labels": {"app": "alice"},
                        "annotations": {"kwok.x-k8s.io/usage-cpu": "800m"},
                    },
                    "spec": {
                        "nodeSelector": {"surge.dev/pool": "cpu"},
                        "containers": [
                            {
                                "name": "alice",
                                "image": "alice:1",
                                "resources": {"requests": {"cpu": "500m"}},
                            }
                        ],
                    },
                },
            },
        },
    )
    with running_prometheus(tmp_path, targets=[target], scrape_interval_s=SCRAPE_S) as prom:
        lt = loadtest(
            "scaled",
            alice,
            load={
                "stages": [{"duration": "100s", "target": 5}],
                "warmup": "2s",
                "workers": 1,
                "placement": LOCAL_PLACEMENT,
            },
        )
        lt["spec"]["target"]["deploymentRef"] = {"name": "alice"}
        lt["spec"]["prometheus"] = {"url": prom.url, "step": f"{int(STEP_S * 1000)}ms"}
        lt["spec"]["thresholds"] = ["replicas.max >= 2", "errors.rate < 5%"]
        create(api_client, namespace, lt)
        support.wait_until(
            lambda: (get(api_client, namespace, "scaled").get("status") or {}).get("loadStartTime"),
            timeout_s=90,
            what="load started",
        )
        autoscaling.create_namespaced_horizontal_pod_autoscaler(
            namespace,
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "alice"},
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "alice",
                    },
                    "minReplicas": 1,
                    "maxReplicas": 3,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 50},
                            },
                        }
                    ],
                },
            },
        )
        obj = wait_phase(
            api_client, namespace, "scaled", {"Succeeded", "Failed"}, operator, timeout_s=300
        )
    status = obj["status"]
    assert status["phase"] == "Succeeded", (status.get("message"), status.get("conditions"))
    results = load_results(status["results"], "status.results")
    window = results.window
    assert results.cluster is not None and results.cluster.replicas is not None
    replicas = results.cluster.replicas
    # What Prometheus saw: value changes of kube_deployment_status_replicas in the window.
    series = replicas.series
    changes = [
        (window.start + t, v)
        for (t, v), (_, before) in zip(series[1:], series[:-1], strict=True)
        if v != before
    ]
    # What the API server recorded: the HPA's rescale events, inside the same window.
    events = [
        e
        for e in plain(
            api_client, client.CoreV1Api(api_client).list_namespaced_event(namespace).items
        )
        if e["involvedObject"].get("kind") == "HorizontalPodAutoscaler"
        and e.get("reason") == "SuccessfulRescale"
    ]
    rescales = sorted(_epoch(e.get("lastTimestamp") or e["eventTime"]) for e in events)
    in_window = [t for t in rescales if window.start <= t <= window.end]
    assert in_window, (rescales, window)
    assert len(changes) == len(in_window) == replicas.scale_events, (changes, in_window)
    for (seen, _), recorded in zip(changes, in_window, strict=True):
        assert 0 <= seen - recorded <= TOLERANCE_S, (seen, recorded)
    assert replicas.max == 3
    assert replicas.min == 1
    assert replicas.time_to_first_scale_up_s == pytest.approx(
        changes[0][0] - window.start, abs=1e-6
    )
    mc = next(c for c in status["conditions"] if c["type"] == "MetricsAvailable")
    assert "replicas" not in mc["message"]  # the replica queries had data
    thresholds: list[dict[str, Any]] = status["thresholds"]
    assert thresholds[0]["metric"] == "replicas.max"
    assert thresholds[0]["passed"] is True
