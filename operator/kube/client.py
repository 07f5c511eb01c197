"""The operator's only door to the Kubernetes API. Everything returns plain JSON dicts.

Every failure leaves as a KubeError naming what was attempted on which object, with the API
server's own message; `permanent` tells a 4xx that will never succeed (other than 409 and
429) from what may (5xx, 429, a broken connection).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from surge.api.base import GROUP, VERSION
from surge.operator.kube.errors import KubeError, absent, call, server_message
from surge.operator.kube.scalers import ScalerApi

__all__ = ["Kube", "KubeError", "server_message"]


class Kube(ScalerApi):
    def __init__(self, api: client.ApiClient | None = None) -> None:
        self.api = api or client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.autoscaling = client.AutoscalingV2Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    def _json(self, obj: Any) -> dict[str, Any]:
        return dict(self.api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    def _read(self, action: str, read: Any, *args: Any) -> dict[str, Any] | None:
        """`read(*args)` as JSON; None on 404."""
        with call(action):
            try:
                return self._json(read(*args))
            except ApiException as exc:
                if absent(exc):
                    return None
                raise

    def ensure(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create `obj`; when it exists already, return the live object (the caller checks
        its owner) — None means it was created now."""
        kind, ns, name = obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]
        create: Any = {
            "ConfigMap": self.core.create_namespaced_config_map,
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Job": self.batch.create_namespaced_job,
            "Role": self.rbac.create_namespaced_role,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
        }[kind]
        read: Any = {
            "ConfigMap": self.core.read_namespaced_config_map,
            "ServiceAccount": self.core.read_namespaced_service_account,
            "Job": self.batch.read_namespaced_job,
            "Role": self.rbac.read_namespaced_role,
            "RoleBinding": self.rbac.read_namespaced_role_binding,
        }[kind]
        with call(f"create {kind} {ns}/{name}"):
            try:
                create(ns, obj)
                return None
            except ApiException as exc:
                if exc.status != 409:
                    raise
        live = self._read(f"read {kind} {ns}/{name}", read, name, ns)
        if kind == "Role" and live is not None:  # resourceNames follow the current run
            with call(f"patch Role {ns}/{name}"):
                self.rbac.patch_namespaced_role(name, ns, {"rules": obj["rules"]})
        return live or {}

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(
            f"read Deployment {namespace}/{name}",
            self.apps.read_namespaced_deployment,
            name,
            namespace,
        )

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(
            f"read ConfigMap {namespace}/{name}",
            self.core.read_namespaced_config_map,
            name,
            namespace,
        )

    def patch_configmap_data(self, namespace: str, name: str, data: dict[str, str]) -> None:
        with call(f"patch ConfigMap {namespace}/{name}"):
            self.core.patch_namespaced_config_map(name, namespace, {"data": data})

    def delete_configmaps(self, namespace: str, selector: str) -> None:
        with call(f"delete ConfigMaps in {namespace} ({selector})"):
            self.core.delete_collection_namespaced_config_map(namespace, label_selector=selector)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        secret = self._read(
            f"read Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace
        )
        raw = ((secret or {}).get("data") or {}).get(key)
        if not raw:
            return None
        try:
            return base64.b64decode(raw).decode()
        except (ValueError, UnicodeDecodeError):
            # The tenant's own bytes: a permanent refusal naming the key, never a retry loop.
            action = f"read Secret {namespace}/{name}"
            raise KubeError(action, 422, f"key {key!r} is not UTF-8 text") from None

    def secret_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's labels, None when it does not exist. Reads metadata only: the policy
        check needs the opt-in label, never the data."""
        with call(f"read Secret {namespace}/{name}"):
            try:
                resp: Any = self.core.read_namespaced_secret(
                    name,
                    namespace,
                    _preload_content=False,
                    _headers={
                        "Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
                    },
                )
                got = json.loads(resp.data or b"{}")
            except ApiException as exc:
                if absent(exc):
                    return None
                raise
        return dict(((got or {}).get("metadata") or {}).get("labels") or {})

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(
            f"read Service {namespace}/{name}", self.core.read_namespaced_service, name, namespace
        )

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(
            f"read Job {namespace}/{name}", self.batch.read_namespaced_job, name, namespace
        )

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        with call(f"list Pods in {namespace} ({selector})"):
            items = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        return [self._json(p) for p in items]

    def pod_log(self, namespace: str, name: str) -> str | None:
        """The log's last lines; None when the pod or its log is gone. Other API errors
        (a 403 from missing RBAC) raise, so they are seen rather than read as "no log"."""
        with call(f"read the log of Pod {namespace}/{name}"):
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
        with call(f"delete Jobs in {namespace} ({selector})"):
            jobs = self.batch.list_namespaced_job(namespace, label_selector=selector).items
            for job in jobs:
                name = str(job.metadata.name) if job.metadata else ""
                try:
                    self.batch.delete_namespaced_job(
                        name, namespace, propagation_policy="Background"
                    )
                except ApiException as exc:
                    if not absent(exc):
                        raise
        return len(jobs)

    def experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        def read(n: str, ns: str) -> Any:
            return self.custom.get_namespaced_custom_object(
                GROUP, VERSION, ns, "scalingexperiments", n
            )

        return self._read(f"read ScalingExperiment {namespace}/{name}", read, name, namespace)

    def loadtests(self, namespace: str) -> list[dict[str, Any]]:
        with call(f"list LoadTests in {namespace}"):
            res: Any = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, "loadtests"
            )
        return list(res.get("items", []))

    # -- one run per target: coordination.k8s.io Leases ------------------------------------

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(
            f"read Lease {namespace}/{name}",
            self.coordination.read_namespaced_lease,
            name,
            namespace,
        )

    def create_lease(self, obj: dict[str, Any]) -> bool:
        """False when a Lease of that name exists already."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        with call(f"create Lease {ns}/{name}"):
            try:
                body: Any = obj
                self.coordination.create_namespaced_lease(ns, body)
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
        return True

    def replace_lease(self, obj: dict[str, Any]) -> bool:
        """Write `obj` (carrying the resourceVersion read); False when someone wrote first."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        with call(f"update Lease {ns}/{name}"):
            try:
                body: Any = obj
                self.coordination.replace_namespaced_lease(name, ns, body)
            except ApiException as exc:
                if exc.status in (404, 409):
                    return False
                raise
        return True

    def delete_lease(self, namespace: str, name: str, resource_version: str) -> None:
        """Delete the Lease only if it is still the version read (the holder's own)."""
        with call(f"delete Lease {namespace}/{name}"):
            try:
                self.coordination.delete_namespaced_lease(
                    name,
                    namespace,
                    body=client.V1DeleteOptions(
                        preconditions=client.V1Preconditions(resource_version=resource_version)
                    ),
                )
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise

    # ScalingExperiment: the target's Deployment and HPA, child LoadTests.
    def patch_deployment(
        self, namespace: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Apply RFC 6902 operations (a `test` of the uid first, so they land on that object
        or on none); returns the Deployment as written."""
        with call(f"patch Deployment {namespace}/{name}"):
            body: Any = ops
            return self._json(self.apps.patch_namespaced_deployment(name, namespace, body))

    def hpa(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(
            f"read HorizontalPodAutoscaler {namespace}/{name}",
            self.autoscaling.read_namespaced_horizontal_pod_autoscaler,
            name,
            namespace,
        )

    def put_hpa_spec(
        self, namespace: str, name: str, spec: dict[str, Any] | None, labels: dict[str, str]
    ) -> None:
        """Make the HPA's spec `spec`: replace, create when missing, delete when None."""
        api = self.autoscaling
        live = self.hpa(namespace, name)
        with call(f"write HorizontalPodAutoscaler {namespace}/{name}"):
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
        def read(n: str, ns: str) -> Any:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "loadtests", n)

        return self._read(f"read LoadTest {namespace}/{name}", read, name, namespace)

    def create_loadtest(self, obj: dict[str, Any]) -> bool:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        with call(f"create LoadTest {ns}/{name}"):
            try:
                self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, "loadtests", obj)
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
        return True

    def suspend_loadtest(self, namespace: str, name: str) -> None:
        """spec.suspend = true: the LoadTest's own lifecycle aborts it and stops its workers."""
        with call(f"patch LoadTest {namespace}/{name}"):
            try:
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, "loadtests", name, {"spec": {"suspend": True}}
                )
            except ApiException as exc:
                if not absent(exc):
                    raise

    def delete_loadtests(self, namespace: str, selector: str) -> None:
        with call(f"delete LoadTests in {namespace} ({selector})"):
            items: Any = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, "loadtests", label_selector=selector
            )
            for item in items.get("items", []):
                try:
                    self.custom.delete_namespaced_custom_object(
                        GROUP, VERSION, namespace, "loadtests", item["metadata"]["name"]
                    )
                except ApiException as exc:
                    if not absent(exc):
                        raise
