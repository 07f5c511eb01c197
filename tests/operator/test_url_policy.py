"""Security round 2, part A (#25): one URL one parser at the policy, routing headers, the
readiness probe connecting to what was checked (DNS rebinding, bare names), and the run lock
keyed on what is loaded."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from surge.api.loadtest import LoadTestSpec
from surge.api.policy import ClusterPolicy, parse_policy
from surge.operator.kube import target_lease
from surge.operator.loadtest.admission import target_key
from surge.operator.policy.facts import gather, probe_address
from surge.operator.policy.rules import Allowed, Facts, Service, loadtest_violations
from surge.operator.policy.target import cluster_service
from tests.operator.fake_kube import FakeKube

NS = "team-a"
OWN = Allowed(images=("surge:1",), prometheus_urls=("http://prom.monitoring:9090/tenants/a",))
ALICE = Service(cluster_ips=("10.96.0.10",), selector={"app": "alice"})


def _raw(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "target": {"url": "http://alice:8080"},
        "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
    }
    for path, value in over.items():
        node = raw
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return raw


def _check(raw: dict[str, Any], facts: Facts | None = None, policy: ClusterPolicy | None = None):  # type: ignore[no-untyped-def]
    spec = LoadTestSpec.model_validate(raw)
    facts = facts or Facts(services={"alice": ALICE})
    return loadtest_violations(spec, NS, policy or ClusterPolicy(), OWN, facts)


@pytest.mark.parametrize(
    "url",
    [
        "http://attacker.example\\@prom.monitoring:9090/tenants/a",
        "http://attacker.example@prom.monitoring:9090/tenants/a",
        "http://prom.monitoring:9090/tenants/a/../b",
        "http://prom.monitoring:9090/tenants/a/%2e%2e/b",
        "http://prom.monitoring%2e:9090/tenants/a",
    ],
)
def test_a_prometheus_url_clients_read_differently_never_reaches_the_operator(url: str) -> None:
    with pytest.raises(ValidationError) as err:
        LoadTestSpec.model_validate(_raw(**{"prometheus.url": url}))
    assert "prometheus.url" in str(err.value)


def test_prometheus_urls_match_the_pattern_on_the_parsed_parts() -> None:
    from surge.operator.policy.rules import _same_url

    pattern = "http://prom.monitoring:9090/tenants/a"
    assert _same_url("http://PROM.monitoring:9090/tenants/a/api", pattern)
    assert not _same_url("http://prom.monitoring:9090/tenants/ab", pattern)
    assert not _same_url("http://prom.monitoring:9090/tenants/a/../b", pattern)
    assert not _same_url("http://x\\@prom.monitoring:9090/tenants/a", pattern)
    assert _check(_raw(**{"prometheus.url": "http://prom.monitoring:9090/tenants/a"})) == []


@pytest.mark.parametrize("name", ["Host", "host", "X-Forwarded-Host", "FORWARDED", ":authority"])
def test_headers_that_route_are_refused_wherever_they_are_given(name: str) -> None:
    value = "billing.team-b.svc.cluster.local"
    (v,) = _check(_raw(**{"scenario.headers": {name: value}}))
    assert v.field == f"spec.scenario.headers.{name}" and name in v.message
    if not name.startswith(":"):  # a target header's name is an HTTP token (the model)
        (v,) = _check(_raw(**{"target.headers": [{"name": name, "value": value}]}))
        assert v.field == "spec.target.headers[0]" and "routes" in v.message


def test_other_headers_pass_and_smuggled_lines_do_not() -> None:
    assert _check(_raw(**{"scenario.headers": {"X-Tenant": "a", "Accept": "*/*"}})) == []
    (v,) = _check(_raw(**{"scenario.headers": {"X-A": "1\r\nHost: evil"}}))
    assert "CR, LF" in v.message
    (v,) = _check(_raw(**{"scenario.headers": {"X A": "1"}}))
    assert "token" in v.message


def test_a_deployment_ref_must_back_the_target_service() -> None:
    ref = {"target.deploymentRef": {"name": "alice"}}
    backs = Facts(services={"alice": ALICE}, pod_labels={(NS, "alice"): {"app": "alice"}})
    assert _check(_raw(**ref), backs) == []
    other = Facts(services={"alice": ALICE}, pod_labels={(NS, "alice"): {"app": "bob"}})
    (v,) = _check(_raw(**ref), other)
    assert v.field == "spec.target.deploymentRef" and "app=alice" in v.message
    # Not there yet (waited for, TargetNotReady), or a Service without a selector: no check.
    assert (
        _check(_raw(**ref), Facts(services={"alice": ALICE}, pod_labels={(NS, "alice"): None}))
        == []
    )
    assert _check(_raw(**ref), Facts(services={"alice": Service(("10.96.0.10",))})) == []


def test_gather_reads_the_deployment_behind_the_target_service() -> None:
    kube = FakeKube()
    kube.put({"kind": "Service", "metadata": {"name": "alice", "namespace": NS},
              "spec": {"clusterIPs": ["10.96.0.10"], "selector": {"app": "alice"}}})  # fmt: skip
    kube.put({"kind": "Deployment", "metadata": {"name": "made-up", "namespace": NS},
              "spec": {"template": {"metadata": {"labels": {"app": "bob"}}}}})  # fmt: skip
    spec = LoadTestSpec.model_validate(_raw(**{"target.deploymentRef": {"name": "made-up"}}))
    body = {"metadata": {"name": "m", "namespace": NS, "uid": "u", "creationTimestamp": "t"}}
    facts = gather(spec, body, ClusterPolicy(), kube)  # type: ignore[arg-type]
    assert facts.pod_labels == {(NS, "made-up"): {"app": "bob"}}
    (v,) = loadtest_violations(spec, NS, ClusterPolicy(), OWN, facts)
    assert v.field == "spec.target.deploymentRef"


def test_one_lock_per_service_whatever_the_deployment_ref_or_the_spelling() -> None:
    spellings = [
        "http://alice:8080",
        "http://ALICE:8080/x",
        "http://u:p@alice:8080",
        f"http://alice.{NS}:8080",
        f"http://alice.{NS}.svc.cluster.local:8080",
    ]
    keys = {
        target_key({"target": {"url": u, "deploymentRef": {"name": f"made-up-{i}"}}}, NS)
        for i, u in enumerate(spellings)
    }
    assert keys == {f"service/{NS}/alice:8080"}
    assert target_lease.lease_namespace(f"service/{NS}/alice:8080", NS) == NS
    other = target_key({"target": {"url": "http://alice.team-b.svc:80"}}, NS)
    assert other == "service/team-b/alice:80"
    assert target_key({"target": {"url": "https://[::1]/"}}, NS) == "url/[::1]:443"
    assert target_key({"target": {"url": "http://alice.team-b:80"}}, NS) == "url/alice.team-b:80"
    assert cluster_service("alice.team-b.svc.evil.example", NS) is None


class _Resolver:
    def __init__(self, answers: dict[str, tuple[str, ...] | None]) -> None:
        self.answers, self.asked = answers, list[str]()

    def __call__(self, host: str) -> tuple[str, ...] | None:
        self.asked.append(host)
        return self.answers.get(host)


def _kube_with_services() -> FakeKube:
    kube = FakeKube()
    kube.put({"kind": "Service", "metadata": {"name": "prometheus", "namespace": NS},
              "spec": {"clusterIPs": ["10.96.0.42"]}})  # fmt: skip
    kube.put({"kind": "Service", "metadata": {"name": "pods", "namespace": NS},
              "spec": {"clusterIP": "None"}})  # fmt: skip
    return kube


def test_a_bare_service_name_is_the_runs_namespaces_service() -> None:
    resolver = _Resolver({})
    got = probe_address("http://prometheus:9090/-/ready", NS, ClusterPolicy(),
                        _kube_with_services(), resolver)  # type: ignore[arg-type]  # fmt: skip
    assert got == ("10.96.0.42", "") and resolver.asked == []  # its ClusterIP, no DNS
    # A headless Service: its pods by the name qualified with the run's namespace.
    resolver = _Resolver({f"pods.{NS}.svc.cluster.local": ("10.244.0.7",)})
    got = probe_address("http://pods:8080/", NS, ClusterPolicy(),
                        _kube_with_services(), resolver)  # type: ignore[arg-type]  # fmt: skip
    assert got == ("10.244.0.7", "") and resolver.asked == [f"pods.{NS}.svc.cluster.local"]
    # A name that is no Service of the namespace is refused, not resolved by the operator.
    address, why = probe_address("http://kube-dns:53/", NS, ClusterPolicy(),
                                 _kube_with_services(), _Resolver({}))  # type: ignore[arg-type]  # fmt: skip
    assert address is None and "kube-dns" in why


def test_a_name_that_rebinds_after_admission_is_not_probed() -> None:
    policy = parse_policy({"targets": {"hosts": ["*.staging.test"], "cidrs": ["10.1.0.0/16"]}})
    kube = FakeKube()
    url = "http://agent.staging.test:8080/healthz"
    at_admission = _Resolver({"agent.staging.test": ("10.1.0.7",)})
    assert probe_address(url, NS, policy, kube, at_admission) == ("10.1.0.7", "")  # type: ignore[arg-type]
    rebound = _Resolver({"agent.staging.test": ("10.1.0.7", "169.254.169.254")})
    address, why = probe_address(url, NS, policy, kube, rebound)  # type: ignore[arg-type]
    assert address is None and "169.254.169.254" in why
