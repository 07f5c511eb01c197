"""The cluster policy on ScaledObject variants (operator/policy/scaled_objects.py), pure: opt-in,
trigger types, addresses, TriggerAuthentications and the replica cap; each violation names
the field and the fix."""

from __future__ import annotations

from typing import Any

from surge.api.experiment import ScalingExperimentSpec
from surge.api.policy import ClusterPolicy, Violation
from surge.operator.policy.experiment import experiment_violations
from surge.operator.policy.scaled_objects import scaled_object_violations

PROM_URL = "http://prometheus.monitoring:9090"
PROM = {
    "type": "prometheus",
    "metadata": {"serverAddress": PROM_URL, "query": "sum(inflight)", "threshold": "4"},
}
# A prometheus trigger's query is custom PromQL: this admin allows it (allowCustomQueries).
ALLOW = {
    "allowCustomQueries": True,
    "scaledObjects": {"allow": True, "triggerAuthentications": ["prom-auth"]},
}


def spec_with(*scaled_objects: dict[str, Any]) -> ScalingExperimentSpec:
    return ScalingExperimentSpec.model_validate(
        {
            "targetRef": {"deployment": "alice", "scaledObject": "alice"},
            "loadTest": {
                "target": {"url": "http://alice:8080"},
                "load": {"model": "constant", "stages": [{"duration": "5s", "target": 1}]},
            },
            "variants": [
                {"name": f"v{i}", "scaledObject": so} for i, so in enumerate(scaled_objects)
            ],
        }
    )


def check(
    *scaled_objects: dict[str, Any], policy: dict[str, Any] | None = None, **kw: Any
) -> list[Violation]:
    return scaled_object_violations(
        spec_with(*scaled_objects),
        ClusterPolicy.model_validate(ALLOW if policy is None else policy),
        (PROM_URL,),
        **kw,
    )


def test_an_allowed_prometheus_variant_is_admitted() -> None:
    assert check({"triggers": [PROM], "maxReplicaCount": 10, "minReplicaCount": 0}) == []


def test_scaled_objects_are_off_until_the_admin_opts_in() -> None:
    (v,) = check({"triggers": [PROM], "maxReplicaCount": 3}, policy={})
    assert (v.field, v.rule) == ("spec.variants[0].scaledObject", "scaledObjects.allow")
    assert "hpa variant" in v.message


def test_a_trigger_type_must_be_listed() -> None:
    (v,) = check({"triggers": [{"type": "kafka", "metadata": {}}], "maxReplicaCount": 3})
    assert (v.field, v.rule) == (
        "spec.variants[0].scaledObject.triggers[0].type",
        "scaledObjects.triggerTypes",
    )
    assert "prometheus, cpu, memory" in v.message


def test_a_missing_max_replica_count_is_kedas_100_and_is_capped() -> None:
    (v,) = check({"triggers": [PROM]})
    assert (v.field, v.rule) == (
        "spec.variants[0].scaledObject.maxReplicaCount",
        "caps.maxExperimentReplicas",
    )
    assert "100 replicas (unset: the ScaledObject's 100)" in v.message and "at most 20" in v.message
    (v,) = check({"triggers": [PROM], "maxReplicaCount": 21})
    assert v.field == "spec.variants[0].scaledObject.maxReplicaCount"
    raised = {**ALLOW, "caps": {"maxExperimentReplicas": 100}}
    assert check({"triggers": [PROM]}, policy=raised) == []


def test_min_replica_count_is_capped_too() -> None:
    found = check({"triggers": [PROM], "minReplicaCount": 25, "maxReplicaCount": 30})
    assert sorted(v.field for v in found) == [
        "spec.variants[0].scaledObject.maxReplicaCount",
        "spec.variants[0].scaledObject.minReplicaCount",
    ]


def test_a_value_from_the_deployments_environment_is_refused() -> None:
    trigger = {"type": "prometheus", "metadata": {"serverAddressFromEnv": "PROM", "query": "q"}}
    (v,) = check({"triggers": [trigger], "maxReplicaCount": 3})
    assert v.field == "spec.variants[0].scaledObject.triggers[0].metadata.serverAddressFromEnv"
    assert "give serverAddress itself" in v.message


def test_a_scaled_object_of_another_deployment_is_not_written() -> None:
    live = {"metadata": {"name": "alice"}, "spec": {"scaleTargetRef": {"name": "bob"}}}
    (v,) = check({"triggers": [PROM], "maxReplicaCount": 3}, live=live)
    assert v.field == "spec.targetRef.scaledObject" and "bob" in v.message


def test_the_experiment_policy_includes_the_scaled_object_rules() -> None:
    dep = {"metadata": {"annotations": {"surge.dev/experiment-target": "true"}}}
    found = experiment_violations(
        spec_with({"triggers": [PROM], "maxReplicaCount": 3}), dep, ClusterPolicy()
    )
    assert [v.rule for v in found] == ["scaledObjects.allow"]
