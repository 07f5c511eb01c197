"""Headers that route are policy: a request's host is its URL's, checked by the target rules.

Behind a shared ingress, a gateway or a mesh sidecar, `Host` (and its stand-ins) picks the
backend, so a LoadTest aimed at an allowed Service with `Host: billing.team-b...` loads
another team's. In a cluster these headers are refused wherever a spec gives headers (the
target's and the scenario's), any case; a header name that is not an HTTP token or a value
with CR, LF or NUL (a second header smuggled into the request) is refused too, and so are
the headers that frame the message (Content-Length, Transfer-Encoding, Upgrade...), which a
proxy may read otherwise than the client frames it (a body smuggled as a request). `surge run` on
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
        "x-envoy-original-dst-host",
        "l5d-dst-override",
    }
)
"""Headers a proxy, ingress or sidecar may route by (HTTP/2's `:authority` included;
Envoy's original-destination clusters with use_http_header connect to the address in
`x-envoy-original-dst-host`; a Linkerd proxy, the worker pod's own in a meshed namespace,
sends to the Service named in `l5d-dst-override`)."""

FRAMING_HEADERS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "te",
        "trailer",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "http2-settings",
    }
)
"""Headers that frame the message or the connection, which the client owns. From a spec
they desynchronise a proxy: `Transfer-Encoding: chunked` beside the client's
Content-Length, with a body holding `0\\r\\n\\r\\nGET / HTTP/1.1\\r\\nHost: billing...`,
makes a shared ingress read a second request, routed by its own Host; `Upgrade: h2c`
tunnels past the proxy's routing."""

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
        elif name.lower() in FRAMING_HEADERS:
            out.append(
                Violation(
                    where,
                    "targets",
                    f"header {name!r} frames the request or the connection, which the client "
                    "does; a proxy that reads it otherwise takes the body for another request "
                    "(request smuggling); remove it",
                )
            )
        elif not _TOKEN.fullmatch(name):
            out.append(Violation(where, "targets", f"header name {name!r} is not an HTTP token"))
        elif value is not None and any(c in value for c in "\r\n\0"):
            out.append(
                Violation(where, "targets", f"header {name!r} has CR, LF or NUL in its value")
            )
    return out
