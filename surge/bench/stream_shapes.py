"""LLM stream shapes for the stream targets (surge.bench.targets), each an exact timeline.

A shape turns one request into a list of (offset from the request, bytes) writes; the
target writes each at its absolute deadline (`at`), so a late tick never pushes the
later tokens back. What a target was told is the truth the accuracy tests compare with:
the first generated token TTFT after the request, then one token every TPOT, grouped
PER_CHUNK tokens a chunk when asked (chunk j leaves at TTFT + j·PER_CHUNK·TPOT).

- completions TTFT TPOT TOKENS: OpenAI /v1/completions chunks (`choices[0].text`).
- reasoning TTFT TPOT THINK TOKENS [FIELD]: OpenAI chat chunks, THINK reasoning tokens
  (`delta.reasoning_content`, or `delta.reasoning` when FIELD is 1), then TOKENS content
  tokens; completion_tokens counts both.
- chunked TTFT TPOT TOKENS PER_CHUNK USAGE: OpenAI chat chunks of PER_CHUNK tokens each.
- anthropic TTFT TPOT TOKENS: Anthropic Messages events (message_start, ping and the
  block start at once; text deltas; message_delta with the usage; message_stop).

A captured stream (`read_corpus`, tests/loadgen/streams_corpus/) is replayed the same
way: each write at its time, whatever the request.

Usage (OpenAI shapes): USAGE 0 never, 1 always, 2 only when the request body sets
stream_options.include_usage (as OpenAI does); completions and reasoning use 2.
Every usage says PROMPT_TOKENS input tokens.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROMPT_TOKENS = 12
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
Timeline = list[tuple[float, bytes]]
"""(seconds after the request, bytes of the body) in time order."""


def chunk(data: bytes) -> bytes:
    """One chunk of the chunked transfer coding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def at(loop: asyncio.AbstractEventLoop, deadline: float, fn: Any, *args: Any) -> None:
    """Run fn(*args) at the time.monotonic() deadline, at most 0.1 ms before. libuv counts timers
    in whole ms from a cached loop time, so a timer may fire early or late by up to a
    millisecond: an early one re-arms for the rest, which keeps the targets' timing
    (the truth in the accuracy tests) within a fraction of a millisecond. It re-arms
    itself rather than a closure that names itself: such a closure is a reference cycle
    per write, which only the cyclic GC frees, and its full collections held a stream
    target's loop for 11-35 ms at 1,000 streams (ITL p99 67-83 ms for a 50 ms TPOT)."""
    _timer(loop, deadline, 0.0001, 0.0, fn, args)


def at_ms(loop: asyncio.AbstractEventLoop, deadline: float, fn: Any, *args: Any) -> None:
    """at() without sub-millisecond re-arms: never early, up to ~2 ms late. uvloop rounds a
    timer under 1 ms to 0, so at() spins the loop through the last millisecond before a
    deadline: CPU a stream target then reports as used, though it would give it up under
    load (at ~60,000 tokens a second, 0.40 of a core against 0.25). The bench's stream
    ladder judges the target's CPU share, not millisecond truth: it takes this one."""
    _timer(loop, deadline, 0.0, 0.001, fn, args)


def _timer(
    loop: asyncio.AbstractEventLoop, deadline: float, early: float, floor: float, fn: Any, args: Any
) -> None:
    """Both timers: fn(*args) once at most `early` s before the deadline, re-arming for the
    rest (never less than `floor` s) with its arguments, not a closure (no cycle)."""
    rest = deadline - time.monotonic()
    if rest > early:
        loop.call_later(max(rest, floor), _timer, loop, deadline, early, floor, fn, args)
    else:
        fn(*args)


