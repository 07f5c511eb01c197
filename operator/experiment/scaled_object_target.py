"""A ScalingExperiment's writes to the target's KEDA ScaledObject (spec.targetRef.scaledObject):
a variant's fields written with a uid-guarded JSON patch (the object created when missing),
edits by others seen, and the three-way restore. The decisions are in scaled_object_fields.py.

A ScaledObject the experiment created (there was none at the snapshot) carries the
experiment's label and is deleted on restore, unless someone changed one of its fields since:
then it is left as they left it, and named.

Before each write the live object must still be the one of the snapshot (its uid), or, when
there was none, the experiment's own: between runs the owner may create theirs under that
name, replace theirs, or point it at another Deployment, and a write (then a restore from
another object's snapshot, or a delete) would undo their work.
"""

from __future__ import annotations

from typing import Any

from surge.api.experiment import Variant
from surge.api.experiment_status import ExperimentStep, WrittenField
from surge.operator.experiment.owned_fields import Path
from surge.operator.experiment.runs import LABEL_EXPERIMENT
from surge.operator.experiment.scaled_object_fields import (
    new_scaled_object,
    so_changed,
    so_display,
    so_patch,
    so_read,
    so_restore_plan,
    so_values,
)
from surge.operator.experiment.scalers import scaled_object_scales
from surge.operator.kube.client import Kube, KubeError


class ScaledObjectGone(Exception):
    """The ScaledObject snapshotted at the start is gone before a variant could write it."""


class ScaledObjectTaken(Exception):
    """The live ScaledObject is not the experiment's to write: another object than the one
    snapshotted, one someone else created, or one scaling another workload."""


def _uid(obj: dict[str, Any] | None) -> str | None:
    uid = ((obj or {}).get("metadata") or {}).get("uid")
    return str(uid) if uid else None


def apply(
    kube: Kube,
    namespace: str,
    name: str,
    deployment: str,
    original: dict[str, Any] | None,
    original_uid: str | None,
    variant: Variant,
    labels: dict[str, str],
) -> tuple[list[WrittenField], str | None]:
    """Write the variant's ScaledObject fields; returns them as read back, and the uid of the
    object written. Raises ScaledObjectGone, ScaledObjectTaken or KubeError."""
    assert variant.scaled_object is not None
    values = so_values(variant.scaled_object)
    live = kube.scaled_object(namespace, name)
    if live is not None and live["metadata"].get("deletionTimestamp"):
        # A restore's delete still waiting on KEDA's finalizer: a conflict, retried next tick.
        raise KubeError(f"write ScaledObject {namespace}/{name}", 409, "it is being deleted")
    if live is None:
        if original is not None:
            raise ScaledObjectGone(f"ScaledObject {namespace}/{name} was deleted")
        made = new_scaled_object(namespace, name, deployment, values, labels)
        written = kube.create_scaled_object(made)
    else:
        _check_ours(live, name, deployment, original, original_uid, labels)
        uid = _uid(live) or ""
        written = kube.patch_scaled_object(namespace, name, so_patch(live, values, uid))
    spec = written.get("spec") or {}
    return [WrittenField(path=list(p), value=so_read(spec, p)) for p in values], _uid(written)


def _check_ours(
    live: dict[str, Any],
    name: str,
    deployment: str,
    original: dict[str, Any] | None,
    original_uid: str | None,
    labels: dict[str, str],
) -> None:
    if original is not None and _uid(live) != original_uid:
        raise ScaledObjectTaken(f"ScaledObject {name} was replaced since the snapshot (a new uid)")
    mine = (live["metadata"].get("labels") or {}).get(LABEL_EXPERIMENT)
    if original is None and mine != labels.get(LABEL_EXPERIMENT):
        raise ScaledObjectTaken(
            f"ScaledObject {name} was created by someone else since the snapshot (there was none)"
        )
    if not scaled_object_scales(live, deployment):
        ref = (live.get("spec") or {}).get("scaleTargetRef") or {}
        raise ScaledObjectTaken(
            f"ScaledObject {name} now scales {ref.get('kind') or 'Deployment'} "
            f"{ref.get('name')}, not Deployment {deployment}"
        )


def _written(step: ExperimentStep, variant: Variant | None) -> dict[Path, Any] | None:
    if step.scaled_object_written is not None:
        return {tuple(w.path): w.value for w in step.scaled_object_written}
    if variant is not None and variant.scaled_object is not None:
        # Written but not yet recorded (a crash right after the write): what the variant sets.
        return so_values(variant.scaled_object)
    return None


def edits(kube: Kube, namespace: str, name: str, step: ExperimentStep) -> list[str]:
    """The variant's ScaledObject fields someone else changed since they were written."""
    if step.scaled_object_written is None:
        return []
    live = kube.scaled_object(namespace, name)
    if live is None or _uid(live) != step.scaled_object_uid:
        return [f"ScaledObject {name} (deleted or replaced)"]
    written = _written(step, None) or {}
    return [f"ScaledObject {name} {so_display(p)}" for p in so_changed(live.get("spec"), written)]


def restore(
    kube: Kube,
    namespace: str,
    name: str,
    original: dict[str, Any] | None,
    original_uid: str | None,
    step: ExperimentStep,
    variant: Variant | None,
    label: str,
) -> list[str]:
    """Put back the fields still holding what the variant wrote (delete the object when the
    experiment created it: `label` is its surge.dev/experiment value); returns the fields
    kept because someone else changed them."""
    written = _written(step, variant)
    if written is None:
        return []
    live = kube.scaled_object(namespace, name)
    if live is None:
        return []
    recorded = step.scaled_object_written is not None
    if recorded:
        ours = _uid(live) == step.scaled_object_uid
    elif original is not None:
        ours = _uid(live) == original_uid
    else:
        # Created by this experiment, its label's value says: another experiment's (one
        # naming the same ScaledObject for another Deployment) is not ours to delete.
        ours = (live["metadata"].get("labels") or {}).get(LABEL_EXPERIMENT) == label
    if not ours:  # replaced by someone else: theirs, not ours to write
        return [f"ScaledObject {name} (replaced)"] if recorded else []
    spec = live.get("spec") or {}
    back, kept = so_restore_plan(spec, original, written)
    uid = _uid(live) or ""
    if original is None:
        if not kept:
            kube.delete_scaled_object(namespace, name, uid)
    elif back:
        kube.patch_scaled_object(namespace, name, so_patch(live, back, uid, original))
    return [f"ScaledObject {name} {so_display(p)}" for p in kept] if recorded else []
