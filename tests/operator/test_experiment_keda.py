"""ScaledObject variants through the ScalingExperiment state machine, on the FakeKube: the
variant's fields patched onto a pre-existing ScaledObject (or one created), the originals
restored exactly, an edit by someone else stopping the run with their value kept, and two
scalers refused before anything is written."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from surge.api.experiment_status import ScalingExperimentStatus
from surge.api.policy import ClusterPolicy
from surge.operator.context import Decision
from surge.operator.experiment import reconcile as experiments
from surge.operator.experiment.runs import child_name
from surge.operator.settings import Settings
from tests.operator.fake_kube import FakeKube, merge_patch
from tests.operator.schema import pruned
from tests.operator.test_experiments import NAME, NS, ORIGINAL, SCHEMA, T0, _body, make_kube

SETTINGS = Settings(
    policy=ClusterPolicy.model_validate(
        {"scaledObjects": {"allow": True}, "allowCustomQueries": True}  # PROM's query
    ),
    prometheus_url="http://prometheus.monitoring:9090",
)
PROM = {
    "type": "prometheus",
    "metadata": {
        "serverAddress": "http://prometheus.monitoring:9090",
        "query": "sum(alice_inflight)",
        "threshold": "4",
    },
}
CPU = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}
SO_ORIGINAL: dict[str, Any] = {
    "scaleTargetRef": {"name": "alice"},
    "minReplicaCount": 1,
    "maxReplicaCount": 4,
    "pollingInterval": 30,
    "fallback": {"failureThreshold": 3, "replicas": 2},  # never a variant's
    "triggers": [CPU],
}
VARIANTS = [
    {"name": "inflight", "scaledObject": {"triggers": [PROM], "maxReplicaCount": 6}},
    {
        "name": "fast",
        "scaledObject": {
            "triggers": [CPU],
            "minReplicaCount": 0,
            "pollingInterval": 5,
            "cooldownPeriod": 10,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        },
    },
]


def _spec() -> dict[str, Any]:
    return {
        "targetRef": {"deployment": "alice", "scaledObject": "alice-so"},
        "loadTest": {
            "target": {"url": "http://alice.team:8080"},
            "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
        },
        "variants": copy.deepcopy(VARIANTS),
        "cooldown": "30s",
    }


def _kube(with_so: bool = True) -> FakeKube:
    k = make_kube()
    del k.objects[("HorizontalPodAutoscaler", NS, "alice")]  # a ScaledObject scales it
    if with_so:
        k.put(
            {
                "kind": "ScaledObject",
                "metadata": {"name": "alice-so", "namespace": NS, "uid": "u-so"},
                "spec": copy.deepcopy(SO_ORIGINAL),
            }
        )
        k.put(  # KEDA's own HPA: not a second scaler
            {
                "kind": "HorizontalPodAutoscaler",
                "metadata": {
                    "name": "keda-hpa-alice-so",
                    "namespace": NS,
                    "ownerReferences": [{"kind": "ScaledObject", "name": "alice-so"}],
                },
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "alice"}},
            }
        )
    return k


def tick(kube: FakeKube, body: dict[str, Any], now: Any) -> Decision:
    step = experiments.reconcile_experiment(body, kube, SETTINGS, now)  # type: ignore[arg-type]
    assert pruned(step.status, SCHEMA["status"]) == []
    body["status"] = merge_patch(body.get("status") or {}, step.status)
    ScalingExperimentStatus.model_validate(body["status"])
    return step


def _so(kube: FakeKube) -> dict[str, Any] | None:
    return kube.scaled_object(NS, "alice-so")


def drive(
    kube: FakeKube, body: dict[str, Any], until: tuple[str, str | None, int | None]
) -> list[str]:
    """Tick (rollouts complete, children succeed) until the phase/stage/index `until`."""
    now, seen = T0, list[str]()
    for _ in range(60):
        st = body["status"]
        at = (
            st.get("phase"),
            (st.get("step") or {}).get("stage"),
            (st.get("step") or {}).get("index"),
        )
        if at == until or (until[1] is None and at[0] == until[0]):
            return seen
        dep = kube.deployment(NS, "alice")
        assert dep is not None
        n = dep["spec"].get("replicas", 1)
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"],
            "updatedReplicas": n,
            "availableReplicas": n,
            "replicas": n,
        }
        if at[1] == "Test" and at[2] is not None:
            child = kube.loadtest(NS, child_name(NAME, VARIANTS[at[2]]["name"], 0))
            if child is not None:
                child["status"] = {
                    "phase": "Succeeded",
                    "summary": {"achievedRps": 5.0, "p95Ms": 100.0, "errorRate": 0.0},
                    "results": {"version": 2, "requests": {"sent": 50}},
                }
        now += timedelta(seconds=31)
        seen += [str(r) for _, r, _ in tick(kube, body, now).events]
    raise AssertionError(f"never reached {until}: {body['status']}")


def test_variants_write_their_fields_and_the_original_comes_back_exactly() -> None:
    kube = _kube()
    body = _body(_spec())
    drive(kube, body, ("Running", "RollOut", 0))
    so = _so(kube)
    assert so is not None
    assert so["spec"] == {**SO_ORIGINAL, "triggers": [PROM], "maxReplicaCount": 6}
    assert [w["path"] for w in body["status"]["step"]["scaledObjectWritten"]] == [
        ["triggers"],
        ["maxReplicaCount"],
    ]
    drive(kube, body, ("Running", "Cooldown", 0))
    assert (_so(kube) or {})["spec"] == SO_ORIGINAL
    drive(kube, body, ("Running", "Test", 1))
    so = _so(kube)
    assert so is not None
    assert so["spec"]["advanced"] == {
        "horizontalPodAutoscalerConfig": {
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}
        }
    }
    assert (so["spec"]["minReplicaCount"], so["spec"]["cooldownPeriod"]) == (0, 10)
    drive(kube, body, ("Succeeded", None, None))
    assert (_so(kube) or {})["spec"] == SO_ORIGINAL  # no `advanced: {}`, no cooldownPeriod
    dep = kube.deployment(NS, "alice")
    assert dep is not None and dep["spec"] == ORIGINAL
    briefs = [r["scaledObjectInForce"] for r in body["status"]["runs"]]
    assert [(b["maxReplicaCount"], b["triggers"]) for b in briefs] == [
        (6, ["prometheus"]),
        (4, ["cpu"]),
    ]
    assert briefs[1]["pollingInterval"] == 5 and briefs[0]["digest"] != briefs[1]["digest"]
    assert body["status"]["recommendation"]


def test_a_scaled_object_the_experiment_created_is_deleted_on_restore() -> None:
    kube = _kube(with_so=False)
    spec = _spec()
    spec["variants"][1]["scaledObject"]["maxReplicaCount"] = 3  # else KEDA's 100: over the cap
    body = _body(spec)
    drive(kube, body, ("Running", "RollOut", 0))
    so = _so(kube)
    assert so is not None and so["metadata"]["labels"] == {"surge.dev/experiment": NAME}
    assert so["spec"]["scaleTargetRef"]["name"] == "alice"
    drive(kube, body, ("Running", "Cooldown", 0))
    assert _so(kube) is None
    assert ("delete_scaled_object", NS, "alice-so") in kube.calls


def test_an_edit_of_the_variants_field_mid_run_stops_and_is_kept() -> None:
    kube = _kube()
    body = _body(_spec())
    drive(kube, body, ("Running", "Test", 0))
    kube.objects[("ScaledObject", NS, "alice-so")]["spec"]["maxReplicaCount"] = 9
    seen = drive(kube, body, ("Aborted", None, None))
    assert "TargetModified" in seen
    message = body["status"]["message"]
    assert "ScaledObject alice-so spec.maxReplicaCount" in message
    # Theirs kept; the variant's other field (the triggers) back to the original.
    assert (_so(kube) or {})["spec"] == {**SO_ORIGINAL, "maxReplicaCount": 9}


def test_an_edit_of_a_field_the_variant_does_not_own_is_not_an_edit() -> None:
    kube = _kube()
    body = _body(_spec())
    drive(kube, body, ("Running", "Test", 0))
    kube.objects[("ScaledObject", NS, "alice-so")]["spec"]["fallback"]["replicas"] = 3
    drive(kube, body, ("Running", "Cooldown", 0))
    assert (_so(kube) or {})["spec"]["fallback"]["replicas"] == 3


@pytest.mark.parametrize("plain_hpa", [True, False])
def test_two_scalers_end_the_experiment_before_anything_is_written(plain_hpa: bool) -> None:
    kube = _kube()
    spec = _spec()
    if plain_hpa:  # a ScaledObject variant beside a plain HPA
        kube.put(
            {
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "alice", "namespace": NS},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "alice"}},
            }
        )
    else:  # an HPA variant beside the ScaledObject
        spec["targetRef"]["hpa"] = "alice"
        spec["variants"] = [{"name": "hpa", "hpa": {"maxReplicas": 3}}]
    body = _body(spec)
    seen = drive(kube, body, ("Failed", None, None))
    assert "ScalerConflict" in seen
    completed = [c for c in body["status"]["conditions"] if c["type"] == "Completed"]
    assert completed[0]["reason"] == "ScalerConflict"
    message = body["status"]["message"]
    assert "HorizontalPodAutoscaler alice" in message and "ScaledObject alice-so" in message
    assert not [c for c in kube.calls if c[0] in ("patch_deployment", "patch_scaled_object")]


def test_scaled_object_variants_need_the_admins_opt_in() -> None:
    kube = _kube()
    body = _body(_spec())
    step = experiments.reconcile_experiment(body, kube, Settings(), T0)  # type: ignore[arg-type]
    assert step.status["phase"] == "Failed"
    assert "scaledObjects.allow" in step.status["message"]


def test_a_dry_run_shows_each_variants_scaled_object() -> None:
    kube = _kube()
    spec = {**_spec(), "dryRun": True}
    body = _body(spec)
    tick(kube, body, T0)
    plan = body["status"]["plan"]
    assert plan[0]["scaledObject"] == {**SO_ORIGINAL, "triggers": [PROM], "maxReplicaCount": 6}
    assert plan[1]["scaledObject"]["pollingInterval"] == 5
    assert (_so(kube) or {})["spec"] == SO_ORIGINAL


def test_a_scaled_object_still_being_deleted_is_waited_for() -> None:
    kube = _kube(with_so=False)
    spec = _spec()
    spec["variants"][1]["scaledObject"]["maxReplicaCount"] = 3
    body = _body(spec)
    drive(kube, body, ("Running", "Apply", 1))
    # The previous run's ScaledObject, deleted on restore, still waits on KEDA's finalizer.
    kube.put(
        {
            "kind": "ScaledObject",
            "metadata": {
                "name": "alice-so",
                "namespace": NS,
                "uid": "u-old",
                "deletionTimestamp": "2026-11-29T12:05:00Z",
            },
            "spec": {"scaleTargetRef": {"name": "alice"}, "triggers": [PROM]},
        }
    )
    tick(kube, body, T0 + timedelta(minutes=10))
    retrying = [c for c in body["status"]["conditions"] if c["type"] == "Retrying"]
    assert retrying[0]["status"] == "True" and "being deleted" in retrying[0]["message"]
    assert body["status"]["step"]["stage"] == "Apply"
    del kube.objects[("ScaledObject", NS, "alice-so")]  # KEDA let it go
    tick(kube, body, T0 + timedelta(minutes=11))
    assert body["status"]["step"]["stage"] == "RollOut"
    assert (_so(kube) or {})["spec"]["pollingInterval"] == 5


def test_a_write_not_yet_recorded_is_restored_from_the_frozen_spec() -> None:
    """The operator died right after patching the ScaledObject, before status said so."""
    kube = _kube()
    body = _body(_spec())
    drive(kube, body, ("Running", "RollOut", 0))
    body["status"]["step"]["scaledObjectWritten"] = None
    body["status"]["step"]["scaledObjectUid"] = None
    experiments.restore_on_delete(body, kube, SETTINGS, T0 + timedelta(minutes=5))  # type: ignore[arg-type]
    assert (_so(kube) or {})["spec"] == SO_ORIGINAL


def test_a_lost_write_never_deletes_another_experiments_scaled_object() -> None:
    """The operator died before recording the ScaledObject it created; by the restore, the
    object under that name carries another experiment's label value: not ours to delete."""
    kube = _kube(with_so=False)
    spec = _spec()
    spec["variants"][1]["scaledObject"]["maxReplicaCount"] = 3
    body = _body(spec)
    drive(kube, body, ("Running", "RollOut", 0))
    body["status"]["step"]["scaledObjectWritten"] = None
    body["status"]["step"]["scaledObjectUid"] = None
    so = kube.objects[("ScaledObject", NS, "alice-so")]
    so["metadata"]["labels"] = {"surge.dev/experiment": "another"}
    experiments.restore_on_delete(body, kube, SETTINGS, T0 + timedelta(minutes=5))  # type: ignore[arg-type]
    assert _so(kube) is not None
    assert ("delete_scaled_object", NS, "alice-so") not in kube.calls
