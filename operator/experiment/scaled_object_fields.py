"""The KEDA ScaledObject fields a ScalingExperiment variant owns, pure: which they are, the JSON
patch that writes them, what changed under the experiment, the three-way restore, and a brief
of the spec in force.

As on the Deployment (operator/experiment/owned_fields.py), a variant owns only what it sets,
each field whole; everything else in the ScaledObject (scaleTargetRef, fallback, the rest of
`advanced`, ...) stays the owner's. A field is addressed by its path in the spec:

    ["triggers"]  ["minReplicaCount"]  ["maxReplicaCount"]  ["pollingInterval"]
    ["cooldownPeriod"]  ["advanced", "horizontalPodAutoscalerConfig", "behavior"]
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from surge.api.experiment import ScaledObjectSpec
from surge.api.experiment_status import ScaledObjectInForce
from surge.operator.experiment.owned_fields import MISSING, Path

BEHAVIOR: Path = ("advanced", "horizontalPodAutoscalerConfig", "behavior")
KEDA_DEFAULT_MAX = 100
"""KEDA's maxReplicaCount when a ScaledObject sets none."""
MAX_BRIEF_TRIGGERS = 8


GO_ZEROS: tuple[tuple[str, Any], ...] = (
    ("useCachedMetrics", False),
    ("name", ""),
    ("metricType", ""),
)
"""Trigger fields KEDA drops when they hold Go's zero value (omitempty)."""


def keda_form(trigger: Mapping[str, Any]) -> dict[str, Any]:
    """The trigger as KEDA serves it once it has taken the ScaledObject over (it writes the
    object back from its Go types): written so, KEDA's rewrite is no edit by someone else
    (an edit would keep "their" triggers, and a created ScaledObject, after the run)."""
    out = copy.deepcopy(dict(trigger))
    for key, zero in GO_ZEROS:
        if key in out and out[key] == zero and type(out[key]) is type(zero):
            del out[key]
    auth = out.get("authenticationRef")
    if isinstance(auth, dict) and auth.get("kind") == "":
        del auth["kind"]
    return out


def so_values(so: ScaledObjectSpec) -> dict[Path, Any]:
    """The fields a variant's `scaledObject` sets, and their values (camelCase, as served)."""
    out: dict[Path, Any] = {("triggers",): [keda_form(t) for t in so.triggers]}
    for key, value in (
        ("minReplicaCount", so.min_replica_count),
        ("maxReplicaCount", so.max_replica_count),
        ("pollingInterval", so.polling_interval),
        ("cooldownPeriod", so.cooldown_period),
    ):
        if value is not None:
            out[(key,)] = value
    if so.behavior is not None:
        out[BEHAVIOR] = copy.deepcopy(dict(so.behavior))
    return out


def so_read(spec: Mapping[str, Any] | None, path: Path) -> Any:
    """The value at `path` in a ScaledObject spec, or MISSING."""
    here: Any = spec or {}
    for key in path:
        if not isinstance(here, Mapping) or key not in here:
            return MISSING
        here = here[key]
    return here


def so_display(path: Path) -> str:
    return "spec." + ".".join(path)


def so_apply(original: Mapping[str, Any] | None, so: ScaledObjectSpec, deployment: str) -> Any:
    """The whole ScaledObject spec a variant runs with (the dry run's plan): the original's
    (or a new one scaling the Deployment) with the variant's fields written."""
    spec: dict[str, Any] = copy.deepcopy(dict(original)) if original else new_spec(deployment)
    for path, value in so_values(so).items():
        here = spec
        for key in path[:-1]:
            here = here.setdefault(key, {})
        here[path[-1]] = value
    return spec


def new_spec(deployment: str) -> dict[str, Any]:
    """A ScaledObject scaling the Deployment. Deleted on restore, it has KEDA put back the
    replica count it found (the owner's): by default KEDA leaves the count it last set, 0
    after a minReplicaCount: 0 variant, and the Deployment would stay down."""
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "advanced": {"restoreToOriginalReplicaCount": True},
    }


def new_scaled_object(
    namespace: str,
    name: str,
    deployment: str,
    values: Mapping[Path, Any],
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """A ScaledObject the experiment creates (the target had none by that name)."""
    spec = new_spec(deployment)
    for path, value in values.items():
        here = spec
        for key in path[:-1]:
            here = here.setdefault(key, {})
        here[path[-1]] = copy.deepcopy(value)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }


def so_patch(
    live: Mapping[str, Any],
    values: Mapping[Path, Any],
    uid: str,
    original: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """RFC 6902 operations that make each field of `values` hold its value (MISSING: remove
    it) on the live ScaledObject, and nothing else, after a `test` of its uid. A map the
    patch made for a nested field (`advanced: {}`) and emptied again goes too, unless the
    `original` spec had it."""
    spec = live.get("spec") or {}
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": uid}]
    for path, value in values.items():
        pointer = "/spec/" + "/".join(path)
        if value is MISSING:
            if so_read(spec, path) is not MISSING:
                ops.append({"op": "remove", "path": pointer})
                ops += _drop_emptied(spec, path, original)
            continue
        for depth in range(1, len(path)):
            if so_read(spec, path[:depth]) is MISSING:
                ops.append({"op": "add", "path": "/spec/" + "/".join(path[:depth]), "value": {}})
        ops.append({"op": "add", "path": pointer, "value": value})
    return ops


def _drop_emptied(
    spec: Mapping[str, Any], path: Path, original: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    gone = path
    for depth in range(len(path) - 1, 0, -1):
        parent = so_read(spec, path[:depth])
        if not isinstance(parent, Mapping) or set(parent) != {gone[-1]}:
            break
        if so_read(original, path[:depth]) is not MISSING:
            break
        ops.append({"op": "remove", "path": "/spec/" + "/".join(path[:depth])})
        gone = path[:depth]
    return ops[-1:]  # removing the outermost emptied map removes the ones inside it


def so_changed(spec: Mapping[str, Any] | None, written: Mapping[Path, Any]) -> list[Path]:
    """The owned fields that no longer hold what the experiment wrote."""
    return [p for p, value in written.items() if so_read(spec, p) != value]


def so_restore_plan(
    spec: Mapping[str, Any], original: Mapping[str, Any] | None, written: Mapping[Path, Any]
) -> tuple[dict[Path, Any], list[Path]]:
    """Three-way: (each field still holding what was written, with its original value or
    MISSING; the fields someone else changed, kept as they are)."""
    back: dict[Path, Any] = {}
    kept: list[Path] = []
    for path, value in written.items():
        if so_read(spec, path) == value:
            back[path] = so_read(original, path)
        else:
            kept.append(path)
    return back, kept


def so_brief(spec: Mapping[str, Any] | None) -> ScaledObjectInForce | None:
    """The ScaledObject a run ran under, in brief: bounds, intervals, trigger types and a
    digest of the whole spec (a row of every run stays small)."""
    if spec is None:
        return None
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))

    def number(key: str) -> int | None:
        value = spec.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    triggers = [t for t in spec.get("triggers") or [] if isinstance(t, Mapping)]
    return ScaledObjectInForce(
        min_replica_count=number("minReplicaCount"),
        max_replica_count=number("maxReplicaCount"),
        polling_interval=number("pollingInterval"),
        cooldown_period=number("cooldownPeriod"),
        triggers=[str(t.get("type"))[:64] for t in triggers[:MAX_BRIEF_TRIGGERS]],
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
    )
