"""Red team: the ScaledObject a ScalingExperiment writes is not the one it snapshotted.

Between runs (Cooldown) nothing of a variant is on the target, and the owner may act: create
their own ScaledObject of the name the experiment used (the variant's was deleted on
restore), replace theirs (delete and create: a new uid), or point it at another Deployment.
The next Apply must not write the variant's fields into that object, nor delete or "restore"
it from a snapshot of another object: never undo someone else's work."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from surge.api.experiment import HpaSpec
from tests.operator.fake_kube import FakeKube
from tests.operator.test_experiment_keda import CPU, SO_ORIGINAL, _kube, _so, _spec, drive, tick
from tests.operator.test_experiments import NS, T0, _body

THEIRS: dict[str, Any] = {
    "scaleTargetRef": {"name": "alice"},
    "minReplicaCount": 2,
    "maxReplicaCount": 5,
    "triggers": [CPU],
}


def _put_so(kube: FakeKube, uid: str, spec: dict[str, Any]) -> None:
    kube.put(
        {
            "kind": "ScaledObject",
            "metadata": {"name": "alice-so", "namespace": NS, "uid": uid},
            "spec": copy.deepcopy(spec),
        }
    )


def _written_to_it(kube: FakeKube) -> list[Any]:
    return [c for c in kube.calls if c[0] in ("patch_scaled_object", "delete_scaled_object")]


def test_a_scaled_object_the_owner_creates_between_runs_is_neither_written_nor_deleted() -> None:
    """Attack/race: no ScaledObject at the snapshot; run 0 creates one and deletes it on
    restore; in the cooldown the owner creates theirs, same name. Run 1 found it, patched the
    variant's fields into it, and its restore (the original was `none`) deleted it."""
    kube = _kube(with_so=False)
    spec = _spec()
    spec["variants"][1]["scaledObject"]["maxReplicaCount"] = 3
    body = _body(spec)
    drive(kube, body, ("Running", "Cooldown", 0))
    _put_so(kube, "u-owner", THEIRS)
    kube.calls.clear()
    drive(kube, body, ("Aborted", None, None))
    assert (_so(kube) or {}).get("spec") == THEIRS
    assert _written_to_it(kube) == []
    assert "ScaledObject alice-so" in body["status"]["message"]


def test_a_replaced_scaled_object_is_not_restored_from_the_old_ones_snapshot() -> None:
    """Attack/race: the owner replaces their ScaledObject (delete, create: a new uid, new
    values) in the cooldown. Run 1 patched the new object, and the restore wrote the OLD
    object's values over the owner's new ones."""
    kube = _kube()
    body = _body(_spec())
    drive(kube, body, ("Running", "Cooldown", 0))
    _put_so(kube, "u-new", THEIRS)
    kube.calls.clear()
    drive(kube, body, ("Aborted", None, None))
    assert (_so(kube) or {}).get("spec") == THEIRS
    assert _written_to_it(kube) == []


def test_a_scaled_object_pointed_at_another_deployment_is_not_written() -> None:
    """Attack: between runs the ScaledObject is pointed at Deployment `payments` (not opted
    in to experiments): the next variant's triggers and replica counts would scale it."""
    kube = _kube()
    body = _body(_spec())
    drive(kube, body, ("Running", "Cooldown", 0))
    kube.objects[("ScaledObject", NS, "alice-so")]["spec"]["scaleTargetRef"] = {"name": "payments"}
    kube.calls.clear()
    drive(kube, body, ("Aborted", None, None))
    assert (_so(kube) or {})["spec"] == {**SO_ORIGINAL, "scaleTargetRef": {"name": "payments"}}
    assert _written_to_it(kube) == []
    assert "payments" in body["status"]["message"]


ETCD_LIMIT = 1_572_864
"""etcd's default request limit (1.5 MiB): a ScalingExperiment larger than this (spec and
status together) cannot be written, so its status never records the step."""


def test_a_huge_trigger_cannot_push_the_experiment_past_etcds_limit() -> None:
    """Attack: one variant whose cpu trigger carries 600 KB of metadata. The spec fits (and
    its snapshot ConfigMap, under 1 MiB), but the step copies the triggers twice, as written
    and in force: the status write is refused on every tick, the variant stays applied and
    the experiment never says why (until spec.timeout, hours later)."""
    kube = _kube()
    spec = _spec()
    huge = {**CPU, "metadata": {"value": "70", "containerName": "c" * 600_000}}
    spec["variants"][0]["scaledObject"]["triggers"] = [huge]
    body = _body(spec)
    tick(kube, body, T0)
    if body["status"].get("phase") == "Running":
        drive(kube, body, ("Running", "Test", 0))
        tick(kube, body, T0 + timedelta(minutes=5))  # the load started: the spec in force
    assert len(json.dumps(body)) < ETCD_LIMIT
    assert body["status"]["phase"] == "Failed"
    assert "spec.variants[0].scaledObject: triggers and behavior" in body["status"]["message"]


