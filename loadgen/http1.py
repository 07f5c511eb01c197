"""A lean HTTP/1.1 keep-alive client for the worker's plain-request hot path.

Why: per request, aiohttp's ClientSession costs ~70 µs of Python (request object,
connector bookkeeping, header multidicts, response object, stream reader); a raw
asyncio protocol on the same loop does a request in ~8 µs (docs/bench.md). The worker
uses this client for every http:// and https:// target (plain requests, SSE streams,
conversations). https: TLS through the event loop's own transport, verified with
`ssl.create_default_context()` (the system CAs, or SSL_CERT_FILE), as aiohttp does.

What it does: one target (scheme, host, port); a LIFO pool of idle keep-alive
connections, opened on demand (the engine already bounds concurrency: users,
maxInFlight, the connections knob); requests with Host, User-Agent, Accept,
Content-Length and the scenario's headers. Responses are parsed by llhttp (Node's
parser, through httptools, the binding uvicorn uses), fed from `data_received`:
framing by Content-Length, chunked transfer coding, or the connection closing. The
body is read to its last byte (that is the latency); a caller that needs it (streams,
conversation replies) gets it through a sink as llhttp's body callbacks arrive,
de-chunked and gzip/deflate-decoded (no Accept-Encoding is sent unless the scenario
sets one, so servers rarely compress; brotli is a protocol error). 1xx interim
responses are skipped (llhttp reports them as messages of their own). A connection is
reused only after a complete response that llhttp says may keep the connection alive;
a timeout or error closes it, and one idle for KEEPALIVE_IDLE_S is closed rather than
reused (a server's own idle timeout would close it under the next request). Nothing is
retried. A Host header in the scenario replaces the URL's; `user:password@` in the URL
becomes a Basic Authorization header (unless the scenario sets one), as on the aiohttp
path (surge.loadgen.client documents what both send).

Errors, as the classes in surge.loadgen.outcome: OSError from connecting or the
connection closing or resetting before the response is complete (`Disconnected`)
is "connect"; a response llhttp rejects (not HTTP/1.x, malformed) is "protocol"
(`ProtocolError`).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from surge.loadgen.http1_conn import Conn
from surge.loadgen.outcome import KEEPALIVE_IDLE_S
from surge.loadgen.pinned import address_for

_FRAMING = frozenset({"content-length", "transfer-encoding"})  # the client frames the body


def usable(url: str, headers: dict[str, str]) -> bool:
    """Whether this client can send to url with these headers (else use aiohttp)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return not any(
        c in text for k, v in headers.items() for text in (k, v) for c in ("\r", "\n", "\0")
    )


class Http1Client:
    """Sends requests to one URL over a pool of keep-alive connections."""

    def __init__(self, url: str, tls: ssl.SSLContext | None = None) -> None:
        """tls: the context for an https URL (default: verified, the system's CAs)."""
        parts = urlsplit(url)
        assert parts.scheme in ("http", "https") and parts.hostname, url
        self.host = parts.hostname
        https = parts.scheme == "https"
        self.port = parts.port or (443 if https else 80)
        self.tls = (tls or ssl.create_default_context()) if https else None
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        userinfo, _, self.authority = parts.netloc.rpartition("@")
        self.auth: str | None = None
        if userinfo:
            user, _, password = userinfo.partition(":")
            token = f"{unquote(user)}:{unquote(password)}".encode()
            self.auth = "Basic " + base64.b64encode(token).decode("ascii")
        self.idle_s = KEEPALIVE_IDLE_S
        self._idle: list[Conn] = []  # LIFO: the most recently used on top
        self._heads: dict[tuple[str, int], tuple[dict[str, str], bytes]] = {}

    def _head(self, method: str, headers: dict[str, str]) -> bytes:
        """Request line and headers up to Content-Length (cached per headers dict)."""
        key = (method, id(headers))
        got = self._heads.get(key)
        if got is not None and got[0] is headers:
            return got[1]
        lower = {k.lower() for k in headers}
        lines = [f"{method} {self.target} HTTP/1.1"]
        if "host" not in lower:  # the scenario's Host, when it sets one, is the only one
            lines.append(f"Host: {self.authority}")
        if self.auth is not None and "authorization" not in lower:
            lines.append(f"Authorization: {self.auth}")
        if "user-agent" not in lower:
            lines.append("User-Agent: surge-loadgen")
        if "accept" not in lower:
            lines.append("Accept: */*")
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in _FRAMING]
        head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._heads[key] = (headers, head)
        return head

    async def request(
        self,
        method: str,
        headers: dict[str, str],
        body: bytes | None,
        sink: Callable[[bytes], None] | None = None,
    ) -> int:
        """Send one request, read the whole response; returns its status.

        sink: gets the body of a successful (< 400) response as it arrives, de-chunked
        and, for gzip/deflate, decompressed (streams, replies kept for conversations).
        Raises OSError (connect), Disconnected, ProtocolError; CancelledError (a timeout
        around it) closes the connection."""
        conn = self.take()
        if conn is None:
            conn = await self.connect()
        ok = False
        try:
            done = conn.start(method == "HEAD", sink)
            assert conn.transport is not None
            conn.transport.write(self.payload(method, headers, body))
            status = await done
            ok = conn.keep
            return status
        finally:
            self.give(conn, ok)

    def payload(self, method: str, headers: dict[str, str], body: bytes | None) -> bytes:
        """The whole request as written on the wire (the head cached per headers dict)."""
        payload = body or b""
        head = self._head(method, headers)
        if payload or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            head += b"Content-Length: %d\r\n" % len(payload)
        return head + b"\r\n" + payload

    def take(self) -> Conn | None:
        """An idle keep-alive connection (the most recent), or None: connect() then.
        Connections idle for idle_s or more are retired first, oldest first."""
        idle = self._idle
        if not idle:
            return None
        stale = time.monotonic() - self.idle_s
        while idle and idle[0].idle_since <= stale:
            idle.pop(0).close()
        while idle:
            conn = idle.pop()
            if not conn.closed:  # else the server closed it while idle
                return conn
        return None

    async def connect(self) -> Conn:
        """A new connection to the target (raises OSError, ssl.SSLError)."""
        loop = asyncio.get_running_loop()
        name = self.host if self.tls else None
        # The worker's checked address (surge.loadgen.pinned), never a fresh lookup.
        _, conn = await loop.create_connection(
            lambda: Conn(loop),
            address_for(self.host),
            self.port,
            ssl=self.tls,
            server_hostname=name,
        )
        return conn

    def give(self, conn: Conn, ok: bool) -> None:
        """Back to the pool after a complete response that may keep it alive (ok), else
        closed (an error, a timeout, or the server's Connection: close)."""
        if ok and not conn.closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
