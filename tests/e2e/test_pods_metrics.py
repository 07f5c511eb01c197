"""The real HPA on a Pods metric (issue #30), served as custom.metrics.k8s.io by
hack/cluster/podmetrics: each pod's value of metric M is its annotation `metrics.surge.dev/M`,
which this test writes (as test_hpa_simulator.py writes kwok's usage-cpu annotations).

With an AverageValue target, kube-controller-manager computes in
kubernetes pkg/controller/podautoscaler/replica_calculator.go (GetMetricReplicas ->
calcPlainMetricReplicas), over the pods its selector matches (at the fixed points below none is
Pending, deleted or failed, which it would leave out):

    ratio   = mean(value over the pods that have one) / target
    no pod missing:  desired = current if |ratio - 1| <= 0.1, else ceil(ratio * pods with a value)
    some missing:    they count as `target` if ratio < 1 (scale-down), as 0 if ratio > 1; then
                     ratio' over all of them, and desired = current if |ratio' - 1| <= 0.1 or
                     the direction flipped, else ceil(ratio' * all) unless that moves against
                     ratio'

clamped to [minReplicas, maxReplicas]. `expected_replicas` is that function; the test drives
the Deployment to its fixed points and checks the controller lands on them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support import cluster as support

PAUSE = "registry.k8s.io/pause:3.10"  # never pulled: kwok runs no containers
METRIC = "inflight"
ANNOTATION = f"metrics.surge.dev/{METRIC}"
TARGET = 10  # averageValue: the metric's value per pod
MIN_REPLICAS, MAX_REPLICAS = 1, 6
TOLERANCE = 0.1  # kube-controller-manager's --horizontal-pod-autoscaler-tolerance default
HPA_SYNC_S = 15  # and its --horizontal-pod-autoscaler-sync-period default

# A plan gives each pod (sorted names) its value, or None: no annotation, so no metric.
Plan = Callable[[list[str]], list[float | None]]


def expected_replicas(values: list[float | None], current: int) -> int:
    """The HPA's next replica count for these per-pod values (see the module docstring)."""
    have = [v for v in values if v is not None]
    if not have:
        raise ValueError("no pod has a value: the HPA reports FailedGetPodsMetric")
    ratio = sum(have) / len(have) / TARGET
    missing = len(values) - len(have)
    if abs(ratio - 1) <= TOLERANCE and missing == 0:
        desired = current
    elif missing == 0:
        desired = math.ceil(ratio * len(have))
    else:
        # Missing pods count as the target on a scale-down, as 0 on a scale-up (and are left
        # out at a ratio of exactly 1, which changes nothing).
        fill = TARGET if ratio < 1 else 0 if ratio > 1 else None
        ratio2 = ratio if fill is None else (sum(have) + fill * missing) / len(values) / TARGET
        desired = math.ceil(ratio2 * len(values))
        # No change inside the tolerance, nor when filling flips the direction or when the
        # count would move against it.
        if (
            abs(ratio2 - 1) <= TOLERANCE
            or (ratio - 1) * (ratio2 - 1) < 0
            or (desired - current) * (ratio2 - 1) < 0
        ):
            desired = current
    return max(MIN_REPLICAS, min(MAX_REPLICAS, desired))


def fixed_point(plan: Plan, current: int) -> int:
    """Where the HPA settles when every replica set it makes gets `plan`'s values."""
    for _ in range(20):
        names = [f"pod-{i}" for i in range(current)]
        nxt = expected_replicas(plan(names), current)
        if nxt == current:
            return current
        current = nxt
    raise AssertionError(f"{plan} does not settle")


def spread(total: float) -> Plan:
    """`total` split evenly over the pods there are (a load shared by its replicas)."""
    return lambda names: [total / len(names)] * len(names)


def first_only(value: float) -> Plan:
    """Only the first pod has a value; the others have no annotation."""
    return lambda names: [value] + [None] * (len(names) - 1)


