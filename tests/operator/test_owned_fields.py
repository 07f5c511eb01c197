"""The fields a variant owns: the JSON patch that writes only them (applied with the
jsonpatch library, as the API server applies RFC 6902), and the three-way restore."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from surge.api.experiment import Variant
from surge.operator.experiment.owned_fields import (
    MISSING,
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

DEPLOYMENT: dict[str, Any] = {
    "metadata": {"name": "alice", "uid": "u-dep"},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "nodeSelector": {"pool": "cpu"},
                "containers": [
                    {
                        "name": "alice",
                        "image": "alice:1",
                        "resources": {"requests": {"cpu": "500m"}},
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    }
                ],
            }
        },
    },
}
GPU = Variant.model_validate(
    {
        "name": "gpu",
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        "resources": {"limits": {"nvidia.com/gpu": 1}, "requests": {"cpu": "1"}},
        "env": [{"name": "B", "value": "gpu"}, {"name": "C", "value": "3"}],
        "replicas": 1,
    }
)


def _apply(dep: dict[str, Any], values: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = jsonpatch.apply_patch(dep, json_patch(dep, values, "u-dep"))
    return out


def test_the_variant_owns_only_what_it_sets() -> None:
    owned = owned_values(GPU, DEPLOYMENT["spec"])
    assert sorted(display(p) for p in owned) == [
        "containers[alice].env[B]",
        "containers[alice].env[C]",
        "containers[alice].resources.limits[nvidia.com/gpu]",
        "containers[alice].resources.requests[cpu]",
        "spec.replicas",
        "spec.template.spec.nodeSelector",
        "spec.template.spec.tolerations",
    ]
    assert owned[("container", "alice", "resources", "limits", "nvidia.com/gpu")] == "1"


def test_the_patch_writes_those_fields_and_nothing_else() -> None:
    owned = owned_values(GPU, DEPLOYMENT["spec"])
    after = _apply(DEPLOYMENT, owned)
    c = after["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "alice:1"  # the owner's
    assert c["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "gpu"},
        {"name": "C", "value": "3"},
    ]
    assert c["resources"] == {"requests": {"cpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
    assert after["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert after["spec"]["replicas"] == 1
    assert changed(after["spec"], owned) == []
    ops = json_patch(DEPLOYMENT, owned, "u-dep")
    assert ops[0] == {"op": "test", "path": "/metadata/uid", "value": "u-dep"}
    other = copy.deepcopy(DEPLOYMENT)
    other["metadata"]["uid"] = "u-other"  # recreated under the same name
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(other, ops)


def test_restore_is_three_way() -> None:
    owned = owned_values(GPU, DEPLOYMENT["spec"])
    live = _apply(DEPLOYMENT, owned)
    # Someone changes one of the variant's fields, and rolls out a new image.
    c = live["spec"]["template"]["spec"]["containers"][0]
    c["env"][1]["value"] = "theirs"
    c["image"] = "alice:2"
    back, kept = restore_plan(live["spec"], originals(DEPLOYMENT["spec"], owned), owned)
    assert [display(p) for p in kept] == ["containers[alice].env[B]"]
    assert back[("container", "alice", "env", "C")] is MISSING  # it was not there before
    after = _apply(live, back)
    c = after["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "alice:2"  # the owner's rollout stays
    assert c["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "theirs"}]
    assert c["resources"] == {"requests": {"cpu": "500m"}}  # no `limits: {}` left behind
    assert after["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "cpu"}
    assert "tolerations" not in after["spec"]["template"]["spec"]
    assert after["spec"]["replicas"] == 2


def test_owner_edits_outside_the_variant_are_named() -> None:
    owned = owned_values(GPU, DEPLOYMENT["spec"])
    live = _apply(DEPLOYMENT, owned)
    digest = rest_digest(live["spec"], owned)
    live["spec"]["replicas"] = 5  # an HPA or a person scaling: not an edit of the workload
    assert rest_digest(live["spec"], owned) == digest
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "alice:2"
    assert rest_digest(live["spec"], owned) != digest
    assert owner_edits(DEPLOYMENT["spec"], live["spec"], owned) == [
        "spec.template.spec.containers[alice].image"
    ]


def test_read_says_missing_apart_from_null() -> None:
    spec = DEPLOYMENT["spec"]
    assert read(spec, ("pod", "affinity")) is MISSING
    assert read(spec, ("container", "nope", "env", "A")) is MISSING
    assert read(spec, ("container", "alice", "env", "A")) == {"name": "A", "value": "1"}
