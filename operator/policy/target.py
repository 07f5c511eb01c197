"""What a run loads, as one-run-per-target compares it (the key of its target Lease). Pure.

The key is what the workers send to, never a name the spec makes up: the Service the URL
names (in whichever form cluster DNS gives it: `alice`, `alice.ns`, `alice.ns.svc`,
`alice.ns.svc.cluster.local`) and its port, else the URL's host and port as every client
reads them (surge.api.urls). A deploymentRef is not part of the key: the policy checks that
it backs the Service (rules.backing_violations), so made-up names cannot split one target
into many locks.
"""

from __future__ import annotations

from typing import Any

from surge.api.urls import UrlError, parse_url
from surge.operator.policy.rules import CLUSTER_DOMAIN, service_name


def cluster_service(host: str, namespace: str) -> tuple[str, str] | None:
    """(namespace, Service) a host names: a form of the run's namespace, or the fully
    qualified forms of any namespace (`svc.ns.svc`, `svc.ns.svc.cluster.local`)."""
    own = service_name(host, namespace)
    if own:
        return namespace, own
    parts = host.lower().split(".")
    fqdn = parts[2:] in (["svc"], ["svc", *CLUSTER_DOMAIN.split(".")])
    if fqdn and parts[0] and parts[1]:
        return parts[1], parts[0]
    return None


def target_key(spec_raw: dict[str, Any], namespace: str) -> str:
    """`service/<ns>/<name>:<port>` or `url/<host>:<port>` (case, user info, default ports
    and DNS forms of one Service do not make another target)."""
    target = spec_raw.get("target") or {}
    try:
        url = parse_url(str(target.get("url", "")), allow_userinfo=True)
    except UrlError:
        return "url/:0"  # the spec's models refuse such a URL before a run gets here
    svc = cluster_service(url.host, namespace)
    if svc is not None:
        return f"service/{svc[0]}/{svc[1]}:{url.port}"
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"url/{host}:{url.port}"