def test_expected_replicas() -> None:
    assert expected_replicas([35], 1) == 4  # ceil(3.5 * 1)
    assert expected_replicas([8.75] * 4, 4) == 4  # ratio 0.875, ceil(3.5)
    assert expected_replicas([3] * 4, 4) == 2  # ceil(0.3 * 4)
    assert expected_replicas([10.5] * 4, 4) == 4  # inside the tolerance
    assert expected_replicas([200], 1) == MAX_REPLICAS
    # Missing on a scale-down count as the target: (2 + 3 * 10) / 40 = 0.8, ceil(3.2) = 4.
    assert expected_replicas([2, None, None, None], 4) == 4
    # Missing on a scale-up count as 0: 50 / 20 = 2.5, ceil(5) = 5.
    assert expected_replicas([50, None], 2) == 5
    assert fixed_point(spread(35), 1) == 4
    assert fixed_point(spread(12), 4) == 2
    assert fixed_point(first_only(2), 4) == 4
    with pytest.raises(ValueError, match="no pod has a value"):
        expected_replicas([None], 1)


def _serves_custom_metrics(api: client.ApiClient) -> bool:
    try:
        client.ApiregistrationV1Api(api).read_api_service("v1beta2.custom.metrics.k8s.io")
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _deployment(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": MIN_REPLICAS,
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


def _hpa(name: str) -> dict[str, Any]:
    # No stabilization either way: each step lands at the next HPA sync.
    instant = {"stabilizationWindowSeconds": 0, "policies": [
        {"type": "Percent", "value": 1000, "periodSeconds": 1}]}  # fmt: skip
    return {
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": MIN_REPLICAS,
            "maxReplicas": MAX_REPLICAS,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": METRIC},
                        "target": {"type": "AverageValue", "averageValue": str(TARGET)},
                    },
                }
            ],
            "behavior": {"scaleUp": instant, "scaleDown": instant},
        },
    }


def _quantity(value: float) -> str:
    return f"{round(value * 1000)}m"


def _value(quantity: str) -> float:
    """The value of an annotation this test wrote (milli-units)."""
    return int(quantity.removesuffix("m")) / 1000


