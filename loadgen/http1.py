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
import zlib
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import httptools

from surge.loadgen.outcome import KEEPALIVE_IDLE_S, ProtocolError
from surge.loadgen.pinned import address_for

_MAX_HEAD = 64 * 1024
_FRAMING = frozenset({"content-length", "transfer-encoding"})  # the client frames the body


class Disconnected(ConnectionError):
    """The server closed or reset the connection before the response was complete."""


def usable(url: str, headers: dict[str, str]) -> bool:
    """Whether this client can send to url with these headers (else use aiohttp)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return not any(
        c in text for k, v in headers.items() for text in (k, v) for c in ("\r", "\n", "\0")
    )


class _Conn(asyncio.Protocol):
    """One connection: an asyncio protocol that feeds llhttp and answers one request
    at a time through `waiter` (the final status; keep-alive in `keep`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.keep = False
        self.idle_since = 0.0  # monotonic time it went back to the pool
        # Per request / per message (see start and on_message_begin).
        self.head_only = False
        self.sink: Callable[[bytes], None] | None = None
        self.feed: Callable[[bytes], None] | None = None
        self.error: BaseException | None = None
        self.head_bytes = 0
        self.header_bytes = 0
        self.status = 0
        self.headers_done = False
        self.framed = False
        self.encoding = b""

    def start(self, head_only: bool, sink: Callable[[bytes], None] | None) -> asyncio.Future[int]:
        """Expect the response to a request about to be written."""
        self.head_only = head_only
        self.sink = sink
        self.feed = None
        self.error = None
        self.head_bytes = 0
        self.keep = False
        self.headers_done = False
        self.waiter = w = self.loop.create_future()
        return w

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # 101 Switching Protocols: the response is complete (on_message_complete
            # ran, keep is False); what follows is another protocol.
            self.close()
            return
        except httptools.HttpParserError as exc:
            self._fail(self.error or ProtocolError(f"malformed HTTP response: {exc}"))
            return
        if not self.headers_done and self.waiter is not None:
            self.head_bytes += len(data)
            if self.head_bytes > _MAX_HEAD:
                self._fail(ProtocolError("response head larger than 64 KiB"))

    def eof_received(self) -> bool:
        self._lost()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    # llhttp callbacks (httptools calls them from feed_data)

    def on_message_begin(self) -> None:
        if self.waiter is None:
            raise ProtocolError("data after the response")
        self.headers_done = False
        self.framed = False
        self.encoding = b""
        self.header_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp has no size limit: data_received bounds a head read in pieces, this one.
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > _MAX_HEAD:
            self.error = ProtocolError("response head larger than 64 KiB")
            raise self.error
        n = name.lower()
        if n == b"content-length":
            self.framed = True
        elif n == b"transfer-encoding":
            self.framed = self.framed or b"chunked" in value.lower()
        elif n == b"content-encoding":
            self.encoding = value.strip().lower()

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # an interim response (100 Continue, 103 Early Hints): skipped
        self.status = status
        self.headers_done = True
        if self.head_only:
            # A HEAD response has no body whatever its headers say; httptools cannot
            # tell llhttp so, hence a fresh parser for the next request.
            keep = self.parser.should_keep_alive() and self.framed
            self.parser = httptools.HttpResponseParser(self)
            self._finish(keep)
            return
        if self.sink is not None and status < 300:
            try:
                self.feed = _decoder(self.encoding, self.sink)
            except BaseException as exc:
                self.error = exc
                raise

    def on_body(self, body: bytes) -> None:
        feed = self.feed
        if feed is not None:
            try:
                feed(body)
            except BaseException as exc:
                self.error = exc
                raise

    def on_message_complete(self) -> None:
        if not self.headers_done or self.waiter is None:
            return  # the end of an interim response (or of a HEAD's, already done)
        feed = self.feed
        if feed is not None:
            try:
                feed(b"")  # end of body: flush a decompressor
            except BaseException as exc:
                self.error = exc
                raise
        self._finish(self.status != 101 and self.parser.should_keep_alive())

    def _finish(self, keep: bool) -> None:
        w = self.waiter
        self.waiter = None
        self.keep = keep
        if w is not None and not w.done():
            w.set_result(self.status)

    def _fail(self, exc: BaseException) -> None:
        w = self.waiter
        self.waiter = None
        self.close()
        if w is not None and not w.done():
            w.set_exception(exc)

    def _lost(self) -> None:
        self.closed = True
        if self.waiter is None:
            return
        if self.headers_done and not self.framed:
            # Delimited by the close. httptools has no llhttp_finish(), so llhttp never
            # reports this message complete: the end of the stream after the headers
            # of a response with neither Content-Length nor chunked coding ends it.
            if self.feed is not None:
                try:
                    self.feed(b"")
                except BaseException as exc:
                    self._fail(exc)
                    return
            self._finish(False)
        else:
            self._fail(Disconnected("connection closed before the response was complete"))

    def close(self) -> None:
        self.closed = True
        self.waiter = None
        if self.transport is not None:
            self.transport.close()


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
        self._idle: list[_Conn] = []  # LIFO: the most recently used on top
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
        conn = None
        idle = self._idle
        if idle:
            stale = time.monotonic() - self.idle_s
            # Retire what idled too long, oldest first (the bottom of the stack).
            while idle and idle[0].idle_since <= stale:
                idle.pop(0).close()
            while idle and conn is None:
                conn = idle.pop()
                if conn.closed:  # the server closed it while idle
                    conn = None
        if conn is None:
            loop = asyncio.get_running_loop()
            name = self.host if self.tls else None
            # The worker's checked address (surge.loadgen.pinned), never a fresh lookup.
            _, conn = await loop.create_connection(
                lambda: _Conn(loop),
                address_for(self.host),
                self.port,
                ssl=self.tls,
                server_hostname=name,
            )
        ok = False
        try:
            assert conn.transport is not None
            payload = body or b""
            head = self._head(method, headers)
            if payload or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                head += b"Content-Length: %d\r\n" % len(payload)
            done = conn.start(method == "HEAD", sink)
            conn.transport.write(head + b"\r\n" + payload)
            status = await done
            ok = conn.keep
            return status
        finally:
            if ok and not conn.closed:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _decoder(encoding: bytes, sink: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """sink behind a decompressor for Content-Encoding gzip/deflate; b"" ends the body."""
    if encoding in (b"", b"identity"):
        return lambda data: sink(data) if data else None
    if encoding in (b"gzip", b"x-gzip", b"deflate"):
        wbits = 16 + zlib.MAX_WBITS if encoding != b"deflate" else zlib.MAX_WBITS
        dec = zlib.decompressobj(wbits)

        def feed(data: bytes) -> None:
            try:
                out = dec.decompress(data) if data else dec.flush()
            except zlib.error as exc:
                raise ProtocolError(f"bad {encoding.decode()} body: {exc}") from None
            if out:
                sink(out)

        return feed
    raise ProtocolError(f"unsupported Content-Encoding {encoding[:20]!r}")
