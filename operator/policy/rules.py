"""The cluster policy applied to a LoadTest spec: every rule it breaks, with the field. Pure.

What the checks need from the world (the Services of the namespace, the addresses a host
resolves to, Secret labels, the runs in flight) is looked up by operator/policy/facts.py
into `Facts` first, so every decision here is a function of its inputs. docs/security.md
lists the rules and the attacks they stop.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from surge.api.loadtest import LoadTestSpec
from surge.api.policy import USABLE_SECRET_LABEL, ClusterPolicy, Violation
from surge.api.urls import UrlError, parse_url
from surge.operator.policy.headers import header_violations
from surge.operator.policy.limits import caps_violations, placement_violations, resource_violations


@dataclass(frozen=True)
class Service:
    cluster_ips: tuple[str, ...] = ()
    external_name: str | None = None
    selector: dict[str, str] | None = None
    """The pods it sends to (None: no selector, its endpoints are set by hand)."""


@dataclass
class Facts:
    """What the shell looked up. A missing key means "not looked up" and is refused."""

    services: dict[str, Service | None] = field(default_factory=dict)
    """Service name in the run's namespace -> the Service (None: there is none)."""
    addresses: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    """Host name -> the addresses it resolves to from the operator (None: it does not)."""
    secret_labels: dict[str, dict[str, str] | None] = field(default_factory=dict)
    """Secret name in the run's namespace -> its labels (None: there is none)."""
    runs_in_flight: int = 0
    """Runs of the namespace admitted before this one and not ended."""
    pod_labels: dict[tuple[str, str], dict[str, str] | None] = field(default_factory=dict)
    """(namespace, Deployment) -> its pod template's labels (None: there is none)."""


@dataclass(frozen=True)
class Allowed:
    """What the operator itself adds to the policy: its own image and Prometheus."""

    images: tuple[str, ...]
    prometheus_urls: tuple[str, ...]


CLUSTER_DOMAIN = "cluster.local"


def service_name(host: str, namespace: str) -> str | None:
    """The Service a host names inside `namespace`, else None. Only the forms cluster DNS
    gives a Service: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local` (a trailing
    dot allowed). Anything longer (`svc.ns.svc.evil.example`) is a name like any other."""
    parts = host.lower().removesuffix(".").split(".")
    forms: tuple[list[str], ...] = (
        [],
        [namespace],
        [namespace, "svc"],
        [namespace, "svc", *CLUSTER_DOMAIN.split(".")],
    )
    if parts[0] and parts[1:] in forms and ":" not in host:  # not an IPv6 address
        return parts[0]
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def urls(spec: LoadTestSpec) -> list[tuple[str, str]]:
    """(field, URL) of every URL Surge or its workers contact for this spec, but Prometheus."""
    out = [("spec.target.url", spec.target.url)]
    check = spec.target.readiness.http
    if check is not None and check.url is not None:
        out.append(("spec.target.readiness.http.url", check.url))
    return out


def url_host(url: str) -> str:
    """The host a URL connects to, by the one parser (surge.api.urls); "" when it has none
    every client agrees on (the spec's models refuse such a URL before this is asked)."""
    try:
        return parse_url(url, allow_userinfo=True).host
    except UrlError:
        return ""


def hosts(spec: LoadTestSpec) -> set[str]:
    return {url_host(u) for _, u in urls(spec)}


def secret_refs(spec: LoadTestSpec) -> list[tuple[str, str]]:
    """(field, Secret name) of every Secret the spec names."""
    out = []
    for i, h in enumerate(spec.target.headers):
        if h.value_from is not None:
            out.append((f"spec.target.headers[{i}].valueFrom", h.value_from.secret_key_ref.name))
    auth = spec.prometheus.auth
    if auth is not None:
        for name, ref in (
            ("bearerTokenSecretRef", auth.bearer_token_secret_ref),
            ("basicAuthSecretRef", auth.basic_auth_secret_ref),
        ):
            if ref is not None:
                out.append((f"spec.prometheus.auth.{name}", ref.name))
    return out


