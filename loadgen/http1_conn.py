"""One HTTP/1.1 connection of the lean client (surge.loadgen.http1): an asyncio protocol
whose responses llhttp (httptools) parses as they arrive, with the body's framing, keep-alive
and Content-Encoding decided by the response (see http1's docstring for what it does)."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import Protocol

import httptools

from surge.loadgen.outcome import ProtocolError

_MAX_HEAD = 64 * 1024


class Disconnected(ConnectionError):
    """The server closed or reset the connection before the response was complete."""


class Waiter(Protocol):
    """What a connection resolves with a response's status: an asyncio Future, or the
    open loop's per-request record (surge.loadgen.dispatch), which calls back instead."""

    def done(self) -> bool: ...

    def set_result(self, result: int, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class Conn(asyncio.Protocol):
    """One connection: an asyncio protocol that feeds llhttp and answers one request
    at a time through `waiter` (the final status; keep-alive in `keep`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: Waiter | None = None
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
        w = self.loop.create_future()
        self.start_with(head_only, sink, w)
        return w

    def start_with(
        self, head_only: bool, sink: Callable[[bytes], None] | None, waiter: Waiter
    ) -> None:
        """start(), resolving `waiter` (no Future: the caller is called back)."""
        self.head_only = head_only
        self.sink = sink
        self.feed = None
        self.error = None
        self.head_bytes = 0
        self.keep = False
        self.headers_done = False
        self.waiter = waiter

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
                self.feed = decoder(self.encoding, self.sink)
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


def decoder(encoding: bytes, sink: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """sink behind a decompressor for Content-Encoding gzip/deflate; b"" ends the body."""
    if encoding in (b"", b"identity"):
        return sink  # every sink takes b"" (streams ignore it): one call less per chunk
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
