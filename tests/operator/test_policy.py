"""The cluster policy's rules, one attack each, on the pure checks (operator/policy/rules.py) and
the facts they are given (operator/policy/facts.py, with a FakeKube and a fake resolver)."""

from __future__ import annotations

from typing import Any

import pytest

from surge.api.loadtest import LoadTestSpec
from surge.api.policy import ClusterPolicy, Violation, parse_policy
from surge.loadgen.plan import check_plan_digest
from surge.operator.loadtest import builders
from surge.operator.policy.facts import gather, runs_in_flight
from surge.operator.policy.limits import resource_violations
from surge.operator.policy.rules import (
    Allowed,
    Facts,
    Service,
    loadtest_violations,
    service_name,
)
from tests.operator.fake_kube import FakeKube

NS = "team-a"
OWN = Allowed(images=("surge:1",), prometheus_urls=("http://prom.monitoring:9090",))
ALICE = Service(cluster_ips=("10.96.0.10",))


def _spec(**over: Any) -> LoadTestSpec:
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
    return LoadTestSpec.model_validate(raw)


def _check(
    spec: LoadTestSpec, policy: ClusterPolicy | None = None, facts: Facts | None = None
) -> list[Violation]:
    facts = facts or Facts(services={"alice": ALICE})
    return loadtest_violations(spec, NS, policy or ClusterPolicy(), OWN, facts)


def _rules(violations: list[Violation]) -> list[tuple[str, str]]:
    return [(v.field, v.rule) for v in violations]


def test_a_plain_spec_against_a_service_of_the_namespace_is_admitted() -> None:
    assert _check(_spec()) == []


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("alice", "alice"),
        ("alice.team-a", "alice"),
        ("alice.team-a.svc", "alice"),
        ("alice.team-a.svc.cluster.local", "alice"),
        ("alice.team-b.svc", None),
        ("alice.team-a.example.com", None),
    ],
)
def test_service_names_count_only_in_the_runs_namespace(host: str, expected: str | None) -> None:
    assert service_name(host, NS) == expected


def test_foreign_image_is_refused_and_the_operators_own_allowed() -> None:
    assert _check(_spec(image="surge:1")) == []
    (v,) = _check(_spec(image="evil/miner:latest"))
    assert (v.field, v.rule) == ("spec.image", "images")
    assert "spec.image" in str(v) and "policy.images" in str(v) and "admin" in str(v)


def test_targets_by_name_by_address_and_by_readiness_url() -> None:
    policy = parse_policy({"targets": {"hosts": ["*.staging.test"], "cidrs": ["10.1.0.0/16"]}})
    other_ns = _spec(**{"target.url": "http://alice.team-b.svc:8080"})
    assert _rules(_check(other_ns, policy)) == [("spec.target.url", "targets.hosts")]
    literal = _spec(**{"target.url": "http://169.254.169.254/latest"})
    assert _rules(_check(literal, policy)) == [("spec.target.url", "targets.cidrs")]
    inside = _spec(**{"target.url": "http://10.1.2.3:80"})
    assert _check(inside, policy) == []
    named = _spec(**{"target.url": "http://agent.staging.test"})
    ok = Facts(addresses={"agent.staging.test": ("10.1.0.7",)})
    assert _check(named, policy, ok) == []
    rebound = Facts(addresses={"agent.staging.test": ("10.1.0.7", "10.96.0.1")})
    (v,) = _check(named, policy, rebound)
    assert v.rule == "targets.cidrs" and "10.96.0.1" in v.message
    unresolved = Facts(addresses={"agent.staging.test": None})
    assert _rules(_check(named, policy, unresolved)) == [("spec.target.url", "targets.cidrs")]
    probe = _spec(**{"target.readiness.http": {"url": "http://169.254.169.254/"}})
    assert _rules(_check(probe, policy)) == [("spec.target.readiness.http.url", "targets.cidrs")]


def test_an_external_name_service_is_not_a_way_out() -> None:
    facts = Facts(services={"alice": Service(external_name="metadata.google.internal")})
    (v,) = _check(_spec(), facts=facts)
    assert v.rule == "targets.sameNamespaceServices" and "ExternalName" in v.message


