"""What the policy checks need from the world, looked up once per admission (the shell of
operator/policy/rules.py): Services of the namespace, resolved addresses, Secret labels, and the
namespace's runs in flight."""

from __future__ import annotations

import concurrent.futures
import fnmatch
import socket
from collections.abc import Callable
from typing import Any

from surge import readiness
from surge.api.loadtest import LoadTestSpec
from surge.api.policy import ClusterPolicy
from surge.api.status import TERMINAL_PHASES
from surge.api.target import HttpCheck
from surge.api.urls import UrlError, parse_url
from surge.operator.kube.client import Kube
from surge.operator.policy.rules import (
    CLUSTER_DOMAIN,
    Facts,
    Service,
    check_url,
    hosts,
    secret_refs,
    service_name,
    url_host,
)

Resolver = Callable[[str], tuple[str, ...] | None]

RESOLVE_TIMEOUT_S = 5.0
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="surge-dns")


def resolve(host: str) -> tuple[str, ...] | None:
    """Every address `host` resolves to from here (None: it does not, within 5 s)."""

    def lookup() -> tuple[str, ...]:
        return tuple(sorted({str(a[4][0]) for a in socket.getaddrinfo(host, None)}))

    try:
        return _pool.submit(lookup).result(timeout=RESOLVE_TIMEOUT_S)
    except (OSError, concurrent.futures.TimeoutError):
        return None


def _service(obj: dict[str, Any] | None) -> Service | None:
    if obj is None:
        return None
    spec = obj.get("spec") or {}
    ips = tuple(ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip)
    external = spec.get("externalName") if spec.get("type") == "ExternalName" else None
    selector = spec.get("selector")
    return Service(
        cluster_ips=tuple(ip for ip in ips if ip != "None"),
        external_name=external,
        selector={str(k): str(v) for k, v in selector.items()} if selector else None,
    )


def pod_labels(obj: dict[str, Any] | None) -> dict[str, str] | None:
    """A Deployment's pod template labels (None: no Deployment)."""
    if obj is None:
        return None
    template = (obj.get("spec") or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def runs_in_flight(loadtests: list[dict[str, Any]], me: dict[str, Any]) -> int:
    """Runs of the namespace that count against this one: LoadTests not ended that were
    admitted already (suspended or not), or created before this one and not suspended (name
    breaks ties within a second). Creation order settles two LoadTests applied at once whichever
    reconcile runs first, so they cannot both take the last slot; an admitted run counts
    whatever its age."""
    mine = (me["metadata"].get("creationTimestamp") or "", me["metadata"]["name"])
    count = 0
    for lt in loadtests:
        meta = lt.get("metadata") or {}
        if meta.get("uid") == me["metadata"].get("uid") or meta.get("name") == mine[1]:
            continue
        phase = (lt.get("status") or {}).get("phase")
        if phase in TERMINAL_PHASES:
            continue
        # A suspended run not admitted yet waits; one admitted counts (resuming it would
        # otherwise pass the cap: admit many while suspended, then resume them all).
        if phase is None and (lt.get("spec") or {}).get("suspend"):
            continue
        earlier = (meta.get("creationTimestamp") or "", meta.get("name") or "") < mine
        if phase is not None or earlier:
            count += 1
    return count


def _look_up(
    host: str, namespace: str, policy: ClusterPolicy, kube: Kube, resolver: Resolver, facts: Facts
) -> None:
    """What check_url needs about one host: its Service of the namespace, else (an allowed
    host) its addresses."""
    svc = service_name(host, namespace) if policy.targets.same_namespace_services else None
    if svc and svc not in facts.services:
        facts.services[svc] = _service(kube.service(namespace, svc))
    if facts.services.get(svc or "") is None and any(
        fnmatch.fnmatch(host, g.lower()) for g in policy.targets.hosts
    ):
        facts.addresses[host] = resolver(host)


def probe_address(
    url: str, namespace: str, policy: ClusterPolicy, kube: Kube, resolver: Resolver = resolve
) -> tuple[str | None, str]:
    """(the address to probe `url` at, "") re-checked now by the target rules, or (None, why).
    The operator connects to that address, never to the name again: a name that passed at
    admission and resolves elsewhere by now (DNS rebinding) is refused, and a bare Service
    name is the run's namespace's (its ClusterIP), not the operator's."""
    try:
        plain = parse_url(url, allow_userinfo=True).text(with_userinfo=False)
    except UrlError as err:
        return None, str(err)
    facts = Facts()
    host = url_host(plain)
    _look_up(host, namespace, policy, kube, resolver, facts)
    refused = check_url("spec.target.readiness", plain, namespace, policy, facts)
    if refused:
        return None, f"readiness probe refused: {refused[0]}"
    svc = service_name(host, namespace) if policy.targets.same_namespace_services else None
    found = facts.services.get(svc) if svc else None
    addresses: tuple[str, ...] | None
    if found is not None:
        # A headless Service: its pods, by the name qualified with the run's namespace.
        qualified = f"{svc}.{namespace}.svc.{CLUSTER_DOMAIN}"
        addresses = found.cluster_ips or resolver(qualified)
    else:
        addresses = (host,) if facts.addresses.get(host) is None else facts.addresses[host]
    if not addresses:
        return None, f"readiness probe: {host} does not resolve from the operator"
    return addresses[0], ""


def probe_checked(
    url: str, check: HttpCheck | None, namespace: str, policy: ClusterPolicy, kube: Kube
) -> tuple[bool, str]:
    """The operator's readiness probe: re-checked by the target rules, sent to the address
    checked (probe_address), no redirect followed."""
    address, why = probe_address(url, namespace, policy, kube)
    if address is None:
        return False, why
    return readiness.probe(url, check.expect_status if check else 200, connect_to=address)


def gather(
    spec: LoadTestSpec,
    body: dict[str, Any],
    policy: ClusterPolicy,
    kube: Kube,
    resolver: Resolver = resolve,
    *,
    count_runs: bool = True,
) -> Facts:
    namespace = body["metadata"]["namespace"]
    facts = Facts()
    for host in sorted(hosts(spec)):
        _look_up(host, namespace, policy, kube, resolver, facts)
    ref = spec.target.deployment_ref
    target_svc = service_name(url_host(spec.target.url), namespace)
    if ref is not None and target_svc and (ref.namespace or namespace) == namespace:
        if target_svc not in facts.services:
            facts.services[target_svc] = _service(kube.service(namespace, target_svc))
        if facts.services[target_svc] is not None:
            facts.pod_labels[(namespace, ref.name)] = pod_labels(
                kube.deployment(namespace, ref.name)
            )
    for _, name in secret_refs(spec):
        if name not in facts.secret_labels:
            facts.secret_labels[name] = kube.secret_labels(namespace, name)
    if count_runs and policy.caps.max_concurrent_runs_per_namespace is not None:
        facts.runs_in_flight = runs_in_flight(kube.loadtests(namespace), body)
    return facts
