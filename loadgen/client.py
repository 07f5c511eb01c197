"""The hot path: send one request with aiohttp and time it, never raising.

http:// targets go through the lean HTTP/1.1 client (surge.loadgen.http1, passed as
`lean`): aiohttp's ClientSession costs several times the CPU per request. https (and
SURGE_HTTP_CLIENT=aiohttp) use aiohttp: one ClientSession per worker, a TCPConnector
sized to maxInFlight, keep-alive on (httpx with one shared pool fell to 296 req/s at 50
in flight). Both paths time, parse and classify the same way (tests/loadgen/test_http1.py).

Every failure becomes an error class, never an exception:
- connect: the connection could not be made, or was reset/closed before a response;
- timeout: no complete response within scenario.timeout (from the actual send);
- http_4xx / http_5xx: the response status;
- protocol: a response that is not valid HTTP, a broken body or a stream that
  cannot be parsed (bad SSE/JSON chunks).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Literal, Protocol

import aiohttp

from surge.loadgen.outcome import ErrorClass, Outcome, ProtocolError
from surge.loadgen.scenario import Prepared

Streaming = Literal["none", "sse", "openai"]


class LeanClient(Protocol):
    """The lean HTTP/1.1 client as execute uses it (surge.loadgen.http1.Http1Client).

    Typed by shape so this module does not import http1, which imports the outcome types.
    """

    async def request(
        self,
        method: str,
        headers: dict[str, str],
        body: bytes | None,
        sink: Callable[[bytes], None] | None = None,
    ) -> int: ...


def make_session(limit: int, timeout_s: float) -> aiohttp.ClientSession:
    """One session for a worker: a keep-alive pool of `limit` connections."""
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=limit, ttl_dns_cache=300, force_close=False
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout_s),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
        headers={"User-Agent": "surge-loadgen"},
    )


def _classify(exc: BaseException) -> tuple[ErrorClass, str]:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout", "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect", str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return "connect", str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return "protocol", str(exc) or type(exc).__name__
    if isinstance(exc, ProtocolError | ValueError | UnicodeDecodeError):
        return "protocol", str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connect", str(exc) or type(exc).__name__
    return "protocol", f"{type(exc).__name__}: {exc}"


async def execute(
    session: aiohttp.ClientSession,
    url: str,
    req: Prepared,
    headers: dict[str, str],
    *,
    streaming: Streaming = "none",
    timeout_s: float = 30.0,
    keep_text: bool = False,
    lean: LeanClient | None = None,
) -> Outcome:
    """Send `req` to `url` and time it. Never raises (except CancelledError).

    lean: send through this lean HTTP/1.1 client (made for `url`) instead of the
    session (surge.loadgen.http1); streams and kept replies are parsed the same way."""
    out = Outcome(sent_at=time.monotonic())
    hdrs = headers
    ctype = req.content_type
    if ctype is not None and headers.get("Content-Type") != ctype:
        hdrs = {**headers, "Content-Type": ctype}
    if lean is not None:
        sse = _SseLines(out, streaming == "openai", keep_text) if streaming != "none" else None
        kept: list[bytes] | None = [] if keep_text and sse is None else None
        sink = sse.feed if sse is not None else (kept.append if kept is not None else None)
        try:
            async with asyncio.timeout(timeout_s):
                status = out.status = await lean.request(req.method, hdrs, req.body, sink)
            if status >= 400:
                out.error = "http_5xx" if status >= 500 else "http_4xx"
                out.detail = f"HTTP {status}"
            elif sse is not None:
                sse.finish()
            elif kept is not None:
                out.text = _reply_text(b"".join(kept))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            out.error, out.detail = _classify(exc)
        out.done_at = time.monotonic()
        return out
    try:
        async with asyncio.timeout(timeout_s):
            async with session.request(req.method, url, data=req.body, headers=hdrs) as resp:
                out.status = resp.status
                if resp.status >= 400:
                    await resp.read()
                    out.error = "http_5xx" if resp.status >= 500 else "http_4xx"
                    out.detail = f"HTTP {resp.status}"
                elif streaming == "none":
                    body = await resp.read()
                    if keep_text:
                        out.text = _reply_text(body)
                else:
                    await _read_stream(resp, out, openai=streaming == "openai", keep=keep_text)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        out.error, out.detail = _classify(exc)
    out.done_at = time.monotonic()
    return out


def _reply_text(body: bytes) -> str:
    """The assistant text of a JSON reply (OpenAI or {"answer"|"reply"|"text"|"content"})."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")
    if isinstance(data, dict):
        choices = data.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            msg = choices[0].get("message") or {}
            if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                return str(msg["content"])
        for key in ("answer", "reply", "text", "content", "response"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return body.decode(errors="replace")


async def _read_stream(
    resp: aiohttp.ClientResponse, out: Outcome, *, openai: bool, keep: bool
) -> None:
    """Parse an SSE stream line by line: `data:` lines are events, `:` lines comments.

    A content-bearing chunk is a generic SSE data event with a non-empty payload, or an
    OpenAI chunk whose choices[0].delta.content is a non-empty string. Role-only chunks,
    finish chunks, usage chunks, comments and [DONE] carry no content.
    """
    parts: list[str] = []
    done = False
    times = out.chunk_times
    rest = b""
    # One await per network read (not per line): a read usually holds one whole event,
    # and every chunk in it gets the read's arrival time.
    async for data in resp.content.iter_any():
        now = time.monotonic()
        if b"\n" not in data:
            rest += data
            continue
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        for raw in lines:
            if _take_line(raw, out, times, now, openai, parts if keep else None):
                done = True
    if rest and _take_line(rest, out, times, time.monotonic(), openai, parts if keep else None):
        done = True
    if openai and not done and not out.chunk_times:
        raise ProtocolError("stream ended without content or [DONE]")
    if out.chunk_times:
        out.first_token_at = out.chunk_times[0]
        out.last_token_at = out.chunk_times[-1]
    if keep:
        out.text = "".join(parts)


class _SseLines:
    """The SSE parser of `_read_stream`, fed with body bytes by the lean client."""

    def __init__(self, out: Outcome, openai: bool, keep: bool) -> None:
        self.out = out
        self.openai = openai
        self.parts: list[str] | None = [] if keep else None
        self.rest = b""
        self.done = False

    def feed(self, data: bytes) -> None:
        now = time.monotonic()
        if b"\n" not in data:
            self.rest += data
            return
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        out, times, parts = self.out, self.out.chunk_times, self.parts
        for raw in lines:
            if _take_line(raw, out, times, now, self.openai, parts):
                self.done = True

    def finish(self) -> None:
        out = self.out
        if self.rest and _take_line(
            self.rest, out, out.chunk_times, time.monotonic(), self.openai, self.parts
        ):
            self.done = True
        if self.openai and not self.done and not out.chunk_times:
            raise ProtocolError("stream ended without content or [DONE]")
        if out.chunk_times:
            out.first_token_at = out.chunk_times[0]
            out.last_token_at = out.chunk_times[-1]
        if self.parts is not None:
            out.text = "".join(self.parts)


def _take_line(
    raw: bytes,
    out: Outcome,
    times: list[float],
    now: float,
    openai: bool,
    parts: list[str] | None,
) -> bool:
    """One SSE line; appends `now` to times for a content-bearing chunk. True on [DONE]."""
    line = raw.rstrip(b"\r")
    if not line.startswith(b"data:"):
        return False  # blank lines, comments (":"), event:, id:, retry: fields
    payload = line[5:].lstrip(b" ")
    if not openai:
        if payload:
            times.append(now)
            if parts is not None:
                parts.append(payload.decode(errors="replace"))
        return False
    if payload == b"[DONE]":
        return True
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise ProtocolError(f"stream chunk is not JSON: {payload[:60]!r}") from None
    if not isinstance(chunk, dict):
        raise ProtocolError("stream chunk is not a JSON object")
    if "error" in chunk:
        raise ProtocolError(f"error in stream: {str(chunk['error'])[:80]}")
    usage = chunk.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        out.usage_tokens = usage["completion_tokens"]
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str) and content:
            times.append(now)
            if parts is not None:
                parts.append(content)
    return False
