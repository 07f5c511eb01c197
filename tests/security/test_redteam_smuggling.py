"""Red team: headers that frame the request smuggle a second one, routed by its own Host."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from surge.api.loadtest import LoadTestSpec
from surge.api.policy import ClusterPolicy
from surge.loadgen.http1 import Http1Client
from surge.operator.policy.rules import Allowed, Facts, Service, loadtest_violations

NS = "team-a"
OWN = Allowed(images=("surge:1",), prometheus_urls=("http://prom.monitoring:9090",))
ALICE = Service(cluster_ips=("10.96.0.10",), selector={"app": "alice"})
SMUGGLED = b"0\r\n\r\nGET /x HTTP/1.1\r\nHost: billing.team-b.svc.cluster.local\r\n\r\n"


def _violations(headers: dict[str, str], target: list[dict[str, str]]) -> list[Any]:
    raw = {
        "target": {"url": "http://alice:8080", "headers": target},
        "scenario": {"headers": headers, "body": SMUGGLED.decode()},
        "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
    }
    spec = LoadTestSpec.model_validate(raw)
    return loadtest_violations(spec, NS, ClusterPolicy(), OWN, Facts(services={"alice": ALICE}))


@pytest.mark.parametrize(
    "name",
    [
        "Transfer-Encoding",
        "transfer-encoding",
        "Content-Length",
        "Connection",
        "Upgrade",
        "TE",
        "HTTP2-Settings",
        "X-Envoy-Original-Dst-Host",
        "l5d-dst-override",
    ],
)
def test_framing_and_routing_headers_are_refused_in_a_cluster(name: str) -> None:
    """Attack: `Transfer-Encoding: chunked` (Upgrade: h2c, a short Content-Length) from a spec
    desyncs a shared ingress, whose next request is the body's, routed by its own Host to
    another team's Service; Envoy's original-dst header or Linkerd's l5d-dst-override route
    it there directly."""
    value = {"Upgrade": "h2c", "Content-Length": "0", "TE": "trailers"}.get(name, "chunked")
    if name in ("X-Envoy-Original-Dst-Host", "l5d-dst-override"):
        value = "billing.team-b.svc.cluster.local:80"
    (v,) = _violations({name: value}, [])
    assert v.field == f"spec.scenario.headers.{name}" and name in v.message
    (v,) = _violations({}, [{"name": name, "value": value}])
    assert v.field == "spec.target.headers[0]" and name in v.message


async def test_the_lean_client_never_sends_a_transfer_encoding_beside_its_content_length() -> None:
    """Attack: `surge run` or an unchecked plan with Transfer-Encoding: chunked made the lean
    client send both framings (RFC 9112 forbids it), so the body was a second request."""
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        got.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Http1Client(f"http://127.0.0.1:{port}/x")
    try:
        status = await asyncio.wait_for(
            client.request("POST", {"Transfer-Encoding": "chunked"}, SMUGGLED), 3
        )
    finally:
        client.close()
        server.close()
        await server.wait_closed()
    assert status == 200
    lines = [line.lower() for line in got[0].split(b"\r\n")]
    assert b"content-length: %d" % len(SMUGGLED) in lines
    assert not any(line.startswith(b"transfer-encoding") for line in lines)
