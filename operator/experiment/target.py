"""A ScalingExperiment's writes to its target: the snapshot of the originals, a variant's fields
written with a uid-guarded JSON patch, edits by others seen, and the three-way restore.

Nothing here replaces a whole spec. The snapshot ConfigMap (owned by the experiment, its
digest kept in status) holds the original Deployment and HPA specs, the experiment's spec
frozen at start and the target's uid, and the original KEDA ScaledObject with its uid
(operator/experiment/scaled_object_target.py writes it); a snapshot that is missing or
altered is never used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from surge.api.experiment import ScalingExperimentSpec, Variant
from surge.api.experiment_status import ExperimentStage, ExperimentStep, WrittenField
from surge.api.manifests import ManifestError, parse_spec
from surge.operator.experiment import scaled_object_target
from surge.operator.experiment.owned_fields import (
    MISSING,
    Path,
    changed,
    display,
    json_patch,
    originals,
    owned_values,
    owner_edits,
    read,
    rest_digest,
    restore_plan,
)
from surge.operator.experiment.runs import LABEL_EXPERIMENT, snapshot_name
from surge.operator.experiment.scalers import live_scalers, scaler_conflicts
from surge.operator.experiment.variants import apply_hpa
from surge.operator.kube.client import Kube
from surge.operator.loadtest import builders
from surge.operator.policy.limits import parse_quantity

DEPLOYMENT_KEY, HPA_KEY, SPEC_KEY, UID_KEY = "deployment.json", "hpa.json", "spec.json", "uid"
SCALED_OBJECT_KEY = "scaledObject.json"


class HpaTaken(Exception):
    """The live HPA is not the experiment's to write: someone created one where there was
    none, deleted or edited the owner's since the snapshot, or pointed it elsewhere."""


QUANTITY_KEYS = frozenset({"value", "averageValue"})
"""The quantities of an autoscaling/v2 HPA spec (its metrics' targets): the API server
writes them canonically (1000 as "1k", "1000m" as "1"). Names and labels stay text."""


def _same_value(live: Any, want: Any, key: str | None) -> bool:
    if isinstance(live, bool) or isinstance(want, bool):
        return type(live) is type(want) and live == want
    if live == want:
        return True
    if key not in QUANTITY_KEYS:
        return False
    try:
        return bool(parse_quantity(str(live)) == parse_quantity(str(want)))
    except (ValueError, ArithmeticError):
        return False


def _holds(live: Any, want: Any, key: str | None = None) -> bool:
    """Every field of `want` has its value in `live` (which may hold server defaults more)."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(
            k in live and _holds(live[k], v, k) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(live, list)
            and len(live) == len(want)
            and all(_holds(a, b, key) for a, b in zip(live, want, strict=True))
        )
    return _same_value(live, want, key)


def _equal(a: Any, b: Any) -> bool:
    return _holds(a, b) and _holds(b, a)


def check_hpa_ours(
    live: dict[str, Any] | None,
    original: dict[str, Any] | None,
    ours: dict[str, Any] | None,
    name: str,
    label: str | None,
) -> None:
    """Before a variant writes HPA `name` (`ours`): between runs it holds the snapshot's spec
    (the restore put it back), or it is absent, or it is one this experiment wrote (a tick
    after a crash re-applies). Raises HpaTaken otherwise, so nobody's HPA is replaced,
    nor later deleted by the restore."""
    what = f"HorizontalPodAutoscaler {name}"
    if original is None:
        mine = ((live or {}).get("metadata") or {}).get("labels") or {}
        if live is not None and mine.get(LABEL_EXPERIMENT) != label:
            raise HpaTaken(
                f"{what} was created by someone else since the snapshot (there was none)"
            )
    elif live is None:
        raise HpaTaken(f"{what} was deleted since the snapshot")
    elif not _equal(live.get("spec"), original) and (
        _equal(ours, original) or not _holds(live.get("spec"), ours)
    ):
        # Holding `ours` proves a lost write only where `ours` differs from the original: a
        # variant that keeps the owner's values would take any field they added as its own.
        raise HpaTaken(f"{what} was changed since the snapshot")


class TargetGone(Exception):
    """The target Deployment is gone, or another object has its name now."""


@dataclass(frozen=True)
class Snapshot:
    deployment: dict[str, Any]
    hpa: dict[str, Any] | None
    spec: ScalingExperimentSpec
    target_uid: str
    scaled_object: dict[str, Any] | None = None
    """The original ScaledObject's spec; None when there was none (or no targetRef to one)."""
    scaled_object_uid: str | None = None


