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
from urllib.parse import urlsplit

from surge.api.loadtest import LoadTestSpec
from surge.api.policy import USABLE_SECRET_LABEL, ClusterPolicy, Violation
from surge.operator.policy.limits import caps_violations, placement_violations, resource_violations


@dataclass(frozen=True)
class Service:
    cluster_ips: tuple[str, ...] = ()
    external_name: str | None = None


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
    if parts[0] and parts[1:] in forms:
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


def hosts(spec: LoadTestSpec) -> set[str]:
    return {urlsplit(u).hostname or "" for _, u in urls(spec)}


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
    host = (urlsplit(url).hostname or "").lower()
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


def _url_parts(url: str) -> tuple[str, str, str, str]:
    """(scheme, host, port, path) of a URL or URL pattern; the port may be `*`."""
    parts = urlsplit(url.strip())
    netloc = parts.netloc.rpartition("@")[2].lower()
    host, colon, port = netloc.rpartition(":") if not netloc.endswith("]") else (netloc, "", "")
    if not colon or not (port.isdigit() or port == "*"):
        host, port = netloc, {"http": "80", "https": "443"}.get(parts.scheme, "")
    return parts.scheme.lower(), host.strip("[]"), port, parts.path.rstrip("/")


def _same_url(url: str, pattern: str) -> bool:
    """`url` is the pattern's: the same scheme, a host matching its host glob, the same port
    (or `*`), a path under its path. Globs never span the host (fnmatch's * matches `/`)."""
    scheme, host, port, path = _url_parts(url)
    p_scheme, p_host, p_port, p_path = _url_parts(pattern)
    return (
        scheme == p_scheme
        and fnmatch.fnmatchcase(host, p_host)
        and (p_port == "*" or port == p_port)
        and (path == p_path or path.startswith(p_path + "/"))
    )


def worker_networks(
    spec: LoadTestSpec, namespace: str, policy: ClusterPolicy, facts: Facts
) -> list[str]:
    """The address ranges the workers may find the target at: the policy's CIDRs and the
    ClusterIPs of the namespace's Services it names. Empty (no check by the workers) when
    the target is a headless Service, whose pod addresses are not known in advance."""
    host = (urlsplit(spec.target.url).hostname or "").lower()
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
            Violation("spec.prometheus.url", "prometheusUrls", f"{prom} is not an allowed URL")
        )
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
