"""Red team: a ScalingExperiment's KEDA ScaledObject variant aims KEDA's requests.

A trigger makes the KEDA operator (its network position, its credentials) poll an address every
pollingInterval, and it may name a TriggerAuthentication holding someone's credentials. Each
attack below is a spec a tenant could apply; the policy (operator/policy/scaled_objects.py)
refuses it before anything is written, naming the field.
"""

from __future__ import annotations

from typing import Any

import pytest

from surge.api.policy import ClusterPolicy, Violation
from surge.operator.policy.scaled_objects import scaled_object_violations
from tests.operator.test_scaled_object_policy import PROM_URL, spec_with

# An admin who allows metrics-api triggers for their own metrics servers, and one auth.
POLICY = ClusterPolicy.model_validate(
    {
        "allowCustomQueries": True,
        "scaledObjects": {
            "allow": True,
            "triggerTypes": ["prometheus", "metrics-api", "cpu"],
            "triggerAuthentications": ["prom-reader"],
        },
    }
)


def _refused(trigger: dict[str, Any]) -> list[Violation]:
    so = {"triggers": [trigger], "maxReplicaCount": 3}
    return scaled_object_violations(spec_with(so), POLICY, (PROM_URL,))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # cloud metadata
        "http://kubernetes.default.svc/api/v1/secrets",  # the API server, as KEDA
        "http://127.0.0.1:10250/pods",  # the kubelet next to KEDA
        "http://prometheus.monitoring:9090@evil.example/",  # user info: another host
        "http://prometheus.monitoring:9090/../../admin",
    ],
)
def test_ssrf_through_a_metrics_api_trigger_url_is_refused(url: str) -> None:
    """Attack: a metrics-api trigger whose url is an internal endpoint; KEDA polls it from
    inside the cluster and turns its answer into a metric (and its errors into events)."""
    trigger = {"type": "metrics-api", "metadata": {"url": url, "valueLocation": "value"}}
    (v,) = _refused(trigger)
    assert (v.field, v.rule) == (
        "spec.variants[0].scaledObject.triggers[0].metadata.url",
        "prometheusUrls",
    )


@pytest.mark.parametrize(
    "address",
    ["http://prometheus.other-team:9090", "https://prometheus.monitoring:9090", "10.0.0.7:9090"],
)
def test_a_prometheus_server_address_of_another_host_is_refused(address: str) -> None:
    """Attack: a prometheus trigger at another tenant's Prometheus (their series become this
    experiment's scaling signal) or at any host KEDA can reach."""
    trigger = {"type": "prometheus", "metadata": {"serverAddress": address, "query": "up"}}
    (v,) = _refused(trigger)
    assert v.field == "spec.variants[0].scaledObject.triggers[0].metadata.serverAddress"


def test_an_address_under_any_key_with_a_scheme_is_checked() -> None:
    """Attack: the address hidden in a metadata key the policy might not know."""
    meta = {"serverAddress": PROM_URL, "query": "up", "customEndpoint": "http://10.0.0.9/x"}
    (v,) = _refused({"type": "prometheus", "metadata": meta})
    assert v.field.endswith("metadata.customEndpoint")


def test_an_unlisted_trigger_authentication_is_refused() -> None:
    """Attack: borrow a TriggerAuthentication of the namespace that holds another
    workload's credentials (a cloud queue's keys)."""
    trigger = {
        "type": "prometheus",
        "metadata": {"serverAddress": PROM_URL, "query": "up"},
        "authenticationRef": {"name": "payments-aws-keys"},
    }
    (v,) = _refused(trigger)
    assert v.field == "spec.variants[0].scaledObject.triggers[0].authenticationRef.name"
    assert v.rule == "scaledObjects.triggerAuthentications" and "prom-reader" in v.message


def test_a_cluster_trigger_authentication_is_refused_even_by_a_listed_name() -> None:
    """Attack: a ClusterTriggerAuthentication of the listed name: cluster-wide credentials."""
    trigger = {
        "type": "prometheus",
        "metadata": {"serverAddress": PROM_URL, "query": "up"},
        "authenticationRef": {"name": "prom-reader", "kind": "ClusterTriggerAuthentication"},
    }
    (v,) = _refused(trigger)
    assert v.field.endswith("authenticationRef.kind")


