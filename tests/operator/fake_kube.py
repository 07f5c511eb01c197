"""An in-memory stand-in for surge.operator.kube.client.Kube, for unit tests of the state machines.

It keeps plain JSON objects by (kind, namespace, name), answers label selectors of the
form `k=v,k2=v2`, and records every write in `calls`. It is a fake for pure-logic tests:
the contracts themselves are tested against the real API server (tests/e2e).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from surge.operator.kube.client import KubeError

Key = tuple[str, str, str]


def _matches(obj: dict[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    return True


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.logs: dict[str, str] = {}
        self.calls: list[tuple[str, ...]] = []
        self.failures: dict[str, KubeError] = {}
        """Method name (ensure: "ensure:<Kind>") -> the error its next call raises, once."""
        self._version = 0

    def _maybe_fail(self, method: str) -> None:
        err = self.failures.pop(method, None)
        if err is not None:
            raise err

    def _bump(self, obj: dict[str, Any]) -> None:
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)

    # -- test set-up --------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def of_kind(self, kind: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        return [
            o
            for (k, ns, _), o in sorted(self.objects.items())
            if k == kind and ns == namespace and _matches(o, selector)
        ]

    # -- the Kube interface -------------------------------------------------------------

    def ensure(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        self.calls.append(("ensure", *key))
        self._maybe_fail(f"ensure:{obj['kind']}")
        if key in self.objects:
            return self.objects[key]
        self.objects[key] = copy.deepcopy(obj)
        return None

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._maybe_fail("deployment")
        return self.get("Deployment", namespace, name)

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._maybe_fail("configmap")
        return self.get("ConfigMap", namespace, name)

    def delete_configmaps(self, namespace: str, selector: str) -> None:
        self.calls.append(("delete_configmaps", namespace, selector))
        for cm in self.of_kind("ConfigMap", namespace, selector):
            del self.objects[("ConfigMap", namespace, cm["metadata"]["name"])]

    def patch_configmap_data(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.calls.append(("patch_configmap_data", namespace, name))
        cm = self.objects[("ConfigMap", namespace, name)]
        cm.setdefault("data", {}).update(data)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        self._maybe_fail("secret_value")
        secret = self.get("Secret", namespace, name)
        return None if secret is None else (secret.get("stringData") or {}).get(key)

    def secret_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        self._maybe_fail("secret_labels")
        got = self.get("Secret", namespace, name)
        return None if got is None else dict(got["metadata"].get("labels") or {})

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._maybe_fail("service")
        return self.get("Service", namespace, name)

    def loadtests(self, namespace: str) -> list[dict[str, Any]]:
        self._maybe_fail("loadtests")
        return self.of_kind("LoadTest", namespace)

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("Job", namespace, name)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self._maybe_fail("pods")
        return self.of_kind("Pod", namespace, selector)

    def pod_log(self, namespace: str, name: str) -> str | None:
        return self.logs.get(name)

    def delete_jobs(self, namespace: str, selector: str) -> int:
        self.calls.append(("delete_jobs", namespace, selector))
        jobs = self.of_kind("Job", namespace, selector)
        for j in jobs:
            del self.objects[("Job", namespace, j["metadata"]["name"])]
        return len(jobs)

    def patch_deployment(
        self, namespace: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """RFC 6902, as the API server applies it: all or nothing (a failed `test` is a 422)."""
        self.calls.append(("patch_deployment", namespace, name))
        self._maybe_fail("patch_deployment")
        key = ("Deployment", namespace, name)
        if key not in self.objects:
            raise KubeError(f"patch Deployment {namespace}/{name}", 404, "not found")
        try:
            patched = jsonpatch.apply_patch(self.objects[key], ops)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise KubeError(f"patch Deployment {namespace}/{name}", 422, str(exc)) from None
        if patched["spec"] != self.objects[key]["spec"]:
            patched["metadata"]["generation"] = int(patched["metadata"].get("generation", 1)) + 1
        self.objects[key] = patched
        return copy.deepcopy(patched)

    def hpa(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("HorizontalPodAutoscaler", namespace, name)

    def put_hpa_spec(
        self, namespace: str, name: str, spec: dict[str, Any] | None, labels: dict[str, str]
    ) -> None:
        self.calls.append(("put_hpa_spec", namespace, name))
        key = ("HorizontalPodAutoscaler", namespace, name)
        if spec is None:
            self.objects.pop(key, None)
            return
        meta = {"name": name, "namespace": namespace, "labels": labels}
        self.objects[key] = {"kind": key[0], "metadata": meta, "spec": copy.deepcopy(spec)}

    def hpas(self, namespace: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.of_kind("HorizontalPodAutoscaler", namespace))

    # -- KEDA ScaledObjects -------------------------------------------------------------

    def scaled_objects(self, namespace: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.of_kind("ScaledObject", namespace))

    def scaled_object(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.get("ScaledObject", namespace, name))

    def create_scaled_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        key = ("ScaledObject", obj["metadata"]["namespace"], obj["metadata"]["name"])
        self.calls.append(("create_scaled_object", *key[1:]))
        if key in self.objects:
            raise KubeError(f"create ScaledObject {key[1]}/{key[2]}", 409, "already exists")
        made = copy.deepcopy(obj)
        self._version += 1
        made["metadata"]["uid"] = f"so-uid-{self._version}"
        self.objects[key] = made
        return copy.deepcopy(made)

    def patch_scaled_object(
        self, namespace: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self.calls.append(("patch_scaled_object", namespace, name))
        key = ("ScaledObject", namespace, name)
        if key not in self.objects:
            raise KubeError(f"patch ScaledObject {namespace}/{name}", 404, "not found")
        try:
            patched = jsonpatch.apply_patch(self.objects[key], ops)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise KubeError(f"patch ScaledObject {namespace}/{name}", 422, str(exc)) from None
        self.objects[key] = patched
        return copy.deepcopy(patched)

    def delete_scaled_object(self, namespace: str, name: str, uid: str) -> None:
        self.calls.append(("delete_scaled_object", namespace, name))
        live = self.objects.get(("ScaledObject", namespace, name))
        if live is not None and live["metadata"].get("uid") == uid:
            del self.objects[("ScaledObject", namespace, name)]

    def loadtest(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("LoadTest", namespace, name)

    def experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("ScalingExperiment", namespace, name)

    def create_loadtest(self, obj: dict[str, Any]) -> bool:
        return self.ensure(obj) is None

    # -- Leases: create/replace/delete with the API server's version semantics -----------

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.get("Lease", namespace, name))

    def create_lease(self, obj: dict[str, Any]) -> bool:
        key = ("Lease", obj["metadata"]["namespace"], obj["metadata"]["name"])
        self.calls.append(("create_lease", *key[1:]))
        if key in self.objects:
            return False
        self.objects[key] = copy.deepcopy(obj)
        self._bump(self.objects[key])
        return True

    def replace_lease(self, obj: dict[str, Any]) -> bool:
        key = ("Lease", obj["metadata"]["namespace"], obj["metadata"]["name"])
        self.calls.append(("replace_lease", *key[1:]))
        live = self.objects.get(key)
        if live is None or live["metadata"]["resourceVersion"] != obj["metadata"].get(
            "resourceVersion"
        ):
            return False
        self.objects[key] = copy.deepcopy(obj)
        self._bump(self.objects[key])
        return True

    def delete_lease(self, namespace: str, name: str, resource_version: str) -> None:
        self.calls.append(("delete_lease", namespace, name))
        live = self.objects.get(("Lease", namespace, name))
        if live is not None and live["metadata"]["resourceVersion"] == resource_version:
            del self.objects[("Lease", namespace, name)]

    def suspend_loadtest(self, namespace: str, name: str) -> None:
        self.calls.append(("suspend_loadtest", namespace, name))
        lt = self.get("LoadTest", namespace, name)
        if lt is not None:
            lt["spec"]["suspend"] = True

    def delete_loadtests(self, namespace: str, selector: str) -> None:
        self.calls.append(("delete_loadtests", namespace, selector))
        for lt in self.of_kind("LoadTest", namespace, selector):
            del self.objects[("LoadTest", namespace, lt["metadata"]["name"])]


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch, as the API server applies kopf's status patch."""
    out = copy.deepcopy(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = merge_patch(out[k] if isinstance(out.get(k), dict) else {}, v)
        else:
            out[k] = copy.deepcopy(v)
    return out
