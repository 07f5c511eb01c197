"""KEDA on the local control plane (issue #30): a ScaledObject scales a Deployment of KWOK pods
through the real HPA that KEDA creates, and to and from zero through KEDA's activation.

The trigger is KEDA's `metrics-api` scaler reading `{"value": v}` from a loopback HTTP server
that the test runs (the KEDA operator is a host process, so it reaches 127.0.0.1); the test
sets v. KEDA passes the value to the HPA as an External metric with an AverageValue target
(the scaler's default metricType), and the HPA controller computes, in
kubernetes pkg/controller/podautoscaler/replica_calculator.go GetExternalPerPodMetricReplicas:

    desired = ceil(v / targetValue)          (unchanged while |v / (target * current) - 1| <= 0.1)

clamped to [max(minReplicaCount, 1), maxReplicaCount]. Below that, KEDA itself scales: to 0
once v <= activationTargetValue for cooldownPeriod, and from 0 to 1 as soon as
v > activationTargetValue (pkg/scaling/executor/scale_scaledobjects.go).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support import cluster as support

PAUSE = "registry.k8s.io/pause:3.10"  # never pulled: kwok runs no containers
TARGET = 5  # targetValue: the metric's value per replica
MAX_REPLICAS = 8
HPA_SYNC_S = 15  # kube-controller-manager's --horizontal-pod-autoscaler-sync-period default


class MetricServer:
    """`GET /` answers {"value": <the value the test set>} on 127.0.0.1."""

    def __init__(self) -> None:
        self.value = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"value": outer.value}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MetricServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metric() -> Iterator[MetricServer]:
    with MetricServer() as server:
        yield server


def _keda_serves(api: client.ApiClient) -> bool:
    try:
        client.ApiregistrationV1Api(api).read_api_service("v1beta1.external.metrics.k8s.io")
        client.ApiextensionsV1Api(api).read_custom_resource_definition("scaledobjects.keda.sh")
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _deployment(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"surge.dev/pool": "cpu"},
                    "containers": [{"name": "app", "image": PAUSE}],
                },
            },
        },
    }


def _scaled_object(name: str, url: str) -> dict[str, Any]:
    # No stabilization either way: each step lands at the next HPA sync.
    instant = {"stabilizationWindowSeconds": 0, "policies": [
        {"type": "Percent", "value": 1000, "periodSeconds": 1}]}  # fmt: skip
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"name": name},
            "pollingInterval": 1,
            "cooldownPeriod": 3,
            "minReplicaCount": 0,
            "maxReplicaCount": MAX_REPLICAS,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleUp": instant, "scaleDown": instant}
                }
            },
            "triggers": [
                {
                    "type": "metrics-api",
                    "metadata": {
                        "url": url,
                        "valueLocation": "value",
                        "targetValue": str(TARGET),
                        "activationTargetValue": "0",
                    },
                }
            ],
        },
    }


def expected_replicas(value: float, current: int) -> int:
    """KEDA + HPA on an AverageValue External metric (see the module docstring)."""
    if value <= 0:
        return 0  # inactive: KEDA scales to minReplicaCount 0 after the cooldown
    if current == 0:
        current = 1  # activation: KEDA scales 0 -> 1, then the HPA takes over
    if abs(value / (TARGET * current) - 1) <= 0.1:
        return current
    return min(MAX_REPLICAS, max(1, math.ceil(value / TARGET)))


def test_expected_replicas() -> None:
    assert [expected_replicas(v, 1) for v in (0, 3, 5, 23, 7, 100)] == [0, 1, 1, 5, 2, 8]
    assert expected_replicas(3, 0) == 1
    assert expected_replicas(21, 4) == 4  # 21 / 20 is inside the 10 % tolerance


@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_scaled_object_scales_through_the_hpa_and_to_zero(
    api_client: client.ApiClient, namespace: str, metric: MetricServer
) -> None:
    if not _keda_serves(api_client):
        pytest.skip("this cluster has no KEDA (hack/cluster/keda-up.sh; SURGE_KEDA=0 skips it)")
    apps = client.AppsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    autoscaling = client.AutoscalingV2Api(api_client)
    name = "agent"
    apps.create_namespaced_deployment(namespace, _deployment(name))  # type: ignore[arg-type]
    so = ("keda.sh", "v1alpha1", namespace, "scaledobjects")
    custom.create_namespaced_custom_object(*so, _scaled_object(name, metric.url))

    def replicas() -> int:
        dep: Any = apps.read_namespaced_deployment_scale(name, namespace)
        return int(dep.spec.replicas or 0)

    def reach(value: float, want: int, timeout_s: float) -> None:
        metric.value = value
        assert expected_replicas(value, replicas()) == want
        support.wait_until(
            lambda: replicas() == want or None,
            timeout_s=timeout_s,
            interval_s=0.25,
            what=f"{name} at {want} replicas for metric {value} (now {replicas()})",
        )

    try:
        # Inactive from the start (v = 0 <= activation 0): KEDA scales 1 -> 0.
        reach(0, 0, timeout_s=30)
        # Activation: KEDA scales 0 -> 1 at its next poll; the HPA agrees (ceil(3/5) = 1).
        reach(3, 1, timeout_s=20)
        hpa_name = f"keda-hpa-{name}"
        hpa: Any = support.wait_until(
            lambda: _read_hpa(autoscaling, hpa_name, namespace),
            timeout_s=20,
            what=f"HPA {hpa_name}",
        )
        assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, MAX_REPLICAS)
        (spec_metric,) = hpa.spec.metrics
        assert spec_metric.type == "External"
        assert spec_metric.external.target.type == "AverageValue"
        # Through the real HPA: ceil(23/5) = 5, then back down to ceil(7/5) = 2.
        reach(23, 5, timeout_s=3 * HPA_SYNC_S)
        reach(7, 2, timeout_s=3 * HPA_SYNC_S)
        # The HPA controller writes the scale before its own status: wait for the status to follow.
        support.wait_until(
            lambda: _desired(autoscaling, hpa_name, namespace) == 2 or None,
            timeout_s=HPA_SYNC_S,
            interval_s=0.25,
            what=f"HPA {hpa_name} status.desiredReplicas 2 "
            f"(now {_desired(autoscaling, hpa_name, namespace)})",
        )
        # Deactivation: v = 0 for the cooldown (3 s) and KEDA scales to 0, below the HPA's 1.
        reach(0, 0, timeout_s=30)
    finally:
        # Before the namespace goes: KEDA's finalizer needs the operator, not the GC.
        custom.delete_namespaced_custom_object(*so, name)
        support.wait_until(
            lambda: not _exists(custom, so, name),
            timeout_s=30,
            what=f"ScaledObject {name} deleted",
        )


def _read_hpa(api: client.AutoscalingV2Api, name: str, namespace: str) -> object | None:
    try:
        return api.read_namespaced_horizontal_pod_autoscaler(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _desired(api: client.AutoscalingV2Api, name: str, namespace: str) -> int | None:
    hpa: Any = api.read_namespaced_horizontal_pod_autoscaler(name, namespace)
    return hpa.status.desired_replicas if hpa.status else None


def _exists(api: client.CustomObjectsApi, so: tuple[str, str, str, str], name: str) -> bool:
    try:
        api.get_namespaced_custom_object(*so, name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
