"""OpenAI chunk builders: shapes as OpenAI sends them, tokens that add up."""

from __future__ import annotations

import json
from typing import Any

import pytest

from surge.agent import stream


def test_tokenize_round_trips() -> None:
    text = "Returns are free, within 30 days. Isn't that nice?"
    tokens = stream.tokenize(text)
    assert "".join(tokens) == text
    assert tokens[:3] == ["Returns", " are", " free"]


@pytest.mark.parametrize("n", [1, 5, 40, 200])
def test_output_tokens_has_exact_length(n: int) -> None:
    tokens = stream.output_tokens("Short answer.", n)
    assert len(tokens) == n
    assert all(t for t in tokens)
    # A repeated answer stays readable: a space before the repeat.
    assert "answer. Short" in "".join(stream.output_tokens("Short answer.", 5))


def test_prompt_tokens_and_last_user_text() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "Which one?"},
        {"role": "user", "content": [{"type": "text", "text": "The last one"}]},
    ]
    assert stream.count_prompt_tokens(messages) == 3 + 5 + 3 + 3
    assert stream.last_user_text(messages) == "The last one"
    assert stream.last_user_text([]) == ""


def test_chunk_shapes() -> None:
    role = stream.role_chunk("c1", 1, "m", with_usage=True)
    assert role["object"] == "chat.completion.chunk"
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert role["usage"] is None
    content = stream.content_chunk("c1", 1, "m", " hi", with_usage=False)
    assert content["choices"][0]["delta"] == {"content": " hi"}
    assert "usage" not in content
    finish = stream.finish_chunk("c1", 1, "m", "length", with_usage=False)
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    usage = stream.usage_chunk("c1", 1, "m", 7, 3)
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_sse_framing() -> None:
    assert stream.DONE == b"data: [DONE]\n\n"
    frame = stream.sse({"a": 1})
    assert frame.startswith(b"data: ")
    assert frame.endswith(b"\n\n")
    assert json.loads(frame[6:]) == {"a": 1}


def test_completion_body() -> None:
    body = stream.completion_body("c1", 1, "m", "Hello.", "stop", 4, 2)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello."}
    assert body["usage"]["total_tokens"] == 6
