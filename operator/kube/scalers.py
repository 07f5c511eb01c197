"""The operator's door to the scalers of an experiment's target: the HPAs of a namespace and
KEDA's ScaledObjects (keda.sh/v1alpha1, through the custom objects API). Mixed into Kube.

A cluster without KEDA has no `scaledobjects` resource: listing them answers an empty list
(no ScaledObject can scale anything there), reading one answers None.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from surge.operator.kube.errors import absent, call

KEDA = ("keda.sh", "v1alpha1")
SCALED_OBJECTS = "scaledobjects"


class ScalerApi:
    """HPAs and ScaledObjects as plain JSON dicts (Kube provides the clients)."""

    api: client.ApiClient
    custom: client.CustomObjectsApi
    autoscaling: client.AutoscalingV2Api

    def _as_json(self, obj: Any) -> dict[str, Any]:
        return dict(self.api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    def hpas(self, namespace: str) -> list[dict[str, Any]]:
        """Every HPA of the namespace (to find those scaling the target)."""
        with call(f"list HorizontalPodAutoscalers in {namespace}"):
            items = self.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items
        return [self._as_json(h) for h in items]

    def scaled_objects(self, namespace: str) -> list[dict[str, Any]]:
        """Every ScaledObject of the namespace; [] where KEDA is not installed."""
        with call(f"list ScaledObjects in {namespace}"):
            try:
                res: Any = self.custom.list_namespaced_custom_object(
                    *KEDA, namespace, SCALED_OBJECTS
                )
            except ApiException as exc:
                if absent(exc):
                    return []
                raise
        return list(res.get("items", []))

    def scaled_object(self, namespace: str, name: str) -> dict[str, Any] | None:
        with call(f"read ScaledObject {namespace}/{name}"):
            try:
                got: Any = self.custom.get_namespaced_custom_object(
                    *KEDA, namespace, SCALED_OBJECTS, name
                )
            except ApiException as exc:
                if absent(exc):
                    return None
                raise
        return dict(got)

    def create_scaled_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        with call(f"create ScaledObject {ns}/{name}"):
            got: Any = self.custom.create_namespaced_custom_object(*KEDA, ns, SCALED_OBJECTS, obj)
        return dict(got)

    def patch_scaled_object(
        self, namespace: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Apply RFC 6902 operations (a `test` of the uid first); returns the object written."""
        with call(f"patch ScaledObject {namespace}/{name}"):
            got: Any = self.custom.patch_namespaced_custom_object(
                *KEDA,
                namespace,
                SCALED_OBJECTS,
                name,
                ops,
                _content_type="application/json-patch+json",
            )
        return dict(got)

    def delete_scaled_object(self, namespace: str, name: str, uid: str) -> None:
        """Delete the ScaledObject only if it is still the object `uid` (the one written)."""
        with call(f"delete ScaledObject {namespace}/{name}"):
            try:
                self.custom.delete_namespaced_custom_object(
                    *KEDA,
                    namespace,
                    SCALED_OBJECTS,
                    name,
                    body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)),
                )
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
