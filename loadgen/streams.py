"""Stream shapes: a response body read as server-sent events, turned into token timings.

Both client paths feed the same parser (`TokenStream.feed` with body bytes as they
arrive, `finish` at the end), so a stream is timed and counted the same way whichever
client read it. What counts (docs/metrics.md):

- openai: one setting for both OpenAI endpoints, told apart by the chunk's shape. Chat
  chunks (`choices[0].delta`): `content` and `tool_calls` are answer tokens,
  `reasoning_content` / `reasoning` are reasoning tokens. Completions chunks
  (`choices[0].text`): answer tokens. Usage (`completion_tokens`, `prompt_tokens`) from
  any chunk that has it, the last one winning. `[DONE]` ends the stream.
- anthropic: Messages events by their `type`. `content_block_delta` carries tokens:
  `text_delta` and `input_json_delta` (a tool call) are answer tokens, `thinking_delta`
  reasoning. Input tokens from `message_start` (input + cache creation + cache read),
  output tokens from `message_delta` (its count is cumulative; `message_start`'s
  placeholder is not used). `message_start`, `ping` and the block start/stop events
  carry no token. `message_stop` ends the stream.
- sse: any text/event-stream. An event carries a token when its type (the `event:`
  field; "message" when absent, as in the SSE standard) is one of the scenario's
  `sseTokenEvents` and its data is non-empty and not `[DONE]`.

A chunk's time is when the network read that completed its line returned; all chunks
in one read share it (one clock read per read, not per line).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import Any, Literal

from surge.loadgen.outcome import Outcome, ProtocolError

Streaming = Literal["none", "sse", "openai", "anthropic"]
DEFAULT_TOKEN_EVENTS = ("message",)


def _text(value: Any) -> str | None:
    """value when it is a non-empty string."""
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class TokenStream:
    """The SSE parser of one response; it writes token times, usage and text into `out`."""

    __slots__ = ("counted", "done", "event", "out", "parts", "rest", "shape", "token_events")
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
        self.parts: list[str] | None = [] if keep else None
        self.rest = b""
        self.done = False
        self.event = b"message"
        self.counted = False  # sse: this event already gave its token
        self.token_events = frozenset(e.encode() for e in token_events)

    def feed(self, data: bytes) -> None:
        """Body bytes as they arrive (b"" is ignored)."""
        now = self.clock()
        if b"\n" not in data:
            self.rest += data
            return
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for raw in lines:
            self._line(raw, now)

    def finish(self) -> None:
        """The body ended: take a last line without a newline, check the stream ended
        properly, set the first/last token times and the kept text. Raises ProtocolError."""
        out = self.out
        if self.rest:
            self._line(self.rest, self.clock())
            self.rest = b""
        if self.shape != "sse" and not self.done and not out.chunk_times:
            end = "[DONE]" if self.shape == "openai" else "message_stop"
            raise ProtocolError(f"stream ended without a token or {end}")
        if out.chunk_times:
            out.first_token_at = out.chunk_times[0]
            out.last_token_at = out.chunk_times[-1]
        if self.parts is not None:
            out.text = "".join(self.parts)

    def _line(self, raw: bytes, now: float) -> None:
        line = raw.rstrip(b"\r")
        if not line:  # the end of an event
            self.event = b"message"
            self.counted = False
            return
        if line.startswith(b"data:"):
            payload = line[5:]
            if payload[:1] == b" ":
                payload = payload[1:]
            if self.shape == "openai":
                self._openai(payload, now)
            elif self.shape == "anthropic":
                self._anthropic(payload, now)
            else:
                self._generic(payload, now)
        elif line.startswith(b"event:"):
            self.event = line[6:].strip()
        # comments (":"), id: and retry: carry nothing

    def _token(self, now: float, answer: str | None) -> None:
        """A token-bearing chunk at `now`; answer: its answer text (None: reasoning)."""
        out = self.out
        out.chunk_times.append(now)
        if answer is not None:
            if out.first_content_at is None:
                out.first_content_at = now
            if self.parts is not None:
                self.parts.append(answer)

    def _json(self, payload: bytes) -> dict[str, Any]:
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise ProtocolError(f"stream chunk is not JSON: {payload[:60]!r}") from None
        if not isinstance(chunk, dict):
            raise ProtocolError("stream chunk is not a JSON object")
        return chunk

    def _openai(self, payload: bytes, now: float) -> None:
        if payload == b"[DONE]":
            self.done = True
            return
        chunk = self._json(payload)
        if "error" in chunk:
            raise ProtocolError(f"error in stream: {str(chunk['error'])[:80]}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            out = self.out
            n = _count(usage.get("completion_tokens"))
            if n is not None:
                out.usage_tokens = n
            n = _count(usage.get("prompt_tokens"))
            if n is not None:
                out.input_tokens = n
        choices = chunk.get("choices")
        if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
            return
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):  # chat.completion.chunk
            answer = _text(delta.get("content"))
            if answer is None:
                tools = delta.get("tool_calls")
                if isinstance(tools, list) and tools:
                    answer = ""  # a tool call is the answer of its turn; no text to keep
            if answer is not None:
                self._token(now, answer)
            elif _text(delta.get("reasoning_content")) or _text(delta.get("reasoning")):
                self._token(now, None)
        else:  # text_completion chunk
            answer = _text(choice.get("text"))
            if answer is not None:
                self._token(now, answer)

    def _anthropic(self, payload: bytes, now: float) -> None:
        event = self._json(payload)
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta")
            if not isinstance(delta, dict):
                return
            dtype = delta.get("type")
            if dtype == "text_delta":
                answer = _text(delta.get("text"))
                if answer is not None:
                    self._token(now, answer)
            elif dtype == "input_json_delta":
                if _text(delta.get("partial_json")):
                    self._token(now, "")
            elif dtype == "thinking_delta" and _text(delta.get("thinking")):
                self._token(now, None)
        elif kind == "message_start":
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self._anthropic_input(usage)
        elif kind == "message_delta":
            usage = event.get("usage")
            if isinstance(usage, dict):
                n = _count(usage.get("output_tokens"))
                if n is not None:
                    self.out.usage_tokens = n
                if _count(usage.get("input_tokens")) is not None:
                    self._anthropic_input(usage)
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise ProtocolError(f"error in stream: {str(event.get('error'))[:80]}")

    def _anthropic_input(self, usage: dict[str, Any]) -> None:
        parts = (
            _count(usage.get(k))
            for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        self.out.input_tokens = sum(n for n in parts if n is not None)

    def _generic(self, payload: bytes, now: float) -> None:
        if self.event not in self.token_events or not payload or payload == b"[DONE]":
            return
        text = payload.decode(errors="replace")
        if self.counted:  # a further data line of the same event: one token per event
            if self.parts is not None:
                self.parts.append("\n" + text)
            return
        self.counted = True
        self._token(now, text)