def test_a_missing_service_is_not_a_target() -> None:
    (v,) = _check(_spec(), facts=Facts(services={"alice": None}))
    assert v.rule == "targets.hosts"


def test_another_namespaces_deployment_and_a_foreign_prometheus() -> None:
    spec = _spec(**{"target.deploymentRef": {"name": "alice", "namespace": "prod"}})
    assert _rules(_check(spec)) == [
        ("spec.target.deploymentRef.namespace", "targets.crossNamespace")
    ]
    assert _check(spec, parse_policy({"targets": {"crossNamespace": True}})) == []
    prom = _spec(**{"prometheus.url": "http://attacker.example:9090"})
    assert _rules(_check(prom)) == [("spec.prometheus.url", "prometheusUrls")]
    assert _check(_spec(**{"prometheus.url": "http://prom.monitoring:9090/"})) == []


def test_secrets_need_the_opt_in_label() -> None:
    header = {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}
    auth = {"bearerTokenSecretRef": {"name": "tok", "key": "t"}}
    spec = _spec(**{"target.headers": [header], "prometheus.auth": auth})
    facts = Facts(
        services={"alice": ALICE},
        secret_labels={"db": {}, "tok": {"surge.dev/usable": "true"}},
    )
    assert _rules(_check(spec, facts=facts)) == [
        ("spec.target.headers[0].valueFrom", "requireSecretLabel")
    ]
    facts.secret_labels["db"] = None
    (v,) = _check(spec, facts=facts)
    assert "does not exist" in v.message
    facts.secret_labels["db"] = {}
    assert _check(spec, parse_policy({"requireSecretLabel": False}), facts) == []


def test_placement_beyond_the_pool_is_refused() -> None:
    policy = parse_policy(
        {
            "placement": {
                "nodeSelector": {"surge.dev/pool": "loadgen"},
                "tolerations": [{"key": "surge.dev/loadgen", "operator": "Exists"}],
                "allowedNodeSelectors": {"topology.kubernetes.io/zone": ["*"]},
                "priorityClasses": ["low"],
            }
        }
    )
    ok = _spec(
        **{
            "load.placement": {
                "nodeSelector": {"surge.dev/pool": "loadgen", "topology.kubernetes.io/zone": "b"},
                "tolerations": [{"key": "surge.dev/loadgen", "operator": "Exists"}],
                "priorityClassName": "low",
            }
        }
    )
    assert _check(ok, policy) == []
    gpu = _spec(
        **{
            "load.placement": {
                "nodeSelector": {"surge.dev/pool": "gpu"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                "priorityClassName": "system-cluster-critical",
                "affinity": {"nodeAffinity": {}},
                "resources": {"limits": {"nvidia.com/gpu": 1, "cpu": "64"}},
            }
        }
    )
    assert _rules(_check(gpu, policy)) == [
        ("spec.load.placement.nodeSelector", "placement.allowedNodeSelectors"),
        ("spec.load.placement.tolerations[0]", "placement.allowedTolerations"),
        ("spec.load.placement.priorityClassName", "placement.priorityClasses"),
        ("spec.load.placement.affinity", "placement.allowAffinity"),
        ("spec.load.placement.resources", "caps.maxGpusPerPod"),
        ("spec.load.placement.resources.limits.cpu", "caps.workerCpu"),
    ]


def test_caps_the_spec_cannot_raise() -> None:
    big = _spec(
        **{
            "load.stages": [{"duration": "2h", "target": 5000}],
            "load.workers": 50,
            "load.maxInFlight": 50_000,
            "safety": {"maxRate": 1e6, "maxDuration": "100h"},
        }
    )
    assert _rules(_check(big)) == [
        ("spec.load.stages", "caps.maxRate"),
        ("spec.load.stages", "caps.maxDuration"),
        ("spec.load.workers", "caps.maxWorkers"),
        ("spec.load.maxInFlight", "caps.maxInFlight"),
    ]
    users = _spec(
        **{
            "load.model": "closed",
            "load.stages": [{"duration": "1m", "target": 2000}],
            "safety": {"maxUsers": 5000},
        }
    )
    assert _rules(_check(users, facts=Facts(services={"alice": ALICE}))) == [
        ("spec.load.stages", "caps.maxUsers")
    ]
    lifted = parse_policy(
        {
            "caps": {
                "maxRate": None,
                "maxUsers": None,
                "maxDuration": None,
                "maxWorkers": None,
                "maxInFlight": None,
            }
        }
    )
    assert _check(big, lifted) == []


def test_concurrent_runs_per_namespace() -> None:
    busy = Facts(services={"alice": ALICE}, runs_in_flight=5)
    assert _rules(_check(_spec(), facts=busy)) == [
        ("metadata.namespace", "caps.maxConcurrentRunsPerNamespace")
    ]
    busy.runs_in_flight = 4
    assert _check(_spec(), facts=busy) == []


def _lt(name: str, created: str, phase: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"u-{name}", "creationTimestamp": created},
        "spec": {},
        "status": {"phase": phase} if phase else {},
    }


