"""Loopback targets for `make bench`, each run as its own process:

    python -m surge.bench.targets fast PORT             # 200 "ok" at once
    python -m surge.bench.targets slow PORT DELAY_MS    # 200 "ok" after DELAY_MS
    python -m surge.bench.targets stream PORT TTFT_MS TPOT_MS TOKENS [1]   # OpenAI SSE stream
                                                # (1: coarse timers, stream_shapes.at_ms)
    python -m surge.bench.targets completions PORT TTFT_MS TPOT_MS TOKENS
    python -m surge.bench.targets reasoning PORT TTFT_MS TPOT_MS THINK TOKENS [FIELD]
    python -m surge.bench.targets chunked PORT TTFT_MS TPOT_MS TOKENS PER_CHUNK USAGE
    python -m surge.bench.targets anthropic PORT TTFT_MS TPOT_MS TOKENS

The last four are the other LLM stream shapes (surge.bench.stream_shapes says what each
sends). Raw asyncio protocols (on uvloop when installed), so one target core serves far
more than the one client core under test asks of it: the bench measures the client.
They understand keep-alive HTTP/1.1 requests, with a Content-Length body or none.
PORT 0 picks a free port. Each prints "ready PORT" once it listens. `--tls CERT KEY`
before the kind serves https with that certificate (the bench's https comparison).
With $SURGE_TARGET_COUNT set, `fast` appends "WALL_TIME RESPONSES" to that file every
COUNT_EVERY_S: how many answers it has written so far (for a client that reports no
per-request times, surge.bench.bombardier).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

from surge.bench.cpu import pin_prefix
from surge.bench.stream_shapes import SHAPES, SSE_HEAD, at, at_ms, chunk, serve_shape

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
COUNT_EVERY_S = 0.01
_TOKEN = b'data: {"choices":[{"index":0,"delta":{"content":" tok"}}]}\n\n'


def start(
    kind: str,
    *args: float,
    core: int | None = None,
    tls: tuple[str, str] | None = None,
    count: Path | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start a target process (pinned to `core` with taskset when given and available;
    https with tls = (certificate file, key file); `fast` writes its response count to
    `count`, see above); returns (process, base URL). Raises RuntimeError when it does
    not come up."""
    argv = [sys.executable, "-m", "surge.bench.targets", *(("--tls", *tls) if tls else ())]
    argv += [kind, "0", *map(str, args)]
    if core is not None:
        argv = [*pin_prefix(core), *argv]
    env = None if count is None else {**os.environ, "SURGE_TARGET_COUNT": str(count)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    word, _, port = proc.stdout.readline().strip().partition(" ")
    if word != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"bench target {kind} did not start")
    return proc, f"{'https' if tls else 'http'}://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


class _Http(asyncio.Protocol):
    """Finds complete requests (head and Content-Length body) in the byte stream and
    answers each; the answer reads the request body from `body`."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.buf = b""
        self.body = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            length = 0
            at_cl = head.find(b"\r\ncontent-length:")
            if at_cl >= 0:
                line_end = head.find(b"\r\n", at_cl + 2)
                length = int(head[at_cl + 17 : None if line_end < 0 else line_end])
            if len(buf) < end + 4 + length:
                break  # the body is still on its way
            self.body = buf[end + 4 : end + 4 + length]
            buf = buf[end + 4 + length :]
            self.answer(self)
        self.buf = buf


def _fast(p: _Http) -> None:
    assert p.transport is not None
    p.transport.write(_OK)


def _counting_fast(path: str) -> Any:
    """`fast`, counting its answers; every COUNT_EVERY_S the count goes to `path` with
    the wall-clock time (time.time(): the clock the CPU sampler stamps with)."""
    loop = asyncio.get_running_loop()
    out = open(path, "a", buffering=1)  # noqa: SIM115 (process-long)
    n = 0

    def answer(p: _Http) -> None:
        nonlocal n
        assert p.transport is not None
        p.transport.write(_OK)
        n += 1

    def sample() -> None:
        out.write(f"{time.time():.6f} {n}\n")
        loop.call_later(COUNT_EVERY_S, sample)

    sample()
    return answer


def _slow(delay_s: float) -> Any:
    """Answers DELAY after the request; with $SURGE_TARGET_RECORD set, appends each
    request's hold time (reply written − request read, seconds, its own clock) to that
    file: what the target really did, late timer ticks included (tests judge by it)."""
    loop = asyncio.get_running_loop()
    path = os.environ.get("SURGE_TARGET_RECORD")
    record = open(path, "a", buffering=1) if path else None  # noqa: SIM115 (process-long)

    def reply(p: _Http, t0: float) -> None:
        if p.transport is not None:
            p.transport.write(_OK)
            if record is not None:
                record.write(f"{time.monotonic() - t0:.9f}\n")

    def answer(p: _Http) -> None:
        t0 = time.monotonic()
        at(loop, t0 + delay_s, reply, p, t0)

    return answer


def _stream(ttft_s: float, tpot_s: float, tokens: int, coarse: bool = False) -> Any:
    """coarse: tokens on at_ms (no spinning, up to ~2 ms late), for the stream ladder."""
    loop = asyncio.get_running_loop()
    timer = at_ms if coarse else at
    usage = b'data: {"choices":[],"usage":{"completion_tokens":%d}}\n\n' % tokens
    tail = chunk(usage) + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    token = chunk(_TOKEN)

    def step(p: _Http, t0: float, i: int) -> None:
        if p.transport is None:
            return
        p.transport.write(token if i < tokens - 1 else token + tail)
        if i < tokens - 1:
            # Absolute deadlines: a late tick does not push the later tokens back.
            timer(loop, t0 + ttft_s + (i + 1) * tpot_s, step, p, t0, i + 1)

    def start(p: _Http) -> None:
        assert p.transport is not None
        t0 = time.monotonic()
        role = chunk(b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n')
        p.transport.write(SSE_HEAD + role)
        timer(loop, t0 + ttft_s, step, p, t0, 0)

    return start


async def serve(kind: str, port: int, args: list[float], tls: ssl.SSLContext | None = None) -> None:
    count = os.environ.get("SURGE_TARGET_COUNT")
    if kind == "fast":
        answer: Any = _counting_fast(count) if count else _fast
    elif kind == "slow":
        answer = _slow(args[0] / 1000)
    elif kind == "stream":
        answer = _stream(
            args[0] / 1000, args[1] / 1000, int(args[2]), len(args) > 3 and args[3] > 0
        )
    elif kind in SHAPES:
        answer = serve_shape(SHAPES[kind](args))
    else:
        raise SystemExit(f"unknown target {kind!r}")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Http(answer), "127.0.0.1", port, backlog=4096, reuse_address=True, ssl=tls
    )
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main(argv: list[str]) -> None:
    tls = None
    if argv[:1] == ["--tls"]:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(argv[1], argv[2])
        argv = argv[3:]
    kind, port, *rest = argv
    coro = serve(kind, int(port), [float(a) for a in rest], tls)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main(sys.argv[1:])
