"""Streams: a response body read as its format's events, turned into token timings.

Both client paths feed the same parser (`TokenStream.feed` with body bytes as they
arrive, `finish` at the end), so a stream is timed and counted the same way whichever
client read it. This module frames the body into events; what each format's events
mean (tokens, usage, its end, its errors) is surge.loadgen.stream_formats, and the table
in docs/metrics.md ("Stream shapes").

Framing:
- SSE (every shape but ollama), as the WHATWG HTML standard parses text/event-stream:
  lines end with LF, CRLF or a lone CR; a line starting with ":" is a comment; a field
  is `name: value` (one space after the colon dropped; a line without a colon is a
  field with an empty value); consecutive `data:` lines are one event's data, joined
  with LF; `event:` sets the event's type ("message" when absent); `id:` and `retry:`
  are read and ignored (Surge never reconnects); a blank line dispatches the event, if
  it had data. An event still open when the body ends is dispatched too (a lenient
  reading: some servers end with `data: [DONE]` and no blank line). One quirk is not
  standard: an `error:` line (older llama.cpp servers) is an in-stream error.
- NDJSON (ollama): every non-empty line is one event.

A stream is ok only when it ends as its format says a stream ends; anything else raises
ProtocolError, whose message is the reason the results show.

A chunk's time is when the network read that completed its event returned; all events
in one read share it (one clock read per read, not per line).

n > 1 (OpenAI `choices[].index`): each sequence's token times are kept apart
(Outcome.sequences), so each gets its own TTFT, TPOT and ITL samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Literal

from surge.loadgen import stream_formats as formats
from surge.loadgen.outcome import Outcome, ProtocolError

Streaming = Literal["none", "sse", "openai", "anthropic", "openai-responses", "ollama", "tgi"]
DEFAULT_TOKEN_EVENTS = ("message",)
MAX_LINE_BYTES = 1 << 20
"""A line (or an event's joined data) longer than this is a protocol error: an unfinished
line is rescanned at each read, so an endless one would cost quadratic CPU on the loop that
times every other request."""
MAX_SEQUENCES = 128
"""Distinct choice indices (n) one stream may carry."""
_BOM = b"\xef\xbb\xbf"
_HANDLERS: dict[str, Callable[[formats.Sink, bytes, bytes, float], None]] = {
    "openai": formats.openai,
    "anthropic": formats.anthropic,
    "openai-responses": formats.responses,
    "ollama": formats.ollama,
    "tgi": formats.tgi,
    "sse": formats.generic,
}
_ENDS = {
    "openai": "data: [DONE]",
    "anthropic": "message_stop",
    "openai-responses": "response.completed",
    "ollama": '"done": true',
    "tgi": "a final message with generated_text",
}


class TokenStream:
    """The parser of one response; it writes token times, usage and text into `out`."""

    __slots__ = (
        "data",
        "done",
        "event",
        "handle",
        "ndjson",
        "out",
        "parts",
        "rest",
        "seqs",
        "shape",
        "token_events",
    )
    clock = staticmethod(time.monotonic)  # a test sets its own

    def __init__(
        self,
        out: Outcome,
        shape: Streaming,
        keep: bool,
        token_events: Collection[str] = DEFAULT_TOKEN_EVENTS,
    ) -> None:
        self.out = out
        self.shape = shape
        self.handle = _HANDLERS[shape]
        self.ndjson = shape == "ollama"
        self.parts: list[str] | None = [] if keep else None
        self.rest = b""
        self.done = shape == "sse"  # a generic stream ends with its body
        self.event = b""  # the open event's type; "" is "message"
        self.data: bytes | None = None  # the open event's data (None: no data field yet)
        self.seqs: dict[int, list[float]] | None = None  # n > 1: times by choice index
        self.token_events = frozenset(e.encode() for e in token_events)

    def feed(self, data: bytes) -> None:
        """Body bytes as they arrive (b"" is ignored). Raises ProtocolError."""
        now = self.clock()
        if self.rest:
            data = self.rest + data
        if data.find(b"\r") >= 0:  # find, not `in`: a third of the cost on bytes
            data = _lf(data)
        lines = data.split(b"\n")
        self.rest = lines.pop()
        if len(self.rest) > MAX_LINE_BYTES:
            raise ProtocolError(f"a stream line of over {MAX_LINE_BYTES:,} bytes")
        if lines:
            self._lines(lines, now)

    def finish(self) -> None:
        """The body ended: take a last line without a newline and an event still open,
        check the stream ended as its format says, set the first/last token times and
        the kept text. Raises ProtocolError."""
        out = self.out
        now = self.clock()
        if self.rest:
            rest, self.rest = self.rest.rstrip(b"\r"), b""
            self._lines(rest.replace(b"\r", b"\n").split(b"\n"), now)
        if self.data is not None:
            self._lines([b""], now)  # dispatch the open event
        if not self.done:
            raise ProtocolError(f"stream ended before {_ENDS[self.shape]}")
        if out.chunk_times:
            out.first_token_at = out.chunk_times[0]
            out.last_token_at = out.chunk_times[-1]
        if self.seqs is not None and len(self.seqs) > 1:
            out.sequences = [self.seqs[i] for i in sorted(self.seqs)]
        if self.parts is not None:
            out.text = "".join(self.parts)

    def _lines(self, lines: list[bytes], now: float) -> None:
        """Whole lines (without their line ends). The hot path: `data:` lines and the blank
        line that dispatches are handled inline, the rare fields by `_field`."""
        handle = self.handle
        if self.ndjson:
            for line in lines:
                if line.strip():
                    handle(self, b"message", line, now)
            return
        data, event = self.data, self.event  # the open event, in locals for the loop
        for line in lines:
            if line[:5] == b"data:":
                value = line[6:] if line[5:6] == b" " else line[5:]
                # A multi-line event is joined, and bounded: each join copies it.
                data = value if data is None else _joined(data, value)
            elif not line:  # the end of an event: dispatch it if it had data
                if data is not None:
                    handle(self, event or b"message", data, now)
                    data = None
                event = b""
            elif line[:1] != b":":  # not a comment
                data, event = _field(line, data, event)
        self.data, self.event = data, event

    def token(self, now: float, answer: str | None, index: int = 0) -> None:
        """A token-bearing chunk at `now`; answer: its answer text (None: reasoning);
        index: its sequence (OpenAI's choice index)."""
        out = self.out
        out.chunk_times.append(now)
        if index or self.seqs is not None:
            self._sequence(now, index)
        if answer is not None:
            if out.first_content_at is None:
                out.first_content_at = now
            if self.parts is not None and not index:  # history: the first sequence
                self.parts.append(answer)

    def _sequence(self, now: float, index: int) -> None:
        seqs = self.seqs
        if seqs is None:  # every token so far (all but this one) was sequence 0's
            before = self.out.chunk_times[:-1]
            seqs = self.seqs = {0: before} if before else {}
        times = seqs.get(index)
        if times is None:
            if len(seqs) >= MAX_SEQUENCES:
                raise ProtocolError(f"more than {MAX_SEQUENCES} choices (index {index})")
            times = seqs[index] = []
        times.append(now)


def _joined(data: bytes, value: bytes) -> bytes:
    """An event's data with one more `data:` line, within MAX_LINE_BYTES."""
    if len(data) + len(value) >= MAX_LINE_BYTES:
        raise ProtocolError(f"a stream event of over {MAX_LINE_BYTES:,} bytes")
    return data + b"\n" + value


def _field(line: bytes, data: bytes | None, event: bytes) -> tuple[bytes | None, bytes]:
    """A field other than `data: value` (`name: value`, or a name alone): the open event's
    (data, type) after it. Raises ProtocolError on an `error:` line."""
    name, _, value = line.partition(b":")
    if name[:3] == _BOM:  # before the first line (only there: the hot path never looks)
        name = name[3:]
    if value[:1] == b" ":
        value = value[1:]
    if name == b"event":
        return data, value
    if name == b"data":  # `data` alone, or `data` with no space after its colon
        return (value if data is None else _joined(data, value)), event
    if name == b"error":  # not SSE: older llama.cpp servers' error line
        raise ProtocolError(f"error line in stream: {formats.brief(value)}")
    return data, event  # id, retry and unknown fields: nothing to Surge (no reconnects)


def _lf(data: bytes) -> bytes:
    """CRLF and lone CR line ends as LF; a CR at the very end stays (its LF may follow in
    the next read, and CRLF is one line end, not two)."""
    tail = b"\r" if data.endswith(b"\r") else b""
    if tail:
        data = data[:-1]
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
