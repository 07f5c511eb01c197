"""What each stream format's events mean: tokens, usage, the stream's end, errors.

Each handler takes the parser (surge.loadgen.streams.TokenStream, typed here by the
`Sink` shape so this module imports nothing of it), one event's type and data, and its
arrival time. docs/metrics.md ("Stream shapes") has the same rules as a table.

- openai: chat (`choices[].delta`: `content`, `tool_calls` answer tokens;
  `reasoning_content` / `reasoning` reasoning tokens) and completions
  (`choices[].text`) chunks, told apart by shape; each choice's `index` is its
  sequence (n > 1). Usage from any chunk that has it, the last winning. `[DONE]` ends;
  a chunk with `error` (OpenAI, vLLM, SGLang, llama.cpp) is an error.
- anthropic: Messages events by `type`: `content_block_delta` carries `text_delta`,
  `input_json_delta` (answer) or `thinking_delta` (reasoning); input tokens from
  `message_start` (input + cache creation + cache read), output from `message_delta`
  (cumulative). `message_stop` ends; `error` is an error.
- openai-responses: the Responses API's events by `type`: `response.output_text.delta`,
  `response.refusal.delta` and `response.function_call_arguments.delta` are answer
  tokens, `response.reasoning_text.delta` and `response.reasoning_summary_text.delta`
  reasoning tokens; usage (`output_tokens`, `input_tokens`) from the final response.
  `response.completed` or `response.incomplete` (a limit reached, usage included)
  ends; `response.failed` and `error` are errors.
- ollama: native NDJSON (/api/chat `message.content` / `message.thinking` /
  `message.tool_calls`; /api/generate `response` / `thinking`); `eval_count` and
  `prompt_eval_count` of the final object; `"done": true` ends; `{"error": ...}` is an
  error.
- tgi: native /generate_stream: one token a message (`token.text`; a special token
  counts, its text is not kept), `details.generated_tokens` and `details.input_length`
  when the request asked for details; the message with `generated_text` ends;
  `{"error": ...}` is an error.
- sse: any text/event-stream: an event whose type is a token event and whose data is
  non-empty and not `[DONE]` is one token; an `error` event is an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from surge.loadgen.outcome import Outcome, ProtocolError


class Sink(Protocol):
    """What a handler uses of the parser (surge.loadgen.streams.TokenStream)."""

    out: Outcome
    done: bool
    token_events: frozenset[bytes]

    def token(self, now: float, answer: str | None, index: int = 0) -> None: ...


def brief(value: Any, limit: int = 80) -> str:
    """An error's text for the reason the results show: its message when it has one."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, dict):
        value = value.get("message") or value.get("error") or value
        if isinstance(value, dict):
            value = value.get("message") or value
    return str(value)[:limit]


def _text(value: Any) -> str | None:
    """value when it is a non-empty string."""
    return value if isinstance(value, str) and value else None


MAX_COUNT = 2**53
"""A server's token count beyond this (or below 0) is no count: ignored."""


def _count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT
    return value if ok else None


def _usage(out: Outcome, usage: dict[str, Any], output: str, input_: str | None) -> None:
    """The server's own token counts (each format names them), where it gave whole numbers."""
    n = _count(usage.get(output))
    if n is not None:
        out.usage_tokens = n
    n = _count(usage.get(input_)) if input_ is not None else None
    if n is not None:
        out.input_tokens = n


