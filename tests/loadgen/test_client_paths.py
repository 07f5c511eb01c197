"""The two client paths behave as one (docs/metrics.md, "What is sent"): the same request
heads, Host override and URL credentials honoured, redirects not followed (http_3xx),
no silent retries, idle connections retired before a server's keep-alive timeout.

A raw asyncio server records every request head it reads, with the connection it came
on, and answers as each test says (or closes the connection without an answer)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from surge.loadgen import client, http1
from surge.loadgen.client import execute, make_session, with_url_credentials
from surge.loadgen.outcome import Outcome
from surge.loadgen.scenario import Prepared
from tests.loadgen.conftest import ThreadServer

pytestmark = pytest.mark.timeout(30)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
GET = Prepared("GET", "/", None, None)
POST = Prepared("POST", "/", b'{"q":1}', "application/json")
PATHS = ("lean", "aiohttp")


@dataclass
class Seen:
    conn: int
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class RawServer:
    url: str
    seen: list[Seen] = field(default_factory=list)


Reply = Callable[[int, float, str], bytes | None]
"""(request index on its connection, seconds the connection was idle, target) -> the
reply, or None to close the connection without one."""


def serve(ts: ThreadServer, reply: Reply) -> RawServer:
    server = RawServer("")
    conns = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        conn, conns[0] = conns[0], conns[0] + 1
        last, n = loop.time(), 0
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                idle = loop.time() - last
                start, *lines = head.split("\r\n")
                method, target, _ = start.split(" ")
                headers = [(k, v.strip()) for k, _, v in (ln.partition(":") for ln in lines if ln)]
                size = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
                body = await reader.readexactly(size) if size else b""
                server.seen.append(Seen(conn, method, target, headers, body))
                answer = reply(n, idle, target)
                n += 1
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                last = loop.time()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    srv = ts.call(start())
    server.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    return server


async def send(
    via: str, url: str, req: Prepared = GET, headers: dict[str, str] | None = None
) -> Outcome:
    """One request through the path `via`, as the sender makes it (URL credentials
    turned into a header first)."""
    url, hdrs = with_url_credentials(url, headers or {})
    lean = http1.Http1Client(url) if via == "lean" else None
    try:
        async with make_session(4, 2.0) as session:
            return await execute(session, url, req, hdrs, timeout_s=2.0, lean=lean)
    finally:
        if lean is not None:
            lean.close()


def heads(server: RawServer) -> list[dict[str, list[str]]]:
    out = []
    for s in server.seen:
        named: dict[str, list[str]] = {}
        for k, v in s.headers:
            named.setdefault(k.lower(), []).append(v)
        out.append(named)
    return out


@pytest.mark.parametrize(
    ("req", "headers", "userinfo"),
    [
        (GET, {}, ""),
        (POST, {"X-Key": "v"}, ""),
        (GET, {"Host": "alice.example:8080"}, ""),  # a virtual host behind a proxy
        (POST, {}, "al%40ice:s3cr%3At@"),
        (GET, {"Authorization": "Bearer t"}, "bob:pw@"),  # the scenario's header wins
        (GET, {"Accept-Encoding": "gzip"}, ""),
    ],
)
async def test_both_paths_send_the_same_head(
    thread_server: ThreadServer, req: Prepared, headers: dict[str, str], userinfo: str
) -> None:
    server = serve(thread_server, lambda n, idle, target: OK)
    url = server.url.replace("http://", f"http://{userinfo}") + "/x?y=1"
    for via in PATHS:
        out = await send(via, url, req, headers)
        assert out.ok, (via, out.detail)
    lean, via_aiohttp = heads(server)
    assert lean == via_aiohttp
    assert [(s.method, s.target, s.body) for s in server.seen] == [
        (req.method, "/x?y=1", req.body or b"")
    ] * 2
    assert lean["host"] == [headers.get("Host", server.url.removeprefix("http://"))]
    assert lean["accept"] == ["*/*"] and lean["user-agent"] == ["surge-loadgen"]
    # No Accept-Encoding unless the scenario sets one (aiohttp would add "gzip, deflate").
    assert lean.get("accept-encoding") == (
        [headers["Accept-Encoding"]] if "Accept-Encoding" in headers else None
    )
    if userinfo == "al%40ice:s3cr%3At@":
        assert lean["authorization"] == ["Basic " + base64.b64encode(b"al@ice:s3cr:t").decode()]
    elif "Authorization" in headers:
        assert lean["authorization"] == ["Bearer t"]
    else:
        assert "authorization" not in lean


async def test_the_lean_client_honours_url_credentials_itself(thread_server: ThreadServer) -> None:
    server = serve(thread_server, lambda n, idle, target: OK)
    lean = http1.Http1Client(server.url.replace("http://", "http://u:p@") + "/")
    try:
        assert await asyncio.wait_for(lean.request("GET", {}, None), 2) == 200
    finally:
        lean.close()
    (head,) = heads(server)
    assert head["authorization"] == ["Basic " + base64.b64encode(b"u:p").decode()]
    assert head["host"] == [server.url.removeprefix("http://")]  # no userinfo in Host


@pytest.mark.parametrize("via", PATHS)
async def test_redirects_are_not_followed_and_are_http_3xx(
    thread_server: ThreadServer, via: str
) -> None:
    def reply(n: int, idle: float, target: str) -> bytes:
        if target == "/old":
            return b"HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 5\r\n\r\nmoved"
        return OK

    server = serve(thread_server, reply)
    out = await send(via, server.url + "/old")
    assert (out.error, out.status, out.detail) == ("http_3xx", 302, "HTTP 302")
    assert [s.target for s in server.seen] == ["/old"]  # /new was never asked for


@pytest.mark.parametrize("via", PATHS)
async def test_a_request_is_never_retried(thread_server: ThreadServer, via: str) -> None:
    # The server answers the first request of each connection and closes the connection
    # on the second: aiohttp would silently resend that GET on a new connection.
    server = serve(thread_server, lambda n, idle, target: OK if n == 0 else None)
    lean = http1.Http1Client(server.url + "/") if via == "lean" else None
    async with make_session(4, 2.0) as session:
        first = await execute(session, server.url + "/", GET, {}, timeout_s=2.0, lean=lean)
        second = await execute(session, server.url + "/", GET, {}, timeout_s=2.0, lean=lean)
    if lean is not None:
        lean.close()
    assert first.ok and second.error == "connect", second.detail
    assert [s.conn for s in server.seen] == [0, 0]  # no third request on a new connection


@pytest.mark.parametrize("via", PATHS)
async def test_idle_connections_are_retired_before_the_servers_timeout(
    thread_server: ThreadServer, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    # A server with a 0.3 s keep-alive timeout whose close crosses the next request (the
    # race that makes a 5 s server's connections fail under a client that keeps them):
    # a request on a connection idle that long is dropped unanswered. Scaled down, the
    # client retires connections idle 0.15 s (4 s in real runs), so it never meets it.
    monkeypatch.setattr(http1, "KEEPALIVE_IDLE_S", 0.15)
    monkeypatch.setattr(client, "KEEPALIVE_IDLE_S", 0.15)
    server = serve(thread_server, lambda n, idle, target: OK if idle < 0.3 else None)
    lean = http1.Http1Client(server.url + "/") if via == "lean" else None
    outs = []
    async with make_session(4, 2.0) as session:
        for pause in (0.0, 0.05, 0.4, 0.05):
            await asyncio.sleep(pause)
            outs.append(await execute(session, server.url + "/", GET, {}, lean=lean))
    if lean is not None:
        lean.close()
    assert [o.error for o in outs] == [None] * 4, [o.detail for o in outs]
    # Reused after a short pause, a new connection after the long one.
    assert [s.conn for s in server.seen] == [0, 0, 1, 1]
