"""An in-memory stand-in for surge.operator.kube.Kube, for unit tests of the state machines.

It keeps plain JSON objects by (kind, namespace, name), answers label selectors of the
form `k=v,k2=v2`, and records every write in `calls`. It is a fake for pure-logic tests:
the contracts themselves are tested against the real API server (tests/e2e).
"""

from __future__ import annotations

import copy
from typing import Any

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

    def ensure(self, obj: dict[str, Any]) -> bool:
        key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        self.calls.append(("ensure", *key))
        if key in self.objects:
            return False
        self.objects[key] = copy.deepcopy(obj)
        return True

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("Deployment", namespace, name)

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("ConfigMap", namespace, name)

    def patch_configmap_data(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.calls.append(("patch_configmap_data", namespace, name))
        cm = self.objects[("ConfigMap", namespace, name)]
        cm.setdefault("data", {}).update(data)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        secret = self.get("Secret", namespace, name)
        return None if secret is None else (secret.get("stringData") or {}).get(key)

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("Job", namespace, name)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.of_kind("Pod", namespace, selector)

    def pod_log(self, namespace: str, name: str) -> str | None:
        return self.logs.get(name)

    def delete_jobs(self, namespace: str, selector: str) -> int:
        self.calls.append(("delete_jobs", namespace, selector))
        jobs = self.of_kind("Job", namespace, selector)
        for j in jobs:
            del self.objects[("Job", namespace, j["metadata"]["name"])]
        return len(jobs)

    def delete_pods(self, namespace: str, selector: str) -> None:
        for p in self.of_kind("Pod", namespace, selector):
            del self.objects[("Pod", namespace, p["metadata"]["name"])]

    def loadtests(self, namespace: str) -> list[dict[str, Any]]:
        return self.of_kind("LoadTest", namespace)

    def replace_deployment_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.calls.append(("replace_deployment_spec", namespace, name))
        dep = self.objects[("Deployment", namespace, name)]
        dep["spec"] = copy.deepcopy(spec)
        dep["metadata"]["generation"] = int(dep["metadata"].get("generation", 1)) + 1

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

    def loadtest(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("LoadTest", namespace, name)

    def create_loadtest(self, obj: dict[str, Any]) -> bool:
        return self.ensure(obj)

    def suspend_loadtest(self, namespace: str, name: str) -> None:
        self.calls.append(("suspend_loadtest", namespace, name))
        lt = self.get("LoadTest", namespace, name)
        if lt is not None:
            lt["spec"]["suspend"] = True

    def delete_loadtests(self, namespace: str, selector: str) -> None:
        self.calls.append(("delete_loadtests", namespace, selector))
        for lt in self.of_kind("LoadTest", namespace, selector):
            del self.objects[("LoadTest", namespace, lt["metadata"]["name"])]

    def experiments(self, namespace: str) -> list[dict[str, Any]]:
        return self.of_kind("ScalingExperiment", namespace)


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