def test_the_allowed_forms_pass() -> None:
    ok = {
        "type": "prometheus",
        "metadata": {"serverAddress": PROM_URL + "/", "query": "sum(rate(x[1m]))"},
        "authenticationRef": {"name": "prom-reader"},
    }
    assert _refused(ok) == []
    assert _refused({"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}) == []


# -- second pass (redteam-keda): what the first rules let through --------------------------

NO_QUERIES = ClusterPolicy.model_validate(
    {**POLICY.model_dump(by_alias=True), "allowCustomQueries": False}
)


def test_a_trigger_query_needs_allow_custom_queries() -> None:
    """Attack: allowCustomQueries is off (a LoadTest may not run PromQL: it reads any series,
    other tenants' included), but a prometheus trigger's query runs all the same, as KEDA,
    and its value shows in KEDA's HPA status in the tenant's namespace every poll."""
    trigger = {
        "type": "prometheus",
        "metadata": {"serverAddress": PROM_URL, "query": 'sum(payments_balance{team="b"})'},
    }
    so = {"triggers": [trigger], "maxReplicaCount": 3}
    (v,) = scaled_object_violations(spec_with(so), NO_QUERIES, (PROM_URL,))
    assert (v.field, v.rule) == (
        "spec.variants[0].scaledObject.triggers[0].metadata.query",
        "allowCustomQueries",
    )
    assert _refused(trigger) == []  # the admin who allows PromQL allows it here too


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("customHeaders", "X-Scope-OrgID=team-b"),  # Cortex/Mimir tenant of another team
        ("cortexOrgID", "team-b"),
        ("queryParameters", "namespace=team-b"),  # prom-label-proxy's tenant parameter
        ("namespace", "team-b"),  # KEDA adds &namespace= (Thanos tenancy)
        ("unsafeSsl", "true"),  # the admin's token to whoever answers
    ],
)
def test_a_prometheus_trigger_may_not_choose_whose_series_it_reads(key: str, value: str) -> None:
    """Attack: the serverAddress is the allowed one, but a header or parameter of KEDA's
    request picks another tenant on a multi-tenant metrics server."""
    meta = {"serverAddress": PROM_URL, "query": "up", key: value}
    (v,) = _refused({"type": "prometheus", "metadata": meta})
    assert v.field == f"spec.variants[0].scaledObject.triggers[0].metadata.{key}"


@pytest.mark.parametrize(
    ("kind", "key", "value"),
    [
        ("nats-jetstream", "natsServerMonitoringEndpoint", "nats.kube-system:8222"),
        ("activemq", "managementEndpoint", "169.254.169.254:80"),
        ("external", "scalerAddress", "kubernetes.default.svc:443"),
        ("etcd", "endpoints", "10.0.0.1:2379"),
        ("cassandra", "clusterIPAddress", "10.0.0.2"),
    ],
)
def test_a_schemeless_address_under_a_key_not_listed_is_refused(
    kind: str, key: str, value: str
) -> None:
    """Attack: the admin allows a trigger type; its scaler names its server under a key the
    list missed, without `://`: KEDA connects there."""
    policy = ClusterPolicy.model_validate(
        {"scaledObjects": {"allow": True, "triggerTypes": [kind]}}
    )
    so = {"triggers": [{"type": kind, "metadata": {key: value}}], "maxReplicaCount": 3}
    (v,) = scaled_object_violations(spec_with(so), policy, (PROM_URL,))
    assert (v.field, v.rule) == (
        f"spec.variants[0].scaledObject.triggers[0].metadata.{key}",
        "prometheusUrls",
    )


def test_a_comma_list_of_addresses_is_checked_entry_by_entry() -> None:
    """Attack: the allowed URL first, another host after a comma: scalers that take several
    servers (addresses, hosts, bootstrapServers) split the value and use both."""
    meta = {"url": f"{PROM_URL}/,http://10.0.0.9:9200", "valueLocation": "v"}
    (v,) = _refused({"type": "metrics-api", "metadata": meta})
    assert v.field.endswith("metadata.url")
    ok = {"url": f"{PROM_URL}/a, {PROM_URL}/b", "valueLocation": "v"}
    assert _refused({"type": "metrics-api", "metadata": ok}) == []
