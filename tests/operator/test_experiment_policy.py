"""The cluster policy on ScalingExperiments: opt-in targets, replica and GPU caps, the
loadTest template's own rules, and a forged snapshot; each ends PolicyViolation before the
experiment takes its target or writes anything."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from surge.api.experiment import ScalingExperimentSpec
from surge.operator.experiment.runs import snapshot_name
from surge.operator.experiment.target import snapshot_configmap
from tests.operator.fake_kube import FakeKube
from tests.operator.test_experiments import (
    HPA,
    NAME,
    NS,
    T0,
    _body,
    _spec,
    make_kube,
    reasons,
    tick,
)


@pytest.fixture
def kube() -> FakeKube:
    return make_kube()


def _nothing_taken(kube: FakeKube) -> None:
    assert not [c for c in kube.calls if c[0] in ("ensure", "patch_deployment", "put_hpa_spec")]
    assert not [k for k in kube.objects if k[0] in ("Lease", "ConfigMap")]


def _failed(kube: FakeKube, spec: dict[str, Any]) -> str:
    body = _body(spec)
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["PolicyViolation"]
    _nothing_taken(kube)
    return str(body["status"]["message"])


def test_a_deployment_that_did_not_opt_in_is_not_touched(kube: FakeKube) -> None:
    del kube.objects[("Deployment", NS, "alice")]["metadata"]["annotations"]
    message = _failed(kube, _spec())
    assert "spec.targetRef.deployment" in message and "surge.dev/experiment-target" in message


def test_variants_cannot_write_more_replicas_or_gpus_than_the_caps(kube: FakeKube) -> None:
    spec = _spec(
        variants=[
            {"name": "big", "replicas": 500},
            {"name": "wide", "hpa": {"maxReplicas": 100}},
            {"name": "gpu", "resources": {"limits": {"nvidia.com/gpu": 8}}},
        ]
    )
    message = _failed(kube, spec)
    assert "spec.variants[0].replicas" in message
    assert "spec.variants[1].hpa.maxReplicas" in message
    assert "spec.variants[2].resources" in message and "caps.maxGpusPerPod" in message


def test_the_load_test_template_meets_the_loadtest_rules(kube: FakeKube) -> None:
    spec = _spec()
    spec["loadTest"]["image"] = "evil/miner:1"
    spec["loadTest"]["target"]["url"] = "http://10.0.0.1:8080"
    message = _failed(kube, spec)
    assert "spec.loadTest.image" in message and "spec.loadTest.target.url" in message


def test_a_snapshot_with_a_forged_owner_is_not_restored_from(kube: FakeKube) -> None:
    """Someone who can create ConfigMaps pre-creates the snapshot with the experiment's uid
    in its ownerReferences and "originals" of their own: restoring it would write them."""
    body = _body()
    dep = copy.deepcopy(kube.objects[("Deployment", NS, "alice")])
    dep["spec"]["template"]["spec"]["serviceAccountName"] = "cluster-admin-sa"
    forged = snapshot_configmap(body, dep, dict(HPA), ScalingExperimentSpec.model_validate(_spec()))
    assert forged["metadata"]["name"] == snapshot_name(NAME)
    kube.put(forged)
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["PolicyViolation"]
    assert "exists already with content Surge did not write" in body["status"]["message"]
    assert not [c for c in kube.calls if c[0] in ("patch_deployment", "put_hpa_spec")]


def test_an_hpa_that_scales_another_deployment_is_not_written(kube: FakeKube) -> None:
    hpa = kube.objects[("HorizontalPodAutoscaler", NS, "alice")]
    hpa["spec"]["scaleTargetRef"] = {"kind": "Deployment", "name": "payments"}
    message = _failed(kube, _spec())
    assert "spec.targetRef.hpa" in message and "payments" in message


def test_a_variants_env_secret_needs_the_label(kube: FakeKube) -> None:
    ref = {"secretKeyRef": {"name": "prod-db", "key": "password"}}
    spec = _spec(variants=[{"name": "a", "env": [{"name": "DB", "valueFrom": ref}]}])
    kube.put({"kind": "Secret", "metadata": {"name": "prod-db", "namespace": NS}})
    message = _failed(kube, spec)
    assert "spec.variants[0].env[0].valueFrom" in message and "surge.dev/usable" in message


def test_a_variant_env_without_a_name_is_an_invalid_spec(kube: FakeKube) -> None:
    body = _body(_spec(variants=[{"name": "a", "env": [{"value": "x"}]}]))
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["InvalidSpec"]
    assert "env" in body["status"]["message"] and "needs a name" in body["status"]["message"]


@pytest.mark.parametrize(
    ("variant", "words"),
    [
        # A string where a map belongs: secret_names raised AttributeError (InternalError).
        ({"name": "a", "env": [{"name": "A", "valueFrom": "x"}]}, "valueFrom: must be a map"),
        ({"name": "a", "env": [{"name": "A", "valueFrom": {"secretKeyRef": "s"}}]}, "secretKeyRef"),
        # The name is the surge.dev/variant label's value: 64 characters failed with a 422
        # only when the child LoadTest was created, after Apply had changed the Deployment.
        ({"name": "v" * 64}, "variants[0].name"),
    ],
)
def test_malformed_variants_are_invalid_specs_before_anything_is_taken(
    kube: FakeKube, variant: dict[str, Any], words: str
) -> None:
    body = _body(_spec(variants=[variant]))
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["InvalidSpec"]
    assert words in body["status"]["message"], body["status"]["message"]
    _nothing_taken(kube)
