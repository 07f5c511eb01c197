"""Every pod template Surge renders: the chart's operator Deployment and a worker Job."""

from __future__ import annotations

from typing import Any

from surge.api.loadtest import LoadTestSpec
from surge.operator.loadtest import builders
from tests.chart.rendering import one, render

# Uses every pod-shaping part of the spec: secret headers, resources, placement, separate.
REPRESENTATIVE_SPEC: dict[str, Any] = {
    "target": {
        "url": "http://alice.shop.svc:8080",
        "headers": [
            {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}}
        ],
    },
    "load": {
        "model": "constant",
        "stages": [{"duration": "60s", "target": 20}],
        "workers": 3,
        "placement": {
            "separate": True,
            "nodeSelector": {"surge.dev/pool": "cpu"},
            "tolerations": [{"key": "x", "operator": "Exists", "effect": "NoSchedule"}],
            "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}},
        },
    },
}


def worker_job(namespace: str, name: str = "alice") -> dict[str, Any]:
    owner = {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {"name": name, "namespace": namespace, "uid": "00000000-0000-0000-0000-1"},
    }
    spec = LoadTestSpec.model_validate(REPRESENTATIVE_SPEC)
    return builders.worker_job(
        owner,
        spec,
        "1",
        image="ghcr.io/surge-dev/surge:0.1.0",
        command=("surge", "worker"),
        metrics_port=9464,
    )


def pod_templates(namespace: str) -> dict[str, dict[str, Any]]:
    """Name -> pod template ({metadata, spec}) of every pod Surge can create."""
    deployment = one(render(namespace=namespace), "Deployment")
    return {
        "operator Deployment": deployment["spec"]["template"],
        "worker Job": worker_job(namespace)["spec"]["template"],
    }