def snapshot_configmap(
    owner: dict[str, Any],
    deployment: dict[str, Any],
    hpa_spec: dict[str, Any] | None,
    spec: ScalingExperimentSpec,
    scaled_object: dict[str, Any] | None = None,
) -> dict[str, Any]:
    name = owner["metadata"]["name"]
    so = None
    if scaled_object is not None:
        so = {"spec": scaled_object.get("spec"), "uid": scaled_object["metadata"].get("uid")}
    lbls = {LABEL_EXPERIMENT: builders.fit_name(name)}
    return builders.owned_configmap(
        owner,
        snapshot_name(name),
        lbls,
        {
            DEPLOYMENT_KEY: json.dumps(deployment["spec"], sort_keys=True),
            HPA_KEY: json.dumps(hpa_spec, sort_keys=True),
            SPEC_KEY: json.dumps(spec.wire(), sort_keys=True),
            UID_KEY: str(deployment["metadata"]["uid"]),
            SCALED_OBJECT_KEY: json.dumps(so, sort_keys=True),
        },
    )


def snapshot_digest(data: dict[str, str]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_snapshot(cm: dict[str, Any] | None, digest: str | None) -> Snapshot | None:
    """The snapshot, or None when it is missing or differs from what was written."""
    if cm is None:
        return None
    data = dict(cm.get("data") or {})
    if digest is None or snapshot_digest(data) != digest:
        return None
    try:
        spec: ScalingExperimentSpec = parse_spec("ScalingExperiment", json.loads(data[SPEC_KEY]))
        so = json.loads(data.get(SCALED_OBJECT_KEY, "null")) or {}
        return Snapshot(
            deployment=json.loads(data[DEPLOYMENT_KEY]),
            hpa=json.loads(data.get(HPA_KEY, "null")),
            spec=spec,
            target_uid=data[UID_KEY],
            scaled_object=so.get("spec"),
            scaled_object_uid=so.get("uid"),
        )
    except (KeyError, ValueError, AttributeError, ManifestError):
        return None


def _live(kube: Kube, namespace: str, snap: Snapshot) -> dict[str, Any]:
    dep = kube.deployment(namespace, snap.spec.target_ref.deployment)
    if dep is None or dep["metadata"].get("uid") != snap.target_uid:
        raise TargetGone(
            f"Deployment {namespace}/{snap.spec.target_ref.deployment} was deleted or replaced"
        )
    return dep


@dataclass(frozen=True)
class Written:
    """What a variant wrote: the Deployment's fields as read back, the digest of the rest of
    the Deployment, the HPA spec, and the ScaledObject's fields and uid."""

    fields: list[WrittenField]
    rest_digest: str
    hpa: dict[str, Any] | None = None
    scaled_object: list[WrittenField] | None = None
    scaled_object_uid: str | None = None


def apply(
    kube: Kube, namespace: str, snap: Snapshot, variant: Variant, labels: dict[str, str]
) -> Written:
    """Write the variant's fields (and its HPA or ScaledObject, when it has one). Raises
    TargetGone or KubeError."""
    dep = _live(kube, namespace, snap)
    values = owned_values(variant, snap.deployment)
    name = snap.spec.target_ref.deployment
    so_name = snap.spec.target_ref.scaled_object
    so_written, so_uid = None, None
    hpa_name = snap.spec.target_ref.hpa
    if variant.hpa is not None and hpa_name:  # first: a refusal leaves nothing written
        ours = apply_hpa(snap.hpa, variant.hpa, name)
        live = kube.hpa(namespace, hpa_name)
        check_hpa_ours(live, snap.hpa, ours, hpa_name, labels.get(LABEL_EXPERIMENT))
    if variant.scaled_object is not None and so_name:
        # First: a ScaledObject deleted since the snapshot fails the run before any write.
        try:
            so_written, so_uid = scaled_object_target.apply(
                kube,
                namespace,
                so_name,
                name,
                snap.scaled_object,
                snap.scaled_object_uid,
                variant,
                labels,
            )
        except scaled_object_target.ScaledObjectGone as exc:
            raise TargetGone(str(exc)) from None
    patched = kube.patch_deployment(namespace, name, json_patch(dep, values, snap.target_uid))
    spec = patched.get("spec") or {}
    written = [WrittenField(path=list(p), value=read(spec, p)) for p in values]
    hpa_written = None
    if variant.hpa is not None and hpa_name:
        kube.put_hpa_spec(namespace, hpa_name, ours, labels)
        hpa_written = (kube.hpa(namespace, hpa_name) or {}).get("spec") or ours
    return Written(written, rest_digest(spec, values), hpa_written, so_written, so_uid)


def _written(step: ExperimentStep, snap: Snapshot) -> dict[Path, Any]:
    if step.written is not None:
        return {tuple(w.path): w.value for w in step.written}
    # Written but not yet recorded (a crash right after the patch): what the variant sets.
    variant = next(v for v in snap.spec.variants if v.name == step.variant)
    return owned_values(variant, snap.deployment)


def edits_by_others(kube: Kube, namespace: str, snap: Snapshot, step: ExperimentStep) -> list[str]:
    """The target's fields someone else changed since the variant was written: one of the
    variant's (a revert), or any other (a rollout). Raises TargetGone."""
    dep = _live(kube, namespace, snap)
    spec = dep.get("spec") or {}
    written = _written(step, snap)
    # An HPA (a plain one, or KEDA's) moves replicas.
    scaled = any(
        x is not None
        for x in (snap.hpa, step.hpa_written, snap.scaled_object, step.scaled_object_written)
    )
    mine = {p: v for p, v in written.items() if not (scaled and p == ("replicas",))}
    names = [display(p) for p in changed(spec, mine)]
    if step.rest_digest is not None and rest_digest(spec, written) != step.rest_digest:
        names += owner_edits(snap.deployment, spec, written) or ["spec (outside the variant)"]
    hpa_name = snap.spec.target_ref.hpa
    if (
        step.hpa_written is not None
        and hpa_name
        and (kube.hpa(namespace, hpa_name) or {}).get("spec") != step.hpa_written
    ):
        names.append(f"HorizontalPodAutoscaler {hpa_name} spec")
    so_name = snap.spec.target_ref.scaled_object
    if so_name:
        names += scaled_object_target.edits(kube, namespace, so_name, step)
    return names + second_scalers(kube, namespace, snap, step)


def second_scalers(kube: Kube, namespace: str, snap: Snapshot, step: ExperimentStep) -> list[str]:
    """The two-scalers rule, mid-run: a scaler added since the Apply (the owner's HPA, a
    GitOps sync) sets the replicas too, and the run would be measured under neither."""
    variant = next((v for v in snap.spec.variants if v.name == step.variant), None)
    if variant is None or (variant.hpa is None and variant.scaled_object is None):
        return []
    only = snap.spec.model_copy(update={"variants": [variant]})
    return scaler_conflicts(only, *live_scalers(kube, namespace))


def _give_replicas_back(
    kube: Kube, namespace: str, snap: Snapshot, dep: dict[str, Any], written: dict[Path, Any]
) -> None:
    """The HPA the experiment created is gone: the Deployment goes back to the replicas its
    owner had (the HPA moved them, not a person), as KEDA's restoreToOriginalReplicaCount
    does for a ScaledObject the experiment created. A variant that set replicas itself has
    them restored three-way with its other fields."""
    original = snap.deployment.get("replicas", MISSING)
    if ("replicas",) in written or original is MISSING:
        return
    if (dep.get("spec") or {}).get("replicas") != original:
        name = snap.spec.target_ref.deployment
        patch = json_patch(dep, {("replicas",): original}, snap.target_uid)
        kube.patch_deployment(namespace, name, patch)


def restore(
    kube: Kube, namespace: str, snap: Snapshot, step: ExperimentStep | None, label: str
) -> list[str]:
    """Put back the variant's fields that still hold what it wrote; returns the fields kept
    because someone else changed them. A target that is gone gets nothing. `label`: the
    experiment's surge.dev/experiment value, on the objects it creates."""
    if step is None or step.stage == ExperimentStage.COOLDOWN:
        return []  # between runs nothing of a variant is on the target
    try:
        dep = _live(kube, namespace, snap)
    except TargetGone:
        return []
    written = _written(step, snap)
    back, kept = restore_plan(dep.get("spec") or {}, originals(snap.deployment, written), written)
    if back:
        name = snap.spec.target_ref.deployment
        kube.patch_deployment(namespace, name, json_patch(dep, back, snap.target_uid))
    # Not yet recorded: the patch may not have landed, so a difference proves nothing.
    names = [display(p) for p in kept] if step.written is not None else []
    hpa_name = snap.spec.target_ref.hpa
    if step.hpa_written is not None and hpa_name:
        current = (kube.hpa(namespace, hpa_name) or {}).get("spec")
        if current == step.hpa_written:
            kube.put_hpa_spec(namespace, hpa_name, snap.hpa, {})
            if snap.hpa is None:
                _give_replicas_back(kube, namespace, snap, dep, written)
        elif current is not None:
            names.append(f"HorizontalPodAutoscaler {hpa_name} spec")
    so_name = snap.spec.target_ref.scaled_object
    if so_name:
        variant = next((v for v in snap.spec.variants if v.name == step.variant), None)
        names += scaled_object_target.restore(
            kube,
            namespace,
            so_name,
            snap.scaled_object,
            snap.scaled_object_uid,
            step,
            variant,
            label,
        )
    return names