class Driver:
    """Keeps the Deployment's pods annotated per a plan, and watches its replicas."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)

    def pods(self) -> list[Any]:
        items: Any = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"app={self.name}"
        )
        live = [p for p in items.items if p.metadata.deletion_timestamp is None]
        return sorted(live, key=lambda p: str(p.metadata.name))

    def apply(self, plan: Plan) -> int:
        """Writes `plan`'s annotations where they differ; returns the number of live pods.

        Removals, then decreases, then increases: an HPA sync that lands between two patches
        then never adds some pods' raised values to others' old, higher ones (which could
        scale past the step's count and back).
        """
        pods = self.pods()
        todo: list[tuple[int, float, str, str | None]] = []
        for pod, value in zip(pods, plan([p.metadata.name for p in pods]), strict=True):
            have = (pod.metadata.annotations or {}).get(ANNOTATION)
            want = None if value is None else _quantity(value)
            if have == want:
                continue
            old = float("inf") if have is None else _value(have)
            order = 0 if value is None else 1 if value < old else 2
            todo.append((order, 0.0 if value is None else value, pod.metadata.name, want))
        for _, _, pod_name, want in sorted(todo):
            body = {"metadata": {"annotations": {ANNOTATION: want}}}
            try:
                self.core.patch_namespaced_pod(pod_name, self.namespace, body)
            except ApiException as exc:
                if exc.status != 404:  # deleted since the list
                    raise
        return len(pods)

    def names(self) -> list[str]:
        return [str(p.metadata.name) for p in self.pods()]

    def replicas(self) -> int:
        scale: Any = self.apps.read_namespaced_deployment_scale(self.name, self.namespace)
        return int(scale.spec.replicas or 0)

    def reach(self, plan: Plan, want: int, timeout_s: float) -> None:
        """Applies `plan` to whatever pods there are until the Deployment has `want` of them."""

        def settled() -> bool:
            live = self.apply(plan)
            return self.replicas() == want and live == want

        support.wait_until(
            settled,
            timeout_s=timeout_s,
            interval_s=0.25,
            what=f"{self.name} at {want} replicas (now {self.replicas()})",
        )

    def served(self, version: str) -> dict[str, str]:
        """pod name -> value, as custom.metrics.k8s.io answers the HPA's query."""
        path = f"/apis/custom.metrics.k8s.io/{version}/namespaces/{self.namespace}/pods/*/{METRIC}"
        request = self.api.param_serialize(
            "GET",
            path,
            query_params=[("labelSelector", f"app={self.name}")],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response: Any = self.api.call_api(*request, _request_timeout=10)
        response.read()
        if response.status != 200:
            raise AssertionError(f"GET {path}: {response.status} {response.data!r}")
        doc = json.loads(response.data)
        return {i["describedObject"]["name"]: i["value"] for i in doc["items"]}

    def wait_served(self, want: dict[str, str]) -> None:
        support.wait_until(
            lambda: self.served("v1beta2") == want,
            timeout_s=10,
            interval_s=0.1,
            what=f"custom.metrics.k8s.io serving {want} (now {self.served('v1beta2')})",
        )

    def hpa_status(self) -> Any:
        hpa: Any = self.autoscaling.read_namespaced_horizontal_pod_autoscaler(
            self.name, self.namespace
        )
        return hpa.status


@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_hpa_scales_on_a_pods_metric(api_client: client.ApiClient, namespace: str) -> None:
    if not _serves_custom_metrics(api_client):
        pytest.skip(
            "this cluster serves no custom.metrics.k8s.io (hack/cluster/podmetrics-up.sh; "
            "SURGE_PODMETRICS=0 skips it)"
        )
    name = "agent"
    d = Driver(api_client, namespace, name)
    d.apps.create_namespaced_deployment(namespace, _deployment(name))  # type: ignore[arg-type]
    support.wait_until(lambda: len(d.pods()) == 1, timeout_s=30, what=f"{name}'s first pod")
    (pod,) = [p.metadata.name for p in d.pods()]
    # A pod without the annotation has no value: it is left out, not reported as 0.
    assert d.served("v1beta2") == {}

    # Up: 35 shared by the replicas; ceil(35 / 10) = 4.
    up = spread(35)
    assert fixed_point(up, 1) == 4
    d.apply(up)
    d.wait_served({pod: "35"})  # the adapter's pod cache follows the patch within moments
    assert d.served("v1beta1") == {pod: "35"}
    hpa = _hpa(name)
    d.autoscaling.create_namespaced_horizontal_pod_autoscaler(namespace, hpa)  # type: ignore[arg-type]
    d.reach(up, 4, timeout_s=4 * HPA_SYNC_S)
    d.wait_served(dict.fromkeys(d.names(), "8750m"))

    # Missing pods: only the first keeps a value (2). The HPA averages over that one pod (2) and,
    # as this is a scale-down, counts the 3 others as the target: (2 + 30) / 40 = 0.8 and
    # ceil(3.2) = 4, no change. Had the adapter reported 0 for them, it would scale to 1.
    hold = first_only(2)
    assert fixed_point(hold, 4) == 4
    d.apply(hold)
    d.wait_served({d.names()[0]: "2"})
    status = support.wait_until(
        lambda: _averaged(d.hpa_status(), "2"),
        timeout_s=3 * HPA_SYNC_S,
        what="an HPA sync on the one pod's value",
    )
    assert (status.desired_replicas, d.replicas()) == (4, 4)

    # Down: 12 shared by the replicas; ceil(0.3 * 4) = 2.
    down = spread(12)
    assert fixed_point(down, 4) == 2
    d.reach(down, 2, timeout_s=4 * HPA_SYNC_S)
    d.wait_served(dict.fromkeys(d.names(), "6"))
    status = support.wait_until(
        lambda: _averaged(d.hpa_status(), "6"),
        timeout_s=3 * HPA_SYNC_S,
        what="an HPA sync on 2 pods of 6",
    )
    assert (status.desired_replicas, d.replicas()) == (2, 2)


def _averaged(status: Any, value: str) -> Any:
    """The status once the HPA has computed an average of `value` (a sync on the new values)."""
    metrics = status.current_metrics or []
    if len(metrics) == 1 and metrics[0].pods.current.average_value == value:
        return status
    return None
