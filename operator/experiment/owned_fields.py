"""The Deployment fields a ScalingExperiment variant owns, pure: which they are, the JSON patch
that writes them, what changed under the experiment, and the three-way restore.

A variant owns only what it sets: `spec.replicas`; the pod's `nodeSelector`, `tolerations`,
`affinity` (each replaced whole); and, in the first container, the resource requests and
limits it names (key by key) and the env entries it names (by name). Everything else in the
Deployment is the owner's. A field is addressed by a path:

    ["replicas"]                                   spec.replicas
    ["pod", "nodeSelector"]                        spec.template.spec.nodeSelector
    ["container", NAME, "resources", PART, KEY]    ...containers[NAME].resources.PART[KEY]
    ["container", NAME, "env", ENV]                ...containers[NAME].env[ENV]

Restoring is three-way: a field is put back to its original only where it still holds what
the experiment wrote; a field someone else changed since is left as they left it, and named.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from surge.api.experiment import Variant
from surge.operator.experiment.variants import quantities

Path = tuple[str, ...]
MISSING: Any = object()
"""A field that is not there (distinct from a field holding null)."""


def _pod(spec: Mapping[str, Any]) -> dict[str, Any]:
    return dict((spec.get("template") or {}).get("spec") or {})


def first_container(spec: Mapping[str, Any]) -> str:
    containers = _pod(spec).get("containers") or [{}]
    return str(containers[0].get("name") or "")


def _container(spec: Mapping[str, Any], name: str) -> tuple[int, dict[str, Any]] | None:
    for i, c in enumerate(_pod(spec).get("containers") or []):
        if c.get("name") == name:
            return i, c
    return None


def owned_values(variant: Variant, spec: Mapping[str, Any]) -> dict[Path, Any]:
    """The fields `variant` sets on a Deployment whose spec is `spec`, and their values."""
    out: dict[Path, Any] = {}
    if variant.replicas is not None:
        out[("replicas",)] = variant.replicas
    for key, value in (
        ("nodeSelector", variant.node_selector),
        ("tolerations", variant.tolerations),
        ("affinity", variant.affinity),
    ):
        if value is not None:
            out[("pod", key)] = copy.deepcopy(value)
    name = first_container(spec)
    if variant.resources is not None:
        wanted = quantities(variant.resources)
        for part in ("requests", "limits"):
            for key, value in (wanted.get(part) or {}).items():
                out[("container", name, "resources", part, key)] = value
    for entry in variant.env or []:
        out[("container", name, "env", str(entry["name"]))] = copy.deepcopy(entry)
    return out


def read(spec: Mapping[str, Any], path: Path) -> Any:
    """The value at `path` in a Deployment spec, or MISSING."""
    if path == ("replicas",):
        return spec.get("replicas", MISSING)
    if path[0] == "pod":
        return _pod(spec).get(path[1], MISSING)
    found = _container(spec, path[1])
    if found is None:
        return MISSING
    container = found[1]
    if path[2] == "resources":
        return ((container.get("resources") or {}).get(path[3]) or {}).get(path[4], MISSING)
    return next((e for e in container.get("env") or [] if e.get("name") == path[3]), MISSING)


def display(path: Path) -> str:
    """The field's name as a person reads it."""
    if path == ("replicas",):
        return "spec.replicas"
    if path[0] == "pod":
        return f"spec.template.spec.{path[1]}"
    if path[2] == "resources":
        return f"containers[{path[1]}].resources.{path[3]}[{path[4]}]"
    return f"containers[{path[1]}].env[{path[3]}]"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def json_patch(
    deployment: Mapping[str, Any], values: Mapping[Path, Any], uid: str
) -> list[dict[str, Any]]:
    """RFC 6902 operations that make each field of `values` hold its value (MISSING: remove
    it) on the live `deployment`, and nothing else; the first operation tests the uid, so the
    patch lands on that object or on none."""
    spec = deployment.get("spec") or {}
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": uid}]
    removals: list[tuple[int, int, str]] = []  # (container index, env index, pointer)
    gone: dict[tuple[int, str], set[str]] = {}  # resource keys removed, per container and part
    made: set[str] = set()
    for path, value in values.items():
        here = read(spec, path)
        if path == ("replicas",) or path[0] == "pod":
            pointer = (
                "/spec/replicas" if path == ("replicas",) else f"/spec/template/spec/{path[1]}"
            )
            if value is MISSING:
                if here is not MISSING:
                    ops.append({"op": "remove", "path": pointer})
            else:
                ops.append({"op": "add", "path": pointer, "value": value})
            continue
        found = _container(spec, path[1])
        if found is None:  # the owner renamed the container: nothing of ours is there
            continue
        i, container = found
        base = f"/spec/template/spec/containers/{i}"
        if path[2] == "resources":
            pointer = f"{base}/resources/{path[3]}/{_escape(path[4])}"
            if value is MISSING:
                if here is not MISSING:
                    gone.setdefault((i, path[3]), set()).add(path[4])
                    ops.append({"op": "remove", "path": pointer})
                continue
            resources = container.get("resources")
            if not resources and f"{base}/resources" not in made:
                ops.append({"op": "add", "path": f"{base}/resources", "value": {}})
                made.add(f"{base}/resources")
            part = f"{base}/resources/{path[3]}"
            if not (resources or {}).get(path[3]) and part not in made:
                ops.append({"op": "add", "path": part, "value": {}})
                made.add(part)
            ops.append({"op": "add", "path": pointer, "value": value})
            continue
        env = container.get("env") or []
        j = next((k for k, e in enumerate(env) if e.get("name") == path[3]), None)
        if value is MISSING:
            if j is not None:
                removals.append((i, j, f"{base}/env/{j}"))
        elif j is not None:
            ops.append({"op": "replace", "path": f"{base}/env/{j}", "value": value})
        else:
            if not env and f"{base}/env" not in made:
                ops.append({"op": "add", "path": f"{base}/env", "value": []})
                made.add(f"{base}/env")
            ops.append({"op": "add", "path": f"{base}/env/-", "value": value})
    # Removals last, highest index first, so earlier indices stay valid.
    ops += [{"op": "remove", "path": p} for _, _, p in sorted(removals, reverse=True)]
    ops += _drop_emptied(spec, gone)
    return ops


