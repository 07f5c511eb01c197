"""Red team: a target name that rebinds after the worker's one check gets the load."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from surge.api.loadtest import LoadTestSpec
from surge.loadgen import pinned
from surge.loadgen.client import make_session
from surge.loadgen.http1 import Http1Client
from surge.loadgen.plan import build_plan
from surge.loadgen.worker import check_target_addresses


async def test_connections_go_to_the_addresses_the_worker_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Attack: an allowed name answers 127.0.0.1 (in the networks) to the worker's check,
    then 127.0.0.2 (outside) to the connect that follows: the load goes to 127.0.0.2."""
    hits: dict[str, int] = {"127.0.0.1": 0, "127.0.0.2": 0}
    answers = iter(["127.0.0.1"])
    real = socket.getaddrinfo

    def rebinding(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "target.example":
            return real(host, port, *args, **kwargs)
        address = next(answers, "127.0.0.2")  # TTL 0: the next answer differs
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    def server_for(address: str) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            hits[address] += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()

        return handle

    first = await asyncio.start_server(server_for("127.0.0.1"), "127.0.0.1", 0)
    port = first.sockets[0].getsockname()[1]
    second = await asyncio.start_server(server_for("127.0.0.2"), "127.0.0.2", port)
    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    spec = LoadTestSpec.model_validate(
        {
            "target": {"url": f"http://target.example:{port}"},
            "load": {"model": "constant", "stages": [{"duration": "1s", "target": 1}]},
        }
    )
    plan = build_plan(spec, name="lt", namespace="team-a", run_id="1",
                      allowed_networks=["127.0.0.1/32"])  # fmt: skip
    check_target_addresses(plan)  # passes: the name answered 127.0.0.1
    client = Http1Client(plan.spec.target.url)
    try:
        await asyncio.wait_for(client.request("GET", {}, None), 3)
    finally:
        client.close()
        pinned.unpin_all()
        for server in (first, second):
            server.close()
            await server.wait_closed()
    assert hits == {"127.0.0.1": 1, "127.0.0.2": 0}


async def test_the_aiohttp_path_connects_to_the_pinned_address_too() -> None:
    """The same pin on SURGE_HTTP_CLIENT=aiohttp: a pinned name never reaches the resolver,
    and the name still goes out as the Host header."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pinned.pin("never-resolves.invalid", ["127.0.0.1"])
    session = make_session(1, 3.0)
    try:
        async with session.get(f"http://never-resolves.invalid:{port}/") as resp:
            assert resp.status == 200
    finally:
        await session.close()
        pinned.unpin_all()
        server.close()
        await server.wait_closed()
    assert b"Host: never-resolves.invalid" in seen[0]
