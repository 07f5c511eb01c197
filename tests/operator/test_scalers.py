"""Two scalers never scale the target at once (operator/experiment/scalers.py), pure."""

from __future__ import annotations

from typing import Any

from surge.api.experiment import ScalingExperimentSpec
from surge.operator.experiment.scalers import scaler_conflicts

SO_VARIANT = {"name": "keda", "scaledObject": {"triggers": [{"type": "cpu"}]}}
HPA_VARIANT = {"name": "hpa", "hpa": {"maxReplicas": 3}}


def _spec(*variants: dict[str, Any], hpa: str | None = None, so: str | None = None) -> Any:
    ref: dict[str, Any] = {"deployment": "alice"}
    if hpa:
        ref["hpa"] = hpa
    if so:
        ref["scaledObject"] = so
    return ScalingExperimentSpec.model_validate(
        {
            "targetRef": ref,
            "loadTest": {
                "target": {"url": "http://alice:8080"},
                "load": {"model": "constant", "stages": [{"duration": "5s", "target": 1}]},
            },
            "variants": list(variants),
        }
    )


def _hpa(name: str, target: str = "alice", owner: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owner:
        meta["ownerReferences"] = [{"kind": "ScaledObject", "name": owner}]
    return {
        "metadata": meta,
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}},
    }


def _so(name: str, target: str = "alice", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T05:00:00Z"
    return {"metadata": meta, "spec": {"scaleTargetRef": {"name": target}}}


def test_a_scaled_object_variant_beside_a_plain_hpa_is_refused() -> None:
    (why,) = scaler_conflicts(_spec(SO_VARIANT, so="alice-so"), [_hpa("alice")], [])
    assert "variant keda" in why and "HorizontalPodAutoscaler alice" in why
    assert "ScaledObject" in why and "Deployment alice" in why


def test_kedas_own_hpa_is_not_a_second_scaler() -> None:
    hpas = [_hpa("keda-hpa-alice-so", owner="alice-so")]
    sos = [_so("alice-so")]
    assert scaler_conflicts(_spec(SO_VARIANT, so="alice-so"), hpas, sos) == []


def test_an_hpa_variant_beside_a_scaled_object_is_refused() -> None:
    hpas = [_hpa("keda-hpa-alice-so", owner="alice-so")]
    (why,) = scaler_conflicts(_spec(HPA_VARIANT, hpa="alice"), hpas, [_so("alice-so")])
    assert "variant hpa" in why and "ScaledObject alice-so" in why


def test_an_hpa_variant_on_kedas_hpa_is_refused() -> None:
    hpas = [_hpa("keda-hpa-alice-so", owner="alice-so")]
    spec = _spec(HPA_VARIANT, hpa="keda-hpa-alice-so")
    whys = scaler_conflicts(spec, hpas, [_so("alice-so")])
    assert any("KEDA's HPA of ScaledObject alice-so" in w for w in whys)


def test_a_second_scaler_of_the_same_kind_is_refused() -> None:
    (why,) = scaler_conflicts(_spec(HPA_VARIANT, hpa="alice"), [_hpa("alice"), _hpa("b")], [])
    assert "HorizontalPodAutoscaler b" in why
    (why,) = scaler_conflicts(_spec(SO_VARIANT, so="a"), [], [_so("a"), _so("b")])
    assert "ScaledObject b" in why and "ScaledObject a," not in why


def test_scalers_of_other_deployments_and_ones_being_deleted_do_not_count() -> None:
    hpas = [_hpa("other", target="bob")]
    sos = [_so("other", target="bob"), _so("gone", deleting=True)]
    assert scaler_conflicts(_spec(SO_VARIANT, HPA_VARIANT, hpa="h", so="s"), hpas, sos) == []


def test_both_kinds_run_only_while_the_deployment_has_neither() -> None:
    spec = _spec(SO_VARIANT, HPA_VARIANT, hpa="alice", so="alice-so")
    assert scaler_conflicts(spec, [], []) == []  # each variant creates its scaler, then deletes it
    assert len(scaler_conflicts(spec, [_hpa("alice")], [])) == 1  # the SO variant would fight it
    assert len(scaler_conflicts(spec, [], [_so("alice-so")])) == 1  # the HPA variant would


def test_variants_without_a_scaler_never_conflict() -> None:
    spec = _spec({"name": "plain", "replicas": 2}, hpa="alice", so="alice-so")
    assert scaler_conflicts(spec, [_hpa("alice")], [_so("alice-so")]) == []