def _drop_emptied(
    spec: Mapping[str, Any], gone: Mapping[tuple[int, str], set[str]]
) -> list[dict[str, Any]]:
    """A requests/limits map (and a resources object) emptied by the removals goes too, so a
    restore leaves no `limits: {}` the original never had."""
    ops: list[dict[str, Any]] = []
    containers = _pod(spec).get("containers") or []
    for i in sorted({i for i, _ in gone}):
        resources = containers[i].get("resources") or {}
        left = {
            part: set(resources.get(part) or {}) - gone.get((i, part), set()) for part in resources
        }
        emptied = [p for p in resources if (i, p) in gone and not left[p]]
        base = f"/spec/template/spec/containers/{i}/resources"
        if emptied and all(not keys for keys in left.values()):
            ops.append({"op": "remove", "path": base})
        else:
            ops += [{"op": "remove", "path": f"{base}/{p}"} for p in emptied]
    return ops


def changed(spec: Mapping[str, Any], written: Mapping[Path, Any]) -> list[Path]:
    """The owned fields that no longer hold what the experiment wrote."""
    return [p for p, value in written.items() if read(spec, p) != value]


def restore_plan(
    spec: Mapping[str, Any], original: Mapping[Path, Any], written: Mapping[Path, Any]
) -> tuple[dict[Path, Any], list[Path]]:
    """Three-way: (the values to write back: each field still holding what was written gets
    its original, MISSING where it had none; the fields someone else changed, kept)."""
    back: dict[Path, Any] = {}
    kept: list[Path] = []
    for path, value in written.items():
        if read(spec, path) == value:
            back[path] = original.get(path, MISSING)
        else:
            kept.append(path)
    return back, kept


def originals(spec: Mapping[str, Any], paths: Iterable[Path]) -> dict[Path, Any]:
    """The original value of each path (MISSING where the field was absent)."""
    return {p: read(spec, p) for p in paths}


def _without(spec: Mapping[str, Any], paths: Iterable[Path]) -> dict[str, Any]:
    """The spec less the owned fields and less spec.replicas (an HPA or a person scaling is
    not an edit of the workload)."""
    out = copy.deepcopy(dict(spec))
    out.pop("replicas", None)
    pod = (out.get("template") or {}).get("spec") or {}
    for path in paths:
        if path[0] == "pod":
            pod.pop(path[1], None)
        elif path[0] == "container":
            found = _container(out, path[1])
            if found is None:
                continue
            container = found[1]
            if path[2] == "resources":
                part = (container.get("resources") or {}).get(path[3]) or {}
                part.pop(path[4], None)
            else:
                container["env"] = [
                    e for e in container.get("env") or [] if e.get("name") != path[3]
                ]
    for container in pod.get("containers") or []:  # what the writes left empty is nothing
        resources = container.get("resources") or {}
        for part in [p for p, v in resources.items() if v == {}]:
            del resources[part]
        for key in ("resources", "env"):
            if container.get(key) in ({}, []):
                del container[key]
    return out


def rest_digest(spec: Mapping[str, Any], paths: Iterable[Path]) -> str:
    """A digest of everything in the spec the experiment does not own."""
    text = json.dumps(_without(spec, list(paths)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(a: Any, b: Any, at: str = "spec", limit: int = 8) -> list[str]:
    """Where two JSON values differ, as dotted paths (at most `limit`)."""
    out: list[str] = []
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            out += differences(a.get(key), b.get(key), f"{at}.{key}", limit - len(out))
            if len(out) >= limit:
                break
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            name = x.get("name") if isinstance(x, dict) else None
            out += differences(x, y, f"{at}[{name if name else i}]", limit - len(out))
            if len(out) >= limit:
                break
    elif a != b:
        out.append(at)
    return out[:limit]


def owner_edits(
    original: Mapping[str, Any], current: Mapping[str, Any], paths: Iterable[Path]
) -> list[str]:
    """The fields outside the experiment's that differ between the original and now."""
    owned = list(paths)
    return differences(_without(original, owned), _without(current, owned))
