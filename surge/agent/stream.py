"""OpenAI chat-completions bodies and stream chunks, as pure functions.

The chunk shapes follow the OpenAI API (`chat.completion.chunk`): a first chunk
with delta.role="assistant" and empty content, one chunk per content token, a
chunk with an empty delta and the finish_reason, then (when the request set
stream_options.include_usage) a chunk with empty choices and the usage, then
`data: [DONE]`. With include_usage every earlier chunk carries "usage": null,
as OpenAI's do.

Tokens are words and punctuation (regex), each with its leading space, so the
content chunks concatenate back to the text; prompt_tokens counts the same way.
No tokenizer is downloaded: clients should take output tokens from `usage`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_TOKEN = re.compile(r"\s*[\w']+|\s*[^\w\s]")

Json = dict[str, Any]


def tokenize(text: str) -> list[str]:
    """Split text into tokens that concatenate back to it (less trailing whitespace)."""
    return _TOKEN.findall(text)


def count_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Tokens in every message's string content (non-string parts are skipped)."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(tokenize(content))
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    total += len(tokenize(part["text"]))
    return total


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def output_tokens(answer: str, n: int) -> list[str]:
    """Exactly n tokens taken from the answer, repeating it when it is shorter."""
    base = tokenize(answer) or ["."]
    out: list[str] = []
    while len(out) < n:
        take = base[: n - len(out)]
        if out and not take[0].startswith(" "):
            take = [" " + take[0], *take[1:]]
        out.extend(take)
    return out


def usage(prompt_tokens: int, completion_tokens: int) -> Json:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _chunk(
    completion_id: str, created: int, model: str, choices: list[Json], *, with_usage: bool
) -> Json:
    chunk: Json = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
    }
    if with_usage:
        chunk["usage"] = None
    return chunk


def role_chunk(completion_id: str, created: int, model: str, *, with_usage: bool) -> Json:
    choice = {
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "logprobs": None,
        "finish_reason": None,
    }
    return _chunk(completion_id, created, model, [choice], with_usage=with_usage)


def content_chunk(
    completion_id: str, created: int, model: str, token: str, *, with_usage: bool
) -> Json:
    choice = {"index": 0, "delta": {"content": token}, "logprobs": None, "finish_reason": None}
    return _chunk(completion_id, created, model, [choice], with_usage=with_usage)


def finish_chunk(
    completion_id: str, created: int, model: str, finish_reason: str, *, with_usage: bool
) -> Json:
    choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason}
    return _chunk(completion_id, created, model, [choice], with_usage=with_usage)


def usage_chunk(
    completion_id: str, created: int, model: str, prompt_tokens: int, completion_tokens: int
) -> Json:
    chunk = _chunk(completion_id, created, model, [], with_usage=False)
    chunk["usage"] = usage(prompt_tokens, completion_tokens)
    return chunk


def completion_body(
    completion_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> Json:
    """A non-streaming `chat.completion` response."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def sse(data: Json | str) -> bytes:
    """One server-sent event: `data: <json>\\n\\n` (or a literal such as [DONE])."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


DONE = sse("[DONE]")
