"""The ScaledObject fields a variant owns (operator/experiment/scaled_object_fields.py), pure:
what a variant sets, the uid-guarded JSON patch, the three-way restore and the brief."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from surge.api.experiment import ScaledObjectSpec
from surge.operator.experiment.owned_fields import MISSING
from surge.operator.experiment.scaled_object_fields import (
    BEHAVIOR,
    new_scaled_object,
    so_apply,
    so_brief,
    so_changed,
    so_patch,
    so_read,
    so_restore_plan,
    so_values,
)

PROM = {
    "type": "prometheus",
    "metadata": {"serverAddress": "http://prom:9090", "query": "sum(q)", "threshold": "5"},
}
CPU = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}
ORIGINAL: dict[str, Any] = {
    "scaleTargetRef": {"name": "alice"},
    "minReplicaCount": 1,
    "maxReplicaCount": 4,
    "fallback": {"failureThreshold": 3, "replicas": 2},
    "triggers": [CPU],
}


def _so(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "alice", "uid": "u-so"}, "spec": copy.deepcopy(spec)}


def _variant(**over: Any) -> ScaledObjectSpec:
    return ScaledObjectSpec.model_validate({"triggers": [PROM], **over})


def test_a_variant_owns_only_what_it_sets() -> None:
    assert so_values(_variant()) == {("triggers",): [PROM]}
    full = _variant(
        minReplicaCount=0,
        maxReplicaCount=6,
        pollingInterval=5,
        cooldownPeriod=30,
        behavior={"scaleDown": {"stabilizationWindowSeconds": 0}},
    )
    assert so_values(full) == {
        ("triggers",): [PROM],
        ("minReplicaCount",): 0,  # 0 is a value (scale to zero), not "unset"
        ("maxReplicaCount",): 6,
        ("pollingInterval",): 5,
        ("cooldownPeriod",): 30,
        BEHAVIOR: {"scaleDown": {"stabilizationWindowSeconds": 0}},
    }


def test_the_patch_writes_the_variant_and_leaves_the_rest() -> None:
    live = _so(ORIGINAL)
    values = so_values(_variant(maxReplicaCount=6, pollingInterval=5))
    ops = so_patch(live, values, "u-so")
    assert ops[0] == {"op": "test", "path": "/metadata/uid", "value": "u-so"}
    after = jsonpatch.apply_patch(live, ops)["spec"]
    assert after == {**ORIGINAL, "triggers": [PROM], "maxReplicaCount": 6, "pollingInterval": 5}


def test_the_patch_lands_on_that_object_or_none() -> None:
    ops = so_patch(_so(ORIGINAL), so_values(_variant()), "u-so")
    replaced = {**_so(ORIGINAL), "metadata": {"name": "alice", "uid": "other"}}
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(replaced, ops)


def test_behavior_makes_its_parents_and_a_restore_removes_only_what_it_made() -> None:
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 0}}
    values = so_values(_variant(behavior=behavior))
    live = _so(ORIGINAL)
    written = jsonpatch.apply_patch(live, so_patch(live, values, "u-so"))
    assert written["spec"]["advanced"] == {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
    back, kept = so_restore_plan(written["spec"], ORIGINAL, values)
    assert kept == [] and back[BEHAVIOR] is MISSING
    restored = jsonpatch.apply_patch(written, so_patch(written, back, "u-so", ORIGINAL))
    assert restored["spec"] == ORIGINAL  # no `advanced: {}` left behind


def test_a_restore_keeps_the_owners_other_advanced_settings() -> None:
    original = {**ORIGINAL, "advanced": {"restoreToOriginalReplicaCount": True}}
    values = so_values(_variant(behavior={"scaleUp": {"selectPolicy": "Max"}}))
    live = _so(original)
    written = jsonpatch.apply_patch(live, so_patch(live, values, "u-so"))
    back, _ = so_restore_plan(written["spec"], original, values)
    restored = jsonpatch.apply_patch(written, so_patch(written, back, "u-so", original))
    assert restored["spec"] == original


def test_the_restore_is_three_way() -> None:
    values = so_values(_variant(maxReplicaCount=6, cooldownPeriod=30))
    live = _so(ORIGINAL)
    written = jsonpatch.apply_patch(live, so_patch(live, values, "u-so"))
    written["spec"]["maxReplicaCount"] = 9  # someone else's edit mid-run
    assert so_changed(written["spec"], values) == [("maxReplicaCount",)]
    back, kept = so_restore_plan(written["spec"], ORIGINAL, values)
    assert kept == [("maxReplicaCount",)]
    assert back == {("triggers",): [CPU], ("cooldownPeriod",): MISSING}
    restored = jsonpatch.apply_patch(written, so_patch(written, back, "u-so", ORIGINAL))
    assert restored["spec"] == {**ORIGINAL, "maxReplicaCount": 9}  # theirs kept, ours back


def test_a_new_scaled_object_scales_the_deployment_and_is_labelled() -> None:
    values = so_values(_variant(minReplicaCount=0, behavior={"scaleUp": {}}))
    made = new_scaled_object("team", "alice-so", "alice", values, {"surge.dev/experiment": "sx"})
    assert made["metadata"] == {
        "name": "alice-so",
        "namespace": "team",
        "labels": {"surge.dev/experiment": "sx"},
    }
    assert made["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "alice",
    }
    assert made["spec"]["minReplicaCount"] == 0
    assert so_read(made["spec"], BEHAVIOR) == {"scaleUp": {}}


def test_the_plan_of_a_variant_is_the_original_with_its_fields() -> None:
    plan = so_apply(ORIGINAL, _variant(maxReplicaCount=2), "alice")
    assert plan == {**ORIGINAL, "triggers": [PROM], "maxReplicaCount": 2}
    assert so_apply(None, _variant(), "alice")["scaleTargetRef"]["name"] == "alice"
    assert ORIGINAL["triggers"] == [CPU]  # the original is not touched


def test_the_brief_is_small_and_tells_two_specs_apart() -> None:
    brief = so_brief({**ORIGINAL, "pollingInterval": 5, "triggers": [PROM] * 20})
    assert brief is not None
    assert (brief.min_replica_count, brief.max_replica_count, brief.polling_interval) == (1, 4, 5)
    assert brief.cooldown_period is None and brief.triggers == ["prometheus"] * 8
    other = so_brief({**ORIGINAL, "pollingInterval": 6})
    assert other is not None and other.digest != brief.digest and len(brief.digest) == 16
    assert so_brief(None) is None