def _event(obj: dict[str, Any], name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _asks_usage(body: bytes) -> bool:
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        return False
    options = doc.get("stream_options") if isinstance(doc, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def _openai_tail(completion: int, usage: bool) -> bytes:
    tail = b""
    if usage:
        counts = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": completion}
        tail = _event({"choices": [], "usage": counts})
    return tail + b"data: [DONE]\n\n"


def _wants(mode: float, body: bytes) -> bool:
    return mode == 1 or (mode == 2 and _asks_usage(body))


def completions(ttft: float, tpot: float, tokens: int) -> Callable[[bytes], Timeline]:
    def shape(body: bytes) -> Timeline:
        out = [
            (ttft + i * tpot, _event({"object": "text_completion", "choices": [{"text": " tok"}]}))
            for i in range(tokens)
        ]
        out[-1] = (out[-1][0], out[-1][1] + _openai_tail(tokens, _wants(2, body)))
        return out

    return shape


def reasoning(
    ttft: float, tpot: float, think: int, tokens: int, field: int = 0
) -> Callable[[bytes], Timeline]:
    key = "reasoning" if field == 1 else "reasoning_content"

    def shape(body: bytes) -> Timeline:
        out: Timeline = [(0.0, _event({"choices": [{"delta": {"role": "assistant"}}]}))]
        for i in range(think + tokens):
            delta = {key: " hmm"} if i < think else {"content": " tok"}
            out.append((ttft + i * tpot, _event({"choices": [{"delta": delta}]})))
        tail = _openai_tail(think + tokens, _wants(2, body))
        out[-1] = (out[-1][0], out[-1][1] + tail)
        return out

    return shape


def chunked(
    ttft: float, tpot: float, tokens: int, per_chunk: int, usage: float
) -> Callable[[bytes], Timeline]:
    def shape(body: bytes) -> Timeline:
        out: Timeline = [(0.0, _event({"choices": [{"delta": {"role": "assistant"}}]}))]
        for j, first in enumerate(range(0, tokens, per_chunk)):
            text = " tok" * min(per_chunk, tokens - first)
            out.append(
                (ttft + j * per_chunk * tpot, _event({"choices": [{"delta": {"content": text}}]}))
            )
        out[-1] = (out[-1][0], out[-1][1] + _openai_tail(tokens, _wants(usage, body)))
        return out

    return shape


def anthropic(ttft: float, tpot: float, tokens: int) -> Callable[[bytes], Timeline]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "content": [],
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1},
        },
    }
    block = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": " tok"},
    }
    end = (
        _event({"type": "content_block_stop", "index": 0}, "content_block_stop")
        + _event(
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
             "usage": {"output_tokens": tokens}},
            "message_delta",
        )
        + _event({"type": "message_stop"}, "message_stop")
    )  # fmt: skip
    opening = (
        _event(start, "message_start")
        + _event(block, "content_block_start")
        + _event({"type": "ping"}, "ping")
    )
    deltas = [(ttft + i * tpot, _event(delta, "content_block_delta")) for i in range(tokens)]

    def shape(body: bytes) -> Timeline:
        out: Timeline = [(0.0, opening), *deltas]
        out[-1] = (out[-1][0], out[-1][1] + end)
        return out

    return shape


def read_corpus(path: str | Path) -> tuple[dict[str, str], Timeline]:
    """A corpus file: its `# key: value` header lines (continuation lines, indented, are
    left out) and its writes. `@MS` starts a write MS milliseconds after the request; the
    lines after it, each with its line end, are its bytes; `# eol: crlf` (or `cr`) turns
    every line end of the writes into CRLF (or a lone CR)."""
    header: dict[str, str] = {}
    timeline: Timeline = []
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    at: float | None = None
    body: list[str] = []
    for line in lines:
        if at is None and line.startswith("#"):
            key, sep, value = line[1:].strip().partition(": ")
            if sep and not line.startswith("#  "):
                header[key] = value
        elif line.startswith("@"):
            if at is not None:
                timeline.append((at, "".join(body).encode()))
            at, body = float(line[1:]) / 1000, []
        elif at is not None:
            body.append(line + "\n")
    if at is not None:
        timeline.append((at, "".join(body).encode()))
    eol = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}[header.get("eol", "lf")]
    if eol != b"\n":
        timeline = [(t, data.replace(b"\n", eol)) for t, data in timeline]
    return header, timeline


SHAPES: dict[str, Callable[..., Callable[[bytes], Timeline]]] = {
    "completions": lambda a: completions(a[0] / 1000, a[1] / 1000, int(a[2])),
    "reasoning": lambda a: reasoning(
        a[0] / 1000, a[1] / 1000, int(a[2]), int(a[3]), int(a[4]) if len(a) > 4 else 0
    ),
    "chunked": lambda a: chunked(a[0] / 1000, a[1] / 1000, int(a[2]), int(a[3]), a[4]),
    "anthropic": lambda a: anthropic(a[0] / 1000, a[1] / 1000, int(a[2])),
}
"""Target kind -> its shape from the command line's numbers (times in ms)."""


def serve_shape(shape: Callable[[bytes], Timeline]) -> Callable[[Any], None]:
    """The target's answer for a shape: the SSE head at once, then the timeline's writes
    at their deadlines, the chunked coding's end after the last."""
    loop = asyncio.get_running_loop()

    def write(p: Any, data: bytes) -> None:
        if p.transport is not None:
            p.transport.write(data)

    def answer(p: Any) -> None:
        t0 = time.monotonic()
        timeline = shape(p.body)
        p.transport.write(SSE_HEAD)
        last = len(timeline) - 1
        for i, (offset, data) in enumerate(timeline):
            payload = chunk(data) + (b"0\r\n\r\n" if i == last else b"")
            if offset <= 0.0:
                write(p, payload)
            else:
                at(loop, t0 + offset, write, p, payload)

    return answer
