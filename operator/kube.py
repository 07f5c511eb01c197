"""The operator's only door to the Kubernetes API. Everything returns plain JSON dicts."""

from __future__ import annotations

import base64
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from surge.api.base import GROUP, VERSION


class Kube:
    def __init__(self, api: client.ApiClient | None = None) -> None:
        self.api = api or client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def _json(self, obj: Any) -> dict[str, Any]:
        return dict(self.api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    def ensure(self, obj: dict[str, Any]) -> bool:
        """Create `obj` unless it exists (check-then-create; 409 counts as existing)."""
        kind, ns = obj["kind"], obj["metadata"]["namespace"]
        create: Any = {
            "ConfigMap": self.core.create_namespaced_config_map,
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Job": self.batch.create_namespaced_job,
            "Role": self.rbac.create_namespaced_role,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
        }[kind]
        try:
            create(ns, obj)
        except ApiException as exc:
            if exc.status == 409:
                if kind == "Role":  # resourceNames follow the current run
                    self.rbac.patch_namespaced_role(
                        obj["metadata"]["name"], ns, {"rules": obj["rules"]}
                    )
                return False
            raise
        return True

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json(self.apps.read_namespaced_deployment(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json(self.core.read_namespaced_config_map(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_configmap_data(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.core.patch_namespaced_config_map(name, namespace, {"data": data})

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        raw = (secret.data or {}).get(key)
        return base64.b64decode(raw).decode() if raw else None

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json(self.batch.read_namespaced_job(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        return [self._json(p) for p in items]

    def pod_log(self, namespace: str, name: str) -> str | None:
        """The log's last lines; None when the pod or its log is gone. Other API errors
        (a 403 from missing RBAC) raise, so they are seen rather than read as "no log"."""
        try:
            return str(
                self.core.read_namespaced_pod_log(
                    name, namespace, container="worker", tail_lines=50
                )
            )
        except ApiException as exc:
            if exc.status in (400, 404):  # gone, or never started
                return None
            raise

    def delete_jobs(self, namespace: str, selector: str) -> int:
        jobs = self.batch.list_namespaced_job(namespace, label_selector=selector).items
        for job in jobs:
            name = str(job.metadata.name) if job.metadata else ""
            try:
                self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    raise
        return len(jobs)

    def delete_pods(self, namespace: str, selector: str) -> None:
        self.core.delete_collection_namespaced_pod(namespace, label_selector=selector)

    def loadtests(self, namespace: str) -> list[dict[str, Any]]:
        res: Any = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "loadtests")
        return list(res.get("items", []))

    # -- ScalingExperiment: the target's Deployment and HPA, child LoadTests ----------------

    def replace_deployment_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        """Write `spec` as the whole Deployment spec (optimistic concurrency via
        resourceVersion; a conflict raises and the next reconcile retries)."""
        live = self._json(self.apps.read_namespaced_deployment(name, namespace))
        body: Any = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": live["metadata"],
            "spec": spec,
        }
        self.apps.replace_namespaced_deployment(name, namespace, body)

    def hpa(self, namespace: str, name: str) -> dict[str, Any] | None:
        api = client.AutoscalingV2Api(self.api)
        try:
            return self._json(api.read_namespaced_horizontal_pod_autoscaler(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def put_hpa_spec(
        self, namespace: str, name: str, spec: dict[str, Any] | None, labels: dict[str, str]
    ) -> None:
        """Make the HPA's spec `spec`: replace, create when missing, delete when None."""
        api = client.AutoscalingV2Api(self.api)
        live = self.hpa(namespace, name)
        if spec is None:
            if live is not None:
                api.delete_namespaced_horizontal_pod_autoscaler(name, namespace)
            return
        body: Any = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "spec": spec,
        }
        if live is None:
            body["metadata"] = {"name": name, "namespace": namespace, "labels": labels}
            api.create_namespaced_horizontal_pod_autoscaler(namespace, body)
        else:
            body["metadata"] = live["metadata"]
            api.replace_namespaced_horizontal_pod_autoscaler(name, namespace, body)

    def loadtest(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            res: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "loadtests", name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(res)

    def create_loadtest(self, obj: dict[str, Any]) -> bool:
        try:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, obj["metadata"]["namespace"], "loadtests", obj
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def suspend_loadtest(self, namespace: str, name: str) -> None:
        """spec.suspend = true: the LoadTest's own lifecycle aborts it and stops its workers."""
        try:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "loadtests", name, {"spec": {"suspend": True}}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def delete_loadtests(self, namespace: str, selector: str) -> None:
        items: Any = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "loadtests", label_selector=selector
        )
        for item in items.get("items", []):
            try:
                self.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, "loadtests", item["metadata"]["name"]
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def experiments(self, namespace: str) -> list[dict[str, Any]]:
        res: Any = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "scalingexperiments"
        )
        return list(res.get("items", []))
