"""The hot path: send one request and time it, never raising.

http:// and https:// targets go through the lean HTTP/1.1 client (surge.loadgen.http1,
passed as `lean`): aiohttp's ClientSession costs several times the CPU per request.
SURGE_HTTP_CLIENT=aiohttp uses aiohttp: one ClientSession per worker, a TCPConnector
sized to maxInFlight, keep-alive on (httpx with one shared pool fell to 296 req/s at 50
in flight).

Both paths behave the same (tests/loadgen/test_http1.py, docs/metrics.md):
- the same request headers: Host (the URL's, or the scenario's Host header), Accept
  `*/*`, User-Agent `surge-loadgen`, Content-Type and Content-Length for a body, the
  scenario's headers; no Accept-Encoding unless the scenario sets one (a gzip or
  deflate reply is decoded either way); credentials in the URL become a Basic
  Authorization header (`with_url_credentials`, applied by the sender to both);
- redirects are not followed: a 3xx is the error class http_3xx;
- no request is retried: aiohttp's silent second try of an idempotent request on a
  kept-alive connection the server closed is turned off;
- keep-alive connections idle for outcome.KEEPALIVE_IDLE_S are retired;
- the same timing points and stream parser (surge.loadgen.streams).

Every failure becomes an error class, never an exception:
- connect: the connection could not be made, or was reset/closed before a response;
- timeout: no complete response within scenario.timeout (from the actual send);
- http_3xx / http_4xx / http_5xx: the response status;
- protocol: a response that is not valid HTTP, a broken body or a stream that
  cannot be parsed (bad SSE/JSON chunks).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import Callable, Collection
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp

from surge.loadgen.outcome import (
    KEEPALIVE_IDLE_S,
    ErrorClass,
    Outcome,
    ProtocolError,
    status_error,
)
from surge.loadgen.pinned import make_resolver
from surge.loadgen.scenario import Prepared
from surge.loadgen.streams import DEFAULT_TOKEN_EVENTS, Streaming, TokenStream

__all__ = ["LeanClient", "Streaming", "classify", "execute", "make_session", "with_url_credentials"]


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
        limit=limit,
        limit_per_host=limit,
        ttl_dns_cache=300,
        force_close=False,
        keepalive_timeout=KEEPALIVE_IDLE_S,
        resolver=make_resolver(),  # the worker's checked addresses (surge.loadgen.pinned)
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout_s),
        auto_decompress=True,
        # The lean client sends no Accept-Encoding; neither does this path.
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        headers={"User-Agent": "surge-loadgen"},
    )
    # aiohttp resends an idempotent request once, silently, when a kept-alive connection
    # turns out closed; a load generator must count that failure, not hide it. (The same
    # switch aiohttp's own test client uses.)
    session._retry_connection = False
    return session


def with_url_credentials(url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(url without `user:password@`, headers with `Authorization: Basic ...` for them).

    The URL's credentials are percent-decoded and sent as UTF-8; an Authorization header
    the scenario sets wins over them. Both client paths get the result, so they send the
    same thing (aiohttp alone would refuse the pair with an exception per request)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, headers
    userinfo, _, hostport = parts.netloc.rpartition("@")
    bare = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    if any(k.lower() == "authorization" for k in headers):
        return bare, headers
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return bare, {**headers, "Authorization": f"Basic {token}"}


def classify(exc: BaseException) -> tuple[ErrorClass, str]:
    """The error class and detail of an exception from sending a request."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout", "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect", str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return "connect", str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return "protocol", str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLError):  # a failed handshake (a certificate, a ValueError too)
        return "connect", str(exc) or type(exc).__name__
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
    token_events: Collection[str] = DEFAULT_TOKEN_EVENTS,
) -> Outcome:
    """Send `req` to `url` and time it. Never raises (except CancelledError).

    lean: send through this lean HTTP/1.1 client (made for `url`) instead of the
    session (surge.loadgen.http1); streams and kept replies are parsed the same way.
    token_events: streaming sse, the event types that carry tokens."""
    out = Outcome(sent_at=time.monotonic())
    hdrs = headers
    ctype = req.content_type
    if ctype is not None and headers.get("Content-Type") != ctype:
        hdrs = {**headers, "Content-Type": ctype}
    stream = TokenStream(out, streaming, keep_text, token_events) if streaming != "none" else None
    try:
        async with asyncio.timeout(timeout_s):
            if lean is not None:
                await _via_lean(lean, req, hdrs, out, stream, keep_text)
            else:
                await _via_aiohttp(session, url, req, hdrs, out, stream, keep_text)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        out.error, out.detail = classify(exc)
    out.done_at = time.monotonic()
    return out


async def _via_lean(
    lean: LeanClient,
    req: Prepared,
    hdrs: dict[str, str],
    out: Outcome,
    stream: TokenStream | None,
    keep_text: bool,
) -> None:
    kept: list[bytes] | None = [] if keep_text and stream is None else None
    sink = stream.feed if stream is not None else (kept.append if kept is not None else None)
    status = out.status = await lean.request(req.method, hdrs, req.body, sink)
    error = status_error(status)
    if error is not None:
        out.error, out.detail = error, f"HTTP {status}"
    elif stream is not None:
        stream.finish()
    elif kept is not None:
        out.text = _reply_text(b"".join(kept))


async def _via_aiohttp(
    session: aiohttp.ClientSession,
    url: str,
    req: Prepared,
    hdrs: dict[str, str],
    out: Outcome,
    stream: TokenStream | None,
    keep_text: bool,
) -> None:
    async with session.request(
        req.method, url, data=req.body, headers=hdrs, allow_redirects=False
    ) as resp:
        status = out.status = resp.status
        error = status_error(status)
        if error is not None:
            await resp.read()  # the whole response is the latency, as on the lean path
            out.error, out.detail = error, f"HTTP {status}"
        elif stream is None:
            body = await resp.read()
            if keep_text:
                out.text = _reply_text(body)
        else:
            # One feed per network read (not per line): a read usually holds one whole
            # event, and every chunk in it gets the read's arrival time.
            async for data in resp.content.iter_any():
                stream.feed(data)
            stream.finish()


def _reply_text(body: bytes) -> str:
    """The assistant text of a JSON reply: OpenAI chat or completions, Anthropic Messages,
    or {"answer"|"reply"|"text"|"content"|"response": str}."""
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
            if isinstance(choices[0].get("text"), str):
                return str(choices[0]["text"])
        blocks = data.get("content")
        if isinstance(blocks, list):  # Anthropic: [{"type": "text", "text": ...}, ...]
            return "".join(
                str(b["text"])
                for b in blocks
                if isinstance(b, dict) and isinstance(b.get("text"), str)
            )
        for key in ("answer", "reply", "text", "content", "response"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return body.decode(errors="replace")
