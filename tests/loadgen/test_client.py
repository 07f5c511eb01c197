"""Every failure becomes a counted error class; streams are parsed as documented."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from surge.loadgen.client import execute, make_session
from surge.loadgen.scenario import Prepared
from tests.loadgen.conftest import ThreadServer, Truth

GET = Prepared("GET", "/", None, None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _one(url: str, *, timeout_s: float = 2.0, streaming: str = "none") -> object:
    async with make_session(4, timeout_s) as session:
        return await execute(session, url, GET, {}, timeout_s=timeout_s, streaming=streaming)  # type: ignore[arg-type]


@pytest.mark.timeout(20)
async def test_error_classes(truth: tuple[str, Truth], thread_server: ThreadServer) -> None:
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
        out = await _one(target, timeout_s=0.3)
        assert out.error == cls, (target, out.error, out.detail)  # type: ignore[attr-defined]
    bad = await _one(f"{url}/badsse", streaming="openai")
    assert bad.error == "protocol"  # type: ignore[attr-defined]
    ok = await _one(f"{url}/fixed?ms=1")
    assert ok.ok  # type: ignore[attr-defined]
    assert ok.status == 200  # type: ignore[attr-defined]


async def test_timeout_is_bounded_from_the_send(truth: tuple[str, Truth]) -> None:
    url, _ = truth
    out = await _one(f"{url}/hang", timeout_s=0.2)
    took = out.done_at - out.sent_at  # type: ignore[attr-defined]
    assert out.error == "timeout"  # type: ignore[attr-defined]
    assert 0.19 <= took < 0.6


async def test_openai_stream_skips_role_and_comment_chunks(thread_server: ThreadServer) -> None:
    from aiohttp import web

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for line in (
            b": keep-alive comment\n\n",
            b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n',
            b'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n',
            b'data: {"choices":[{"delta":{"content":" world"}}]}\n\n',
            b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n',
            b'data: {"choices":[],"usage":{"completion_tokens":3}}\n\n',
            b"data: [DONE]\n\n",
        ):
            await resp.write(line)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/", stream)
    url = thread_server.serve_app(app)
    async with make_session(2, 5) as session:
        out = await execute(session, url + "/", GET, {}, streaming="openai", keep_text=True)
    assert out.ok
    assert len(out.chunk_times) == 2  # "" role chunk, comment, finish and usage: no content
    assert out.usage_tokens == 3
    assert out.output_tokens == 3  # the server's usage wins over the 2 counted chunks
    assert out.text == "Hello world"
    assert isinstance(aiohttp.__version__, str)