def test_runs_in_flight_count_admitted_runs_and_earlier_unfinished_loadtests() -> None:
    me = _lt("m", "2026-11-30T10:00:01Z")
    others = [
        _lt("a", "2026-11-30T10:00:00Z", "Running"),
        _lt("b", "2026-11-30T10:00:00Z"),  # created earlier, not admitted yet: counts
        _lt("c", "2026-11-30T10:00:00Z", "Succeeded"),  # ended
        _lt("d", "2026-11-30T10:00:01Z", "Running"),  # same second, later name, admitted
        _lt("e", "2026-11-30T10:00:02Z"),  # later, not admitted: it will count us
        _lt("l", "2026-11-30T10:00:01Z"),  # same second, earlier name
        me,
    ]
    assert runs_in_flight(others, me) == 4
    # Two not yet admitted: the earlier one does not count the later one, the later one
    # counts the earlier, whichever reconcile runs first.
    assert runs_in_flight([others[5]], me) == 1
    assert runs_in_flight([me], others[5]) == 0


def test_gather_looks_up_services_secrets_and_resolves_listed_hosts() -> None:
    kube = FakeKube()
    kube.put(
        {
            "kind": "Service",
            "metadata": {"name": "alice", "namespace": NS},
            "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.10"]},
        }
    )
    kube.put({"kind": "Secret", "metadata": {"name": "db", "namespace": NS, "labels": {"x": "y"}}})
    header = {"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}
    spec = _spec(
        **{
            "target.headers": [header],
            "target.readiness.http": {"url": "http://agent.staging.test/healthz"},
        }
    )
    policy = parse_policy({"targets": {"hosts": ["*.staging.test"]}})
    body = {"metadata": {"name": "m", "namespace": NS, "uid": "u", "creationTimestamp": "t"}}
    asked: list[str] = []

    def resolver(host: str) -> tuple[str, ...] | None:
        asked.append(host)
        return ("10.1.0.7",)

    facts = gather(spec, body, policy, kube, resolver)  # type: ignore[arg-type]
    assert facts.services == {"alice": ALICE}
    assert facts.secret_labels == {"db": {"x": "y"}}
    assert asked == ["agent.staging.test"] and facts.addresses == {
        "agent.staging.test": ("10.1.0.7",)
    }


def test_the_worker_refuses_a_plan_changed_after_admission() -> None:
    check_plan_digest('{"a": 1}', None)  # no digest given: nothing to check
    import hashlib

    digest = hashlib.sha256(b'{"a": 1}').hexdigest()
    check_plan_digest('{"a": 1}', digest)
    with pytest.raises(ValueError, match="changed after admission"):
        check_plan_digest('{"a": 2}', digest)


def test_workers_get_the_pool_default_resources_and_the_plan_digest() -> None:
    policy = parse_policy(
        {
            "placement": {
                "nodeSelector": {"surge.dev/pool": "loadgen"},
                "tolerations": [{"key": "surge.dev/loadgen", "operator": "Exists"}],
            }
        }
    )
    owner = {"metadata": {"name": "lt", "namespace": NS, "uid": "u"}}
    job = builders.worker_job(
        owner, _spec(), "1", image="surge:1", command=("surge",), policy=policy, plan_sha256="ab"
    )
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["nodeSelector"] == {"surge.dev/pool": "loadgen"}
    assert pod["tolerations"] == [{"key": "surge.dev/loadgen", "operator": "Exists"}]
    assert c["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert {"name": "SURGE_PLAN_SHA256", "value": "ab"} in c["env"]
    # The spec's own resources replace the defaults, except a limit it leaves out: that is
    # the policy's (leaving limits out left a worker with no memory limit at all), raised to
    # the spec's own request so the pod stays valid, and the policy's request with it
    # (Kubernetes would make a missing request equal to the limit: 1Gi, not 256Mi).
    cases = (
        ({"cpu": "1"}, {"cpu": "1", "memory": "256Mi"}, {"memory": "1Gi"}),
        ({"memory": "2Gi"}, {"memory": "2Gi"}, {"memory": "2Gi"}),
    )
    for asked, requests, limits in cases:
        own = _spec(**{"load.placement": {"resources": {"requests": asked}}})
        job = builders.worker_job(owner, own, "1", image="i", command=("s",), policy=policy)
        assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == {
            "requests": requests,
            "limits": limits,
        }


def test_workers_take_no_resource_claims() -> None:
    """A claim (DRA) is a device outside every count and cap."""
    spec = _spec(**{"load.placement": {"resources": {"claims": [{"name": "gpu"}]}}})
    found = resource_violations(spec, ClusterPolicy())
    assert [(v.field, v.rule) for v in found] == [
        ("spec.load.placement.resources.claims", "caps.maxGpusPerPod")
    ]


def test_workers_get_the_networks_they_may_find_the_target_at() -> None:
    from surge.operator.policy.rules import worker_networks

    policy = parse_policy({"targets": {"cidrs": ["127.0.0.0/8"]}})
    facts = Facts(services={"alice": ALICE})
    assert worker_networks(_spec(), NS, policy, facts) == ["10.96.0.10/32", "127.0.0.0/8"]
    headless = Facts(services={"alice": Service()})
    assert worker_networks(_spec(), NS, policy, headless) == []  # pod IPs unknown: no check
    literal = _spec(**{"target.url": "http://127.0.0.2:80"})
    assert worker_networks(literal, NS, policy, Facts()) == ["127.0.0.0/8"]


def test_the_worker_refuses_a_target_that_resolves_outside_the_networks() -> None:
    from surge.loadgen.plan import build_plan, outside_networks
    from surge.loadgen.worker import check_target_addresses

    assert outside_networks(["127.0.0.1", "10.0.0.1"], ["127.0.0.0/8"]) == ["10.0.0.1"]
    assert outside_networks(["10.0.0.1"], []) == []
    spec = _spec(**{"target.url": "http://localhost:8080"})
    inside = build_plan(spec, name="lt", namespace=NS, run_id="1", allowed_networks=["127.0.0.0/8"])
    check_target_addresses(inside)  # localhost resolves to loopback
    elsewhere = build_plan(
        spec, name="lt", namespace=NS, run_id="1", allowed_networks=["10.1.0.0/16"]
    )
    with pytest.raises(ValueError, match="outside the cluster policy's networks"):
        check_target_addresses(elsewhere)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"limits": {"cpu": "lots"}}, "limits.cpu: 'lots' is not a quantity"),
        ({"limits": {"nvidia.com/gpu": "Infinity"}}, "limits.nvidia.com/gpu: 'Infinity' is not"),
        ({"requests": {"cpu": "NaN"}}, "requests.cpu: 'NaN' is not a quantity"),
        ({"requests": {"cpu": "-1"}}, "requests.cpu: '-1' is not a quantity"),
        ({"requests": "1"}, "requests: a map of resource name to quantity"),
        ({"limit": {"cpu": "1"}}, "'limit': resources have requests and limits only"),
    ],
)
def test_resources_that_are_not_quantities_are_named_not_a_traceback(
    resources: dict[str, Any], message: str
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        _spec(**{"load.placement": {"resources": resources}})


def test_every_extended_resource_counts_as_an_accelerator() -> None:
    from surge.operator.policy.limits import gpu_count

    assert gpu_count({"limits": {"nvidia.com/mig-1g.10gb": 7, "cpu": "2"}}) == 7
    assert gpu_count({"limits": {"google.com/tpu": 8}, "requests": {"habana.ai/gaudi": 2}}) == 8
    assert gpu_count({"limits": {"cpu": "2", "memory": "1Gi", "hugepages-2Mi": "1Gi"}}) == 0


def test_custom_promql_needs_the_admins_leave() -> None:
    spec = _spec(**{"prometheus.queries": {"cpu": 'sum(rate(x{namespace="other"}[1m]))'}})
    (v,) = _check(spec)
    assert (v.field, v.rule) == ("spec.prometheus.queries", "allowCustomQueries")
    assert _check(spec, parse_policy({"allowCustomQueries": True})) == []


@pytest.mark.parametrize(
    "host",
    [
        "alice.team-a.svc.169.254.169.254.nip.io",
        "alice.team-a.svc.evil.example",
        "alice.team-a.svc.cluster.local.evil.example",
        "alice.team-a.svc.cluster",
    ],
)
def test_a_name_that_only_starts_like_a_service_is_not_one(host: str) -> None:
    assert service_name(host, NS) is None
    (v,) = _check(_spec(**{"target.url": f"http://{host}/"}))
    assert v.rule == "targets.hosts"
    assert service_name("alice.team-a.svc.cluster.local.", NS) == "alice"


def test_resumed_runs_count_and_the_pool_keys_hold() -> None:
    me = _lt("m", "2026-11-30T10:00:05Z")
    held = _lt("h", "2026-11-30T10:00:09Z", "Pending")
    held["spec"]["suspend"] = True  # admitted while suspended: it counts
    waiting = _lt("w", "2026-11-30T10:00:01Z")
    waiting["spec"]["suspend"] = True  # not admitted, suspended: it waits, it does not count
    assert runs_in_flight([held, waiting, me], me) == 1
    policy = parse_policy(
        {
            "placement": {
                "nodeSelector": {"surge.dev/pool": "loadgen"},
                "allowedNodeSelectors": {"topology.kubernetes.io/zone": ["*"]},
            }
        }
    )
    other_pool = _spec(**{"load.placement": {"nodeSelector": {"surge.dev/pool": "gpu"}}})
    assert _rules(_check(other_pool, policy)) == [
        ("spec.load.placement.nodeSelector", "placement.allowedNodeSelectors")
    ]
    zone = _spec(**{"load.placement": {"nodeSelector": {"topology.kubernetes.io/zone": "a"}}})
    assert _check(zone, policy) == []
    owner = {"metadata": {"name": "lt", "namespace": NS, "uid": "u"}}
    job = builders.worker_job(owner, zone, "1", image="i", command=("s",), policy=policy)
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {
        "topology.kubernetes.io/zone": "a",
        "surge.dev/pool": "loadgen",  # the pool still holds
    }


@pytest.mark.parametrize(
    ("url", "pattern", "same"),
    [
        ("https://prom.example.com/", "https://*.example.com", True),
        ("https://evil.com/x.example.com", "https://*.example.com", False),
        ("https://a.example.com", "https://*.example.com", True),
        ("http://127.0.0.1:9090/", "http://127.0.0.1:*", True),
        ("http://127.0.0.1:9090@evil.com/", "http://127.0.0.1:*", False),
        ("http://prom:9090/api", "http://prom:9090", True),
        ("http://prom:9090.evil.com/", "http://prom:9090", False),
        ("https://prom:9090/", "http://prom:9090", False),
    ],
)
def test_prometheus_urls_match_by_scheme_host_port_and_path(
    url: str, pattern: str, same: bool
) -> None:
    from surge.operator.policy.rules import _same_url

    assert _same_url(url, pattern) is same


def test_one_target_whatever_its_spelling() -> None:
    from surge.operator.loadtest.admission import target_key

    spellings = ["http://alice", "http://ALICE:80/", "http://u@alice", f"http://alice.{NS}.svc"]
    keys = {target_key({"target": {"url": u}}, NS) for u in spellings}
    assert keys == {f"service/{NS}/alice:80"}


def test_a_default_worker_request_above_its_limit_is_refused_by_name() -> None:
    """The API server would refuse every worker pod: the policy is refused instead."""
    with pytest.raises(ValueError, match=r"requests\.memory \(2Gi\) is above limits\.memory"):
        parse_policy(
            {"workerResources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}
        )
