"""Loopback targets for the loadgen tests, each served from its own thread and event loop,
so the server's timers do not share a loop with the load generator under test.

- `serve_app(app)`: any aiohttp app (Alice's build_app included) -> base URL.
- `truth_app()`: a known-latency target that records the delay it applied to every
  request (the truth the client's percentiles are compared with):
  /fixed?ms=50, /lognormal?median_ms=40&sigma=0.5 (seeded), /stall (1 s stall
  starting 1 s after its first request, otherwise 2 ms), /status?code=503, /hang,
  /reset (drops the connection), /badsse (an OpenAI stream with a non-JSON chunk).
- `garbage_server()`: a raw TCP server answering with bytes that are not HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from surge.api.loadtest import LoadTestSpec


class ThreadServer:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._cleanups: list[Callable[[], Any]] = []

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve_app(self, app: web.Application) -> str:
        async def start() -> tuple[web.AppRunner, int]:
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            return runner, int(runner.addresses[0][1])

        runner, port = self.call(start())
        self._cleanups.append(runner.cleanup)
        return f"http://127.0.0.1:{port}"

    def serve_raw(self, reply: bytes) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1024)
            writer.write(reply)
            await writer.drain()
            writer.close()

        async def start() -> asyncio.Server:
            return await asyncio.start_server(handle, "127.0.0.1", 0)

        server = self.call(start())
        port = server.sockets[0].getsockname()[1]

        async def stop() -> None:
            server.close()

        self._cleanups.append(stop)
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        for c in reversed(self._cleanups):
            with contextlib.suppress(Exception):  # best effort at teardown
                self.call(c(), timeout=5.0)

        async def cancel_rest() -> None:
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        self.call(cancel_rest(), timeout=5.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5.0)


@dataclass
class Truth:
    """What the truth server did: the delay it applied to each request, in seconds."""

    delays_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    tpot_s: list[float] = field(default_factory=list)
    first_at: float | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(1234))


def truth_app(truth: Truth) -> web.Application:
    async def fixed(request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(float(request.query.get("ms", "50")) / 1000)
        truth.delays_s.append(loop.time() - start)
        return web.json_response({"ok": True})

    async def lognormal(request: web.Request) -> web.Response:
        import math

        median = float(request.query.get("median_ms", "40")) / 1000
        sigma = float(request.query.get("sigma", "0.5"))
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(median * math.exp(sigma * truth.rng.gauss(0, 1)))
        # The truth is the time the server really held the request.
        truth.delays_s.append(loop.time() - start)
        return web.json_response({"ok": True})

    async def stall(request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if truth.first_at is None:
            truth.first_at = now
        begin, end = truth.first_at + 1.0, truth.first_at + 2.0
        delay = end - now if begin <= now < end else 0.002
        truth.delays_s.append(delay)
        await asyncio.sleep(delay)
        return web.json_response({"ok": True})

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"error": "x"}, status=int(request.query.get("code", "500")))

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.json_response({})

    async def reset(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()
        await asyncio.sleep(0.05)
        return web.json_response({})

    async def badsse(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n')
        await resp.write(b"data: this is not json\n\n")
        await resp.write_eof()
        return resp

    async def stream(request: web.Request) -> web.StreamResponse:
        """OpenAI-style stream: first token at ttft_ms, then one every tpot_ms (absolute
        deadlines). Records the TTFT and TPOT it really produced."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        ttft = float(request.query.get("ttft_ms", "100")) / 1000
        tpot = float(request.query.get("tpot_ms", "20")) / 1000
        n = int(request.query.get("n", "8"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n')
        writes: list[float] = []
        for i in range(n):
            delay = t0 + ttft + i * tpot - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await resp.write(b'data: {"choices":[{"delta":{"content":" tok"}}]}\n\n')
            writes.append(loop.time())
        await resp.write(b'data: {"choices":[],"usage":{"completion_tokens":%d}}\n\n' % n)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        truth.ttft_s.append(writes[0] - t0)
        truth.tpot_s.append((writes[-1] - writes[0]) / (n - 1))
        return resp

    app = web.Application()
    for path, h in (
        ("/stream", stream),
        ("/fixed", fixed),
        ("/lognormal", lognormal),
        ("/stall", stall),
        ("/status", status),
        ("/hang", hang),
        ("/reset", reset),
        ("/badsse", badsse),
    ):
        app.router.add_route("*", path, h)
    return app


@pytest.fixture
def thread_server() -> Iterator[ThreadServer]:
    # Server and client share one GIL: with the default 5 ms switch interval a thread
    # can wait that long for its turn, which would show as latency that no real
    # server and client (separate processes) have.
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    ts = ThreadServer()
    try:
        yield ts
    finally:
        ts.close()
        sys.setswitchinterval(old)


@pytest.fixture
def truth(thread_server: ThreadServer) -> tuple[str, Truth]:
    t = Truth()
    return thread_server.serve_app(truth_app(t)), t


def make_spec(url: str, **over: Any) -> LoadTestSpec:
    """A LoadTestSpec from camelCase pieces: make_spec(url, load={...}, scenario={...})."""
    doc: dict[str, Any] = {
        "target": {"url": url},
        "scenario": {"path": "/fixed", "timeout": "5s"},
        "load": {"model": "constant", "stages": [{"duration": "1s", "target": 10}]},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k] = {**doc[k], **v}
        else:
            doc[k] = v
    return LoadTestSpec.model_validate(doc)


def hdr_percentile(values: list[float], pct: float) -> float:
    """The percentile as HdrHistogram defines it: the value at rank max(1, round(p·N/100))."""
    ordered = sorted(values)
    rank = max(1, int(pct * len(ordered) / 100 + 0.5))
    return ordered[min(rank, len(ordered)) - 1]