_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The C scanner json.loads runs inside: called on the decoded text directly, it skips
loads' encoding sniffing and its two whitespace regex matches, a third of a chunk's
parse. Anything but a whole JSON value with nothing around it takes json.loads (the same
value or the same error)."""


def _json(data: bytes) -> dict[str, Any]:
    try:
        try:
            text = data.decode()
            chunk, end = _scan(text, 0)
            if end != len(text):
                raise ValueError("not one value alone")
        except (ValueError, StopIteration):  # UnicodeDecodeError is a ValueError
            chunk = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's limit
        raise ProtocolError(f"stream chunk is not JSON: {data[:40]!r}") from None
    if not isinstance(chunk, dict):
        raise ProtocolError("stream chunk is not a JSON object")
    return chunk


def openai(s: Sink, event: bytes, data: bytes, now: float) -> None:
    if data == b"[DONE]":
        s.done = True
        return
    chunk = _json(data)
    if "error" in chunk or event == b"error":
        raise ProtocolError(f"error in stream: {brief(chunk.get('error', chunk))}")
    usage = chunk.get("usage")
    if usage and isinstance(usage, dict):
        _usage(s.out, usage, "completion_tokens", "prompt_tokens")
    choices = chunk.get("choices")
    if not choices or not isinstance(choices, list):
        return
    for choice in choices:
        if type(choice) is not dict:
            continue
        index = choice.get("index", 0)
        if type(index) is not int:
            index = 0
        delta = choice.get("delta")
        if type(delta) is dict:  # chat.completion.chunk
            answer = delta.get("content")
            if answer and type(answer) is str:
                s.token(now, answer, index)
            elif delta.get("tool_calls"):
                s.token(now, "", index)  # a tool call is the answer of its turn; no text kept
            elif _text(delta.get("reasoning_content")) or _text(delta.get("reasoning")):
                s.token(now, None, index)
        else:  # text_completion chunk
            answer = _text(choice.get("text"))
            if answer is not None:
                s.token(now, answer, index)


def anthropic(s: Sink, event: bytes, data: bytes, now: float) -> None:
    msg = _json(data)
    kind = msg.get("type")
    if kind == "content_block_delta":
        delta = msg.get("delta")
        if not isinstance(delta, dict):
            return
        dtype = delta.get("type")
        if dtype == "text_delta":
            answer = _text(delta.get("text"))
            if answer is not None:
                s.token(now, answer)
        elif dtype == "input_json_delta":
            if _text(delta.get("partial_json")):
                s.token(now, "")
        elif dtype == "thinking_delta" and _text(delta.get("thinking")):
            s.token(now, None)
    elif kind == "message_start":
        message = msg.get("message")
        usage = message.get("usage") if isinstance(message, dict) else None
        if isinstance(usage, dict):
            _anthropic_input(s.out, usage)
    elif kind == "message_delta":
        usage = msg.get("usage")
        if isinstance(usage, dict):
            _usage(s.out, usage, "output_tokens", None)
            if _count(usage.get("input_tokens")) is not None:
                _anthropic_input(s.out, usage)
    elif kind == "message_stop":
        s.done = True
    elif kind == "error" or event == b"error":
        raise ProtocolError(f"error in stream: {brief(msg.get('error', msg))}")


def _anthropic_input(out: Outcome, usage: dict[str, Any]) -> None:
    parts = (
        _count(usage.get(k))
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    out.input_tokens = sum(n for n in parts if n is not None)


_RESPONSES_ANSWER = frozenset(
    (
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
    )
)
_RESPONSES_REASONING = frozenset(
    ("response.reasoning_text.delta", "response.reasoning_summary_text.delta")
)


def responses(s: Sink, event: bytes, data: bytes, now: float) -> None:
    msg = _json(data)
    kind = msg.get("type")
    if not isinstance(kind, str):
        kind = event.decode(errors="replace")
    if kind in _RESPONSES_ANSWER:
        delta = _text(msg.get("delta"))
        if delta is not None:
            s.token(now, "" if kind == "response.function_call_arguments.delta" else delta)
    elif kind in _RESPONSES_REASONING:
        if _text(msg.get("delta")):
            s.token(now, None)
    elif kind in ("response.completed", "response.incomplete"):
        response = msg.get("response")
        usage = response.get("usage") if isinstance(response, dict) else None
        if isinstance(usage, dict):
            _usage(s.out, usage, "output_tokens", "input_tokens")
        s.done = True
    elif kind == "response.failed":
        response = msg.get("response")
        error = response.get("error") if isinstance(response, dict) else None
        raise ProtocolError(f"response.failed in stream: {brief(error or msg)}")
    elif kind == "error":
        raise ProtocolError(f"error in stream: {brief(msg.get('error') or msg)}")


def ollama(s: Sink, event: bytes, data: bytes, now: float) -> None:
    msg = _json(data)
    if "error" in msg:
        raise ProtocolError(f"error in stream: {brief(msg['error'])}")
    message = msg.get("message")
    part = message if isinstance(message, dict) else msg  # /api/chat, /api/generate
    answer = _text(part.get("content") if part is message else msg.get("response"))
    if answer is None and part.get("tool_calls"):
        answer = ""
    if answer is not None:
        s.token(now, answer)
    elif _text(part.get("thinking")):
        s.token(now, None)
    if msg.get("done") is True:
        _usage(s.out, msg, "eval_count", "prompt_eval_count")
        s.done = True


def tgi(s: Sink, event: bytes, data: bytes, now: float) -> None:
    msg = _json(data)
    if "error" in msg:
        raise ProtocolError(f"error in stream: {brief(msg['error'])}")
    token = msg.get("token")
    if isinstance(token, dict):
        text = token.get("text")
        s.token(now, "" if token.get("special") or not isinstance(text, str) else text)
    if msg.get("generated_text") is not None:
        details = msg.get("details")
        if isinstance(details, dict):
            _usage(s.out, details, "generated_tokens", "input_length")
        s.done = True


def generic(s: Sink, event: bytes, data: bytes, now: float) -> None:
    if event == b"error":
        raise ProtocolError(f"error event in stream: {brief(data)}")
    if event in s.token_events and data and data != b"[DONE]":
        s.token(now, data.decode(errors="replace"))