def test_a_created_scaled_object_gives_the_deployment_its_replicas_back() -> None:
    """Attack: a Deployment with no scaler (replicas: 2, its owner's); a variant creates a
    ScaledObject with minReplicaCount 0. The restore deletes it, and KEDA by default leaves
    the Deployment at the count it last set: 0 once the load is over (the owner's service
    is down after the experiment), or the variant's max. KEDA puts the count it found back
    on deletion only when advanced.restoreToOriginalReplicaCount is set."""
    kube = _kube(with_so=False)
    spec = _spec()
    spec["variants"] = [
        {
            "name": "zero",
            "scaledObject": {"triggers": [CPU], "minReplicaCount": 0, "maxReplicaCount": 3},
        }
    ]
    body = _body(spec)
    drive(kube, body, ("Running", "RollOut", 0))
    made = _so(kube)
    assert made is not None
    assert made["spec"]["advanced"] == {"restoreToOriginalReplicaCount": True}
    assert [w["path"] for w in body["status"]["step"]["scaledObjectWritten"]] == [
        ["triggers"],
        ["minReplicaCount"],
        ["maxReplicaCount"],
    ]


def test_the_spec_in_force_is_recorded_even_if_the_first_test_tick_is_lost() -> None:
    """Level-triggered: the tick that creates the child LoadTest records the ScaledObject in
    force; if its status write is lost (the operator restarts, the patch fails), the next
    tick found the child and never recorded it: the run row had no scaledObjectInForce
    (seen once in e2e)."""
    kube = _kube()
    body = _body(_spec())
    drive(kube, body, ("Running", "Test", 0))
    before = copy.deepcopy(body["status"])
    tick(kube, body, T0 + timedelta(minutes=3))  # creates the child...
    body["status"] = before  # ...and its status write is lost
    drive(kube, body, ("Running", "Cooldown", 0))
    row = body["status"]["runs"][0]
    assert row["scaledObjectInForce"]["maxReplicaCount"] == 6


def test_a_second_scaler_added_mid_run_stops_the_run() -> None:
    """Race: the two-scalers rule is checked before each Apply; the owner (or a GitOps sync)
    adds a plain HPA on the Deployment during the run. It and KEDA's HPA both set replicas
    and the run was measured under neither, recorded as the variant's."""
    kube = _kube()
    body = _body(_spec())
    drive(kube, body, ("Running", "Test", 0))
    rogue = {"scaleTargetRef": {"kind": "Deployment", "name": "alice"}, "maxReplicas": 9}
    kube.put(
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "rogue", "namespace": NS},
            "spec": rogue,
        }
    )
    seen = drive(kube, body, ("Aborted", None, None))
    assert "TargetModified" in seen
    assert "HorizontalPodAutoscaler rogue" in body["status"]["message"]
    assert (_so(kube) or {})["spec"] == SO_ORIGINAL  # the variant's fields put back
    assert (kube.hpa(NS, "rogue") or {})["spec"] == rogue  # theirs untouched


def _keda_serves(kube: FakeKube) -> None:
    """What KEDA does to a ScaledObject it takes over (it writes the object back from its Go
    types, adding its finalizer): trigger fields holding Go's zero value are dropped."""
    live = kube.objects[("ScaledObject", NS, "alice-so")]
    for t in live["spec"]["triggers"]:
        for key, zero in (("useCachedMetrics", False), ("name", ""), ("metricType", "")):
            if key in t and t[key] == zero and type(t[key]) is type(zero):
                del t[key]


def test_kedas_rewrite_does_not_leave_the_created_scaled_object_behind() -> None:
    """Attack: a variant's trigger says `useCachedMetrics: false` (KEDA's default). KEDA drops
    it when it takes the created ScaledObject over; the operator read that as someone
    else's edit: Aborted, and the restore, keeping "their" triggers, never deleted the
    object. The experiment's ScaledObject (the tenant's triggers) scaled the owner's
    Deployment for good."""
    kube = _kube(with_so=False)
    spec = _spec()
    trigger = {**CPU, "useCachedMetrics": False, "name": ""}
    spec["variants"] = [
        {"name": "inflight", "scaledObject": {"triggers": [trigger], "maxReplicaCount": 3}}
    ]
    body = _body(spec)
    drive(kube, body, ("Running", "RollOut", 0))
    _keda_serves(kube)
    drive(kube, body, ("Succeeded", None, None))
    assert _so(kube) is None


def test_a_huge_hpa_variant_is_refused_like_a_huge_trigger() -> None:
    """The same attack through an HPA variant: metrics (64 of them) nested up to the tree
    bounds, copied twice into status.step (hpaWritten, hpaInForce)."""
    metric = {"type": "External", "external": {"metric": {"name": "m" * 20_000}}}
    with pytest.raises(ValidationError, match=r"metrics and behavior are [\d,]+ bytes as JSON"):
        HpaSpec.model_validate({"maxReplicas": 4, "metrics": [metric] * 2})
    HpaSpec.model_validate({"maxReplicas": 4, "metrics": [metric]})  # 20 KB: fits
