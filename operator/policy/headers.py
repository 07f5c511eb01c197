"""Headers that route are policy: a request's host is its URL's, checked by the target rules.

Behind a shared ingress, a gateway or a mesh sidecar, `Host` (and its stand-ins) picks the
backend, so a LoadTest aimed at an allowed Service with `Host: billing.team-b...` loads
another team's. In a cluster these headers are refused wherever a spec gives headers (the
target's and the scenario's), any case; a header name that is not an HTTP token or a value
with CR, LF or NUL (a second header smuggled into the request) is refused too. `surge run` on
one's own machine has no policy and sends them as written. docs/security.md has the rule.
"""

from __future__ import annotations

import re

from surge.api.loadtest import LoadTestSpec
from surge.api.policy import Violation

ROUTING_HEADERS = frozenset(
    {
        "host",
        ":authority",
        "forwarded",
        "x-forwarded-host",
        "x-forwarded-server",
        "x-original-host",
        "x-host",
        "x-original-url",
        "x-rewrite-url",
    }
)
"""Headers a proxy, ingress or sidecar may route by (HTTP/2's `:authority` included)."""

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def given_headers(spec: LoadTestSpec) -> list[tuple[str, str, str | None]]:
    """(field, name, literal value or None for a Secret's) of every header the spec gives."""
    out: list[tuple[str, str, str | None]] = [
        (f"spec.target.headers[{i}]", h.name, h.value) for i, h in enumerate(spec.target.headers)
    ]
    out += [(f"spec.scenario.headers.{k}", k, v) for k, v in spec.scenario.headers.items()]
    return out


def header_violations(spec: LoadTestSpec) -> list[Violation]:
    out = []
    for where, name, value in given_headers(spec):
        if name.lower() in ROUTING_HEADERS:
            out.append(
                Violation(
                    where,
                    "targets",
                    f"header {name!r} routes the request past the target's URL, which is what "
                    "the policy checks; remove it and put the host in spec.target.url",
                )
            )
        elif not _TOKEN.fullmatch(name):
            out.append(Violation(where, "targets", f"header name {name!r} is not an HTTP token"))
        elif value is not None and any(c in value for c in "\r\n\0"):
            out.append(
                Violation(where, "targets", f"header {name!r} has CR, LF or NUL in its value")
            )
    return out
