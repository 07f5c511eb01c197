"""A lean HTTP/1.1 keep-alive client for the worker's plain-request hot path.

Why: per request, aiohttp's ClientSession costs ~70 µs of Python (request object,
connector bookkeeping, header multidicts, response object, stream reader); a raw
asyncio protocol on the same loop does a request in ~8 µs (docs/bench.md). The worker
uses this client for every `http://` target (plain requests, SSE streams,
conversations); https goes through aiohttp.

What it does: one target (scheme http, host, port); a LIFO pool of idle keep-alive
connections, opened on demand (the engine already bounds concurrency: users,
maxInFlight, the connections knob); requests with Host, User-Agent, Accept,
Content-Length and the scenario's headers; responses framed by Content-Length,
chunked transfer coding, or the connection closing. The body is read to its last
byte (that is the latency); a caller that needs it (streams, conversation replies)
gets it through a sink, de-chunked and gzip/deflate-decoded (no Accept-Encoding is
sent, so servers rarely compress; brotli is a protocol error).
1xx interim responses are skipped. A connection is reused only after a complete
response that did not ask to close; a timeout or error closes it.

Errors, as the classes in surge.loadgen.client: OSError from connecting or the
connection closing or resetting before the response is complete (`Disconnected`)
is "connect"; a response that is not HTTP/1.x is "protocol" (`ProtocolError`).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from urllib.parse import urlsplit

from surge.loadgen.client import ProtocolError

_MAX_HEAD = 64 * 1024


class Disconnected(ConnectionError):
    """The server closed or reset the connection before the response was complete."""


def usable(url: str, headers: dict[str, str]) -> bool:
    """Whether this client can send to url with these headers (else use aiohttp)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    return not any(
        c in text for k, v in headers.items() for text in (k, v) for c in ("\r", "\n", "\0")
    )


class _Conn(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def eof_received(self) -> bool:
        self._lost()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    def _lost(self) -> None:
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def more(self) -> None:
        """Wait for more bytes; raises Disconnected when the connection has closed."""
        if self.closed:
            raise Disconnected("connection closed before the response was complete")
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None
        if self.closed and not self.buf:
            raise Disconnected("connection closed before the response was complete")

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Http1Client:
    """Sends requests to one URL over a pool of keep-alive connections."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.hostname, url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.authority = parts.netloc.rsplit("@", 1)[-1]
        self._idle: list[_Conn] = []
        self._heads: dict[tuple[str, int], tuple[dict[str, str], bytes]] = {}

    def _head(self, method: str, headers: dict[str, str]) -> bytes:
        """Request line and headers up to Content-Length (cached per headers dict)."""
        key = (method, id(headers))
        got = self._heads.get(key)
        if got is not None and got[0] is headers:
            return got[1]
        lines = [f"{method} {self.target} HTTP/1.1", f"Host: {self.authority}"]
        lower = {k.lower() for k in headers}
        if "user-agent" not in lower:
            lines.append("User-Agent: surge-loadgen")
        if "accept" not in lower:
            lines.append("Accept: */*")
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
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
        while self._idle and conn is None:
            conn = self._idle.pop()
            if conn.closed:  # the server closed it while idle
                conn = None
        if conn is None:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(lambda: _Conn(loop), self.host, self.port)
        ok = False
        try:
            assert conn.transport is not None
            payload = body or b""
            head = self._head(method, headers)
            if payload or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                head += b"Content-Length: %d\r\n" % len(payload)
            conn.transport.write(head + b"\r\n" + payload)
            status, keep = await _read_response(conn, method == "HEAD", sink)
            ok = keep
            return status
        finally:
            if ok and not conn.closed:
                self._idle.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


async def _read_response(
    conn: _Conn, head_only: bool, sink: Callable[[bytes], None] | None = None
) -> tuple[int, bool]:
    """(status, reusable) once the last byte of the final response has arrived."""
    buf = conn.buf
    while True:
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            if len(buf) > _MAX_HEAD:
                raise ProtocolError("response head larger than 64 KiB")
            await conn.more()
            end = buf.find(b"\r\n\r\n")
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:40]!r}")
        try:
            status = int(status_line[1])
        except ValueError:
            raise ProtocolError(f"bad status code: {status_line[1][:10]!r}") from None
        if 100 <= status < 200 and status != 101:
            continue  # an interim response (100 Continue, 103 Early Hints)
        break
    length: int | None = None
    chunked = False
    encoding = b""
    keep = status_line[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ProtocolError(f"bad header line: {line[:40]!r}")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise ProtocolError(f"bad Content-Length: {value[:20]!r}") from None
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"content-encoding":
            encoding = value.strip().lower()
        elif name == b"connection":
            v = value.strip().lower()
            keep = (keep and v != b"close") or v == b"keep-alive"
    if head_only or status in (204, 304):
        return status, keep
    feed = _decoder(encoding, sink) if sink is not None and status < 400 else None
    if chunked:
        await _read_chunked(conn, feed)
    elif length is not None:
        left = length
        while left > 0:
            if not buf:
                await conn.more()
                continue
            take = min(len(buf), left)
            if feed is not None:
                feed(bytes(buf[:take]))
            del buf[:take]
            left -= take
    else:
        # Delimited by the close: read until the server closes.
        while True:
            if buf:
                if feed is not None:
                    feed(bytes(buf))
                buf.clear()
            if conn.closed:
                break
            try:
                await conn.more()
            except Disconnected:
                break
        keep = False
    if feed is not None:
        feed(b"")  # end of body: flush a decompressor
    return status, keep


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


async def _read_chunked(conn: _Conn, feed: Callable[[bytes], None] | None) -> None:
    buf = conn.buf
    while True:
        end = buf.find(b"\r\n")
        while end < 0:
            await conn.more()
            end = buf.find(b"\r\n")
        size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size: {size_text[:20]!r}") from None
        if size == 0:
            del buf[: end + 2]
            # Trailers (usually none) end with an empty line.
            while True:
                t = buf.find(b"\r\n")
                while t < 0:
                    await conn.more()
                    t = buf.find(b"\r\n")
                empty = t == 0
                del buf[: t + 2]
                if empty:
                    return
        need = end + 2 + size + 2
        while len(buf) < need:
            await conn.more()
        if feed is not None:
            feed(bytes(buf[end + 2 : end + 2 + size]))
        del buf[:need]