def _in_cidrs(address: str, cidrs: Iterable[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs)


def check_url(
    where: str, url: str, namespace: str, policy: ClusterPolicy, facts: Facts
) -> list[Violation]:
    """A URL is allowed when its host is a Service of the namespace, or a literal address in
    targets.cidrs, or a name in targets.hosts whose every resolved address is in cidrs."""
    t = policy.targets
    try:
        host = parse_url(url, allow_userinfo=where == "spec.target.url").host
    except UrlError as err:
        return [Violation(where, "targets", str(err))]
    if _is_ip(host):
        if _in_cidrs(host, t.cidrs):
            return []
        return [Violation(where, "targets.cidrs", f"address {host} is not in an allowed range")]
    svc = service_name(host, namespace) if t.same_namespace_services else None
    found = facts.services.get(svc) if svc else None
    if found is not None:
        if found.external_name:
            return [
                Violation(
                    where,
                    "targets.sameNamespaceServices",
                    f"Service {svc} is of type ExternalName (it points at "
                    f"{found.external_name}, outside the namespace)",
                )
            ]
        return []
    if not any(fnmatch.fnmatch(host, g.lower()) for g in t.hosts):
        return [
            Violation(
                where,
                "targets.hosts",
                f"host {host!r} is neither a Service of namespace {namespace} nor an allowed host",
            )
        ]
    addresses = facts.addresses.get(host)
    if not addresses:
        return [
            Violation(where, "targets.cidrs", f"host {host!r} does not resolve from the operator")
        ]
    outside = sorted(a for a in addresses if not _in_cidrs(a, t.cidrs))
    if outside:
        return [
            Violation(
                where,
                "targets.cidrs",
                f"host {host!r} resolves to {', '.join(outside)}, outside the allowed ranges",
            )
        ]
    return []


def secret_violations(
    refs: list[tuple[str, str]],
    labels_of: dict[str, dict[str, str] | None],
    policy: ClusterPolicy,
) -> list[Violation]:
    """(field, Secret name) refs whose Secret is missing or lacks the opt-in label."""
    out = []
    for where, name in refs:
        labels = labels_of.get(name)
        if labels is None:
            out.append(Violation(where, "requireSecretLabel", f"Secret {name} does not exist"))
        elif policy.require_secret_label and labels.get(USABLE_SECRET_LABEL) != "true":
            out.append(
                Violation(
                    where,
                    "requireSecretLabel",
                    f'Secret {name} lacks the label {USABLE_SECRET_LABEL}: "true"',
                )
            )
    return out


def _pattern_parts(pattern: str) -> tuple[str, str, str, str]:
    """(scheme, host glob, port or `*`, path) of an admin's URL pattern."""
    scheme, _, rest = pattern.strip().partition("://")
    netloc, slash, path = rest.partition("/")
    netloc = netloc.rpartition("@")[2].lower()
    host, colon, port = netloc.rpartition(":") if not netloc.endswith("]") else (netloc, "", "")
    if not colon or not (port.isdigit() or port == "*"):
        host, port = netloc, {"http": "80", "https": "443"}.get(scheme.lower(), "")
    return scheme.lower(), host.strip("[]"), port, (slash + path).rstrip("/")


def _same_url(url: str, pattern: str) -> bool:
    """`url` is the pattern's: the same scheme, a host matching its host glob, the same port
    (or `*`), a path under its path. The URL is read by the one parser, which refuses what a
    client could read another way (`\\@`, user info, `..`); globs never span the host
    (fnmatch's * matches `/`)."""
    try:
        got = parse_url(url)
    except UrlError:
        return False
    p_scheme, p_host, p_port, p_path = _pattern_parts(pattern)
    path = got.path.rstrip("/")
    return (
        got.scheme == p_scheme
        and fnmatch.fnmatchcase(got.host, p_host)
        and (p_port == "*" or str(got.port) == p_port)
        and (path == p_path or path.startswith(p_path + "/"))
    )


def backing_violations(spec: LoadTestSpec, namespace: str, facts: Facts) -> list[Violation]:
    """A deploymentRef must back the target Service: the run holds the lock of the Service it
    loads (target_key) and watches the Deployment, so they must be one. Checked when the URL
    names a Service of the namespace with a selector and the Deployment is there (a missing
    one is waited for and fails TargetNotReady). A Service without a selector, a target by
    address or by an allowed host cannot be checked; the lock is on what is loaded either way
    (docs/security.md)."""
    ref = spec.target.deployment_ref
    svc = service_name(url_host(spec.target.url), namespace)
    found = facts.services.get(svc) if svc else None
    if ref is None or found is None or (ref.namespace or namespace) != namespace:
        return []
    labels = facts.pod_labels.get((namespace, ref.name))
    where = "spec.target.deploymentRef"
    if labels is None or not found.selector:
        return []  # no Deployment yet, or endpoints set by hand: nothing to compare
    missing = {k: v for k, v in found.selector.items() if labels.get(k) != v}
    if missing:
        sel = ", ".join(f"{k}={v}" for k, v in sorted(missing.items()))
        return [
            Violation(
                where,
                "targets",
                f"Deployment {ref.name}'s pods lack Service {svc}'s selector ({sel}): the run "
                "would load one and watch the other; name the Deployment behind the URL",
            )
        ]
    return []


def worker_networks(
    spec: LoadTestSpec, namespace: str, policy: ClusterPolicy, facts: Facts
) -> list[str]:
    """The address ranges the workers may find the target at: the policy's CIDRs and the
    ClusterIPs of the namespace's Services it names. Empty (no check by the workers) when
    the target is a headless Service, whose pod addresses are not known in advance."""
    host = url_host(spec.target.url)
    svc = service_name(host, namespace) if policy.targets.same_namespace_services else None
    found = facts.services.get(svc) if svc else None
    if found is not None and not found.cluster_ips:
        return []
    ips = [f"{ip}/{32 if ':' not in ip else 128}" for ip in (found.cluster_ips if found else ())]
    return [*ips, *policy.targets.cidrs]


def loadtest_violations(
    spec: LoadTestSpec, namespace: str, policy: ClusterPolicy, allowed: Allowed, facts: Facts
) -> list[Violation]:
    """Every rule of the policy the spec breaks, in field order (empty: admitted)."""
    out: list[Violation] = []
    if spec.image is not None and spec.image not in allowed.images:
        out.append(Violation("spec.image", "images", f"image {spec.image!r} is not allowed"))
    for where, url in urls(spec):
        out += check_url(where, url, namespace, policy, facts)
    ref = spec.target.deployment_ref
    if ref and ref.namespace not in (None, namespace) and not policy.targets.cross_namespace:
        out.append(
            Violation(
                "spec.target.deploymentRef.namespace",
                "targets.crossNamespace",
                f"a Deployment of namespace {ref.namespace} is not this namespace's",
            )
        )
    prom = spec.prometheus.url
    if prom is not None and not any(_same_url(prom, p) for p in allowed.prometheus_urls):
        out.append(
            Violation("spec.prometheus.url", "prometheusUrls", f"{prom!r} is not an allowed URL")
        )
    out += header_violations(spec)
    out += backing_violations(spec, namespace, facts)
    if spec.prometheus.queries and not policy.allow_custom_queries:
        names = ", ".join(sorted(spec.prometheus.queries))
        out.append(
            Violation(
                "spec.prometheus.queries",
                "allowCustomQueries",
                f"custom PromQL ({names}) is not allowed; the operator's queries stay",
            )
        )
    trace = spec.load.trace
    if trace is not None and trace.prometheus is not None and not policy.allow_custom_queries:
        out.append(
            Violation(
                "spec.load.trace.prometheus.query",
                "allowCustomQueries",
                "a trace's PromQL can read any series of the Prometheus into the plan; "
                "not allowed here: give the curve as points or a ConfigMap",
            )
        )
    out += secret_violations(secret_refs(spec), facts.secret_labels, policy)
    out += placement_violations(spec, policy)
    out += resource_violations(spec, policy)
    out += caps_violations(spec, policy, facts.runs_in_flight)
    return out
