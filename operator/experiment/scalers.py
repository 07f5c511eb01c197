"""Two scalers never scale the target at once: the rule a ScalingExperiment checks before each
variant is applied. Pure, but for `live_scalers`, which reads them.

A plain HPA and a KEDA ScaledObject (which scales through an HPA of its own, owned by it)
on one Deployment each set spec.replicas to their own answer, so the replica count, and every
number measured under it, would be neither's. The rule, simple and safe:

- a variant with `scaledObject` runs only while no plain HPA (an HPA without an
  ownerReference of kind ScaledObject) scales the Deployment, and while no ScaledObject other
  than spec.targetRef.scaledObject does;
- a variant with `hpa` runs only while no ScaledObject scales the Deployment, while
  spec.targetRef.hpa is not KEDA's own HPA, and while no plain HPA other than
  spec.targetRef.hpa does.

Both kinds of variants in one experiment therefore run only when the Deployment has neither
scaler of its own: each variant creates its scaler and deletes it on restore, so between runs
the Deployment is back to none. Checked before every Apply (nothing of a variant is on the
target then), the first one included, so a conflict ends the experiment before anything is
written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from surge.api.experiment import ScalingExperimentSpec
from surge.operator.kube.client import Kube


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def keda_owner(hpa: Mapping[str, Any]) -> str | None:
    """The ScaledObject owning this HPA (KEDA made it), or None for a plain HPA."""
    for ref in (hpa.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "ScaledObject":
            return str(ref.get("name") or "")
    return None


def hpa_scales(hpa: Mapping[str, Any], deployment: str) -> bool:
    ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
    return ref.get("kind") == "Deployment" and ref.get("name") == deployment


def scaled_object_scales(so: Mapping[str, Any], deployment: str) -> bool:
    """KEDA's default scale target kind is a Deployment (apps/v1). One being deleted (a
    restore's, waiting on KEDA's finalizer) scales nothing any more: KEDA has stopped it."""
    if (so.get("metadata") or {}).get("deletionTimestamp"):
        return False
    ref = (so.get("spec") or {}).get("scaleTargetRef") or {}
    return ref.get("kind") in (None, "", "Deployment") and ref.get("name") == deployment


def scaler_conflicts(
    spec: ScalingExperimentSpec,
    hpas: list[dict[str, Any]],
    scaled_objects: list[dict[str, Any]],
) -> list[str]:
    """Why the experiment's variants would run under two scalers (empty: they would not).
    `hpas` and `scaled_objects` are those of the target's namespace, as they are now."""
    dep = spec.target_ref.deployment
    plain = sorted(_name(h) for h in hpas if hpa_scales(h, dep) and keda_owner(h) is None)
    sos = sorted(_name(s) for s in scaled_objects if scaled_object_scales(s, dep))
    keda_hpas = {_name(h): keda_owner(h) for h in hpas if keda_owner(h) is not None}
    so_variants = [v.name for v in spec.variants if v.scaled_object is not None]
    hpa_variants = [v.name for v in spec.variants if v.hpa is not None]
    out: list[str] = []
    if so_variants:
        mine = spec.target_ref.scaled_object
        others = [f"HorizontalPodAutoscaler {n}" for n in plain]
        others += [f"ScaledObject {n}" for n in sos if n != mine]
        if others:
            out.append(
                f"variant {so_variants[0]} writes ScaledObject {mine} but "
                f"{', '.join(others)} scales Deployment {dep} too: KEDA's HPA and it would "
                "both set its replicas; remove it for the experiment or drop the variant"
            )
    if hpa_variants:
        mine = spec.target_ref.hpa
        owner = keda_hpas.get(mine or "")
        if owner is not None:
            out.append(
                f"spec.targetRef.hpa {mine} is KEDA's HPA of ScaledObject {owner}: KEDA "
                "rewrites it; vary that ScaledObject with variants[].scaledObject instead"
            )
        others = [f"ScaledObject {n}" for n in sos]
        others += [f"HorizontalPodAutoscaler {n}" for n in plain if n != mine]
        if others:
            out.append(
                f"variant {hpa_variants[0]} writes HorizontalPodAutoscaler {mine} but "
                f"{', '.join(others)} scales Deployment {dep} too: two scalers would both set "
                "its replicas; remove it for the experiment or drop the variant"
            )
    return out


def live_scalers(kube: Kube, namespace: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The namespace's HPAs and ScaledObjects (none of the latter without KEDA)."""
    return kube.hpas(namespace), kube.scaled_objects(namespace)
