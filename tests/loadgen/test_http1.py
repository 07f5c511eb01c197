"""The lean HTTP/1.1 client: framing, keep-alive reuse, and the same error classes as
the aiohttp path."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from surge.loadgen import http1
from surge.loadgen.client import execute, make_session
from surge.loadgen.outcome import Outcome
from surge.loadgen.scenario import Prepared
from tests.loadgen.conftest import ThreadServer, Truth

GET = Prepared("GET", "/", None, None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _lean(url: str, req: Prepared = GET, timeout_s: float = 2.0) -> Outcome:
    lean = http1.Http1Client(url)
    try:
        async with make_session(2, timeout_s) as session:
            return await execute(session, url, req, {}, timeout_s=timeout_s, lean=lean)
    finally:
        lean.close()


@pytest.mark.timeout(20)
async def test_error_classes_match_the_aiohttp_path(
    truth: tuple[str, Truth], thread_server: ThreadServer
) -> None:
    url, _ = truth
    garbage = thread_server.serve_raw(b"THIS IS NOT HTTP AT ALL\r\n\r\n")
    cases = {
        f"http://127.0.0.1:{_closed_port()}/": "connect",
        f"{url}/hang": "timeout",
        f"{url}/status?code=404": "http_4xx",
        f"{url}/status?code=503": "http_5xx",
        garbage + "/": "protocol",
        f"{url}/reset": "connect",
    }
    for target, cls in cases.items():
        out = await _lean(target, timeout_s=0.3)
        assert out.error == cls, (target, out.error, out.detail)
        async with make_session(2, 0.3) as session:
            via_aiohttp = await execute(session, target, GET, {}, timeout_s=0.3)
        assert via_aiohttp.error == cls, target
    ok = await _lean(f"{url}/fixed?ms=1")
    assert ok.ok and ok.status == 200


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200),
        (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: 1\r\n\r\n", 201),
        (b"HTTP/1.0 200 OK\r\n\r\nbody until the close", 200),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
         b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200),
    ],
)  # fmt: skip
async def test_framing(thread_server: ThreadServer, reply: bytes, status: int) -> None:
    url = thread_server.serve_raw(reply)
    out = await _lean(url + "/")
    assert out.ok, out.detail
    assert out.status == status


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",  # closed mid-body
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",  # mid-chunk
    ],
)
async def test_truncated_bodies_are_connect_errors(
    thread_server: ThreadServer, reply: bytes
) -> None:
    out = await _lean(thread_server.serve_raw(reply) + "/")
    assert out.error == "connect"


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 OK 200\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",  # head > 64 KiB
    ],
)
async def test_malformed_responses_are_protocol_errors(
    thread_server: ThreadServer, reply: bytes
) -> None:
    out = await _lean(thread_server.serve_raw(reply) + "/")
    assert out.error == "protocol", out.detail


async def test_keep_alive_reuse_and_what_is_sent(thread_server: ThreadServer) -> None:
    seen: list[tuple[object, str, str, bytes, str | None]] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.append((peer, request.method, request.path_qs, body, request.headers.get("X-K")))
        if request.query.get("close"):
            return web.Response(text="bye", headers={"Connection": "close"})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    base = thread_server.serve_app(app)
    post = Prepared("POST", "/echo", b'{"a":1}', "application/json")
    lean = http1.Http1Client(base + "/echo?x=1")
    async with make_session(2, 2) as session:
        for _ in range(3):
            out = await execute(session, base, post, {"X-K": "v"}, lean=lean)
            assert out.ok and out.status == 200
    lean.close()
    assert [s[1:] for s in seen] == [("POST", "/echo?x=1", b'{"a":1}', "v")] * 3
    assert len({s[0] for s in seen}) == 1  # one connection, kept alive
    closing = http1.Http1Client(base + "/echo?close=1")
    async with make_session(2, 2) as session:
        for _ in range(2):
            assert (await execute(session, base, GET, {}, lean=closing)).ok
    closing.close()
    assert len({s[0] for s in seen[3:]}) == 2  # Connection: close is honoured


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nabcdefg",
        b"HTTP/1.0 200 OK\r\n\r\nabcdefg",  # delimited by the close
    ],
)
async def test_sink_gets_the_body(thread_server: ThreadServer, reply: bytes) -> None:
    lean = http1.Http1Client(thread_server.serve_raw(reply) + "/")
    got: list[bytes] = []
    try:
        assert await asyncio.wait_for(lean.request("GET", {}, None, got.append), 2) == 200
    finally:
        lean.close()
    assert b"".join(got) == b"abcdefg"


async def test_head_responses_have_no_body_and_keep_alive(thread_server: ThreadServer) -> None:
    peers: list[object] = []

    async def page(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(text="x" * 100)

    app = web.Application()
    app.router.add_get("/page", page)  # HEAD too: Content-Length 100, no body
    lean = http1.Http1Client(thread_server.serve_app(app) + "/page")
    try:
        for method in ("HEAD", "HEAD", "GET"):
            assert await asyncio.wait_for(lean.request(method, {}, None), 2) == 200
    finally:
        lean.close()
    assert len(peers) == 3 and len(set(peers)) == 1


def test_usable_only_for_http_https_and_clean_headers() -> None:
    assert http1.usable("http://127.0.0.1:8080/x?y=1", {"Authorization": "Bearer t"})
    assert http1.usable("https://example.com/", {})
    assert not http1.usable("ftp://example.com/", {})
    assert not http1.usable("http://127.0.0.1/", {"X": "a\r\nInjected: 1"})


def _stream_app() -> web.Application:
    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        # A comment, a role-only chunk, a content chunk cut inside its JSON and inside
        # "\r\n", two events in one write, usage, and [DONE] without a newline.
        await resp.write(b': keep-alive\n\ndata: {"choices":[{"delta":{"role":"assistant"}}]}\n\n')
        await resp.write(b'data: {"choices":[{"delta":{"cont')
        await asyncio.sleep(0.05)
        await resp.write(b'ent":"a"}}]}\r')
        await asyncio.sleep(0.05)
        await resp.write(b"\n\n")
        await resp.write(
            b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n'
            b'data: {"choices":[{"delta":{"content":"c"}}]}\n\n'
            b'data: {"choices":[],"usage":{"completion_tokens":5}}\n\n'
        )
        await asyncio.sleep(0.05)
        await resp.write(b"data: [DONE]")
        await resp.write_eof()
        return resp

    async def reply(request: web.Request) -> web.Response:
        resp = web.json_response({"answer": "hello there"})
        if request.query.get("gzip"):
            resp.enable_compression(web.ContentCoding.gzip)
        return resp

    app = web.Application()
    app.router.add_get("/stream", stream)
    app.router.add_get("/reply", reply)
    return app


@pytest.mark.parametrize("via", ["lean", "aiohttp"])
async def test_streams_parse_the_same_on_both_clients(
    thread_server: ThreadServer, truth: tuple[str, Truth], via: str
) -> None:
    base = thread_server.serve_app(_stream_app())
    lean = http1.Http1Client(base + "/stream") if via == "lean" else None
    async with make_session(2, 5) as session:
        out = await execute(
            session, base + "/stream", GET, {}, streaming="openai", keep_text=True, lean=lean
        )
    assert out.ok, out.detail
    assert out.text == "abc"
    assert len(out.chunk_times) == 3 and out.output_tokens == 5
    assert out.first_token_at is not None and out.first_token_at - out.sent_at >= 0.09
    assert out.chunk_times[1] == out.chunk_times[2]  # one read, one arrival time
    url, _ = truth
    bad_lean = http1.Http1Client(url + "/badsse") if via == "lean" else None
    async with make_session(2, 5) as session:
        bad = await execute(session, url + "/badsse", GET, {}, streaming="openai", lean=bad_lean)
    assert bad.error == "protocol"


@pytest.mark.parametrize("query", ["", "?gzip=1"])
async def test_kept_replies_are_decoded(thread_server: ThreadServer, query: str) -> None:
    base = thread_server.serve_app(_stream_app())
    lean = http1.Http1Client(base + "/reply" + query)
    async with make_session(2, 5) as session:
        out = await execute(
            session, base, GET, {"Accept-Encoding": "gzip"}, keep_text=True, lean=lean
        )
    lean.close()
    assert out.ok, out.detail
    assert out.text == "hello there"
