"""Stream shapes: what counts as a token, which token is the first answer token, where the
counts come from. The parser is fed bytes directly, one `feed` per simulated network
read, with a fake clock so every chunk's time is known."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from surge.api.loadtest import Scenario as ScenarioSpec
from surge.loadgen.outcome import Outcome, ProtocolError
from surge.loadgen.scenario import Scenario, with_details_request, with_usage_request
from surge.loadgen.streams import Streaming, TokenStream


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The parser's clock: the test sets now[0] before each read."""
    now = [0.0]
    monkeypatch.setattr(TokenStream, "clock", staticmethod(lambda: now[0]))
    return now


def parse(
    reads: Sequence[tuple[float, bytes]],
    shape: Streaming,
    clock: list[float],
    *,
    events: Sequence[str] = ("message",),
) -> Outcome:
    out = Outcome(sent_at=0.0)
    stream = TokenStream(out, shape, True, events)
    for at, data in reads:
        clock[0] = at
        stream.feed(data)
    stream.finish()
    return out


def sse(obj: dict[str, Any] | str, event: str | None = None) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return (f"event: {event}\n" if event else "").encode() + f"data: {data}\n\n".encode()


def chat(**delta: Any) -> bytes:
    return sse({"choices": [{"index": 0, "delta": delta}]})


USAGE = sse({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9}})


def test_reasoning_tokens_set_ttft_and_content_tokens_the_first_answer(clock: list[float]) -> None:
    out = parse(
        [
            (0.01, chat(role="assistant", content="")),
            (0.10, chat(reasoning_content="think")),
            (0.12, chat(reasoning="more")),  # the other servers' field name
            (0.14, chat(content="Hello")),
            (0.16, chat(content=" world") + USAGE + b"data: [DONE]\n\n"),
        ],
        "openai",
        clock,
    )
    assert out.chunk_times == [0.10, 0.12, 0.14, 0.16]
    assert out.first_token_at == 0.10 and out.first_content_at == 0.14
    assert out.last_token_at == 0.16
    assert (out.usage_tokens, out.input_tokens, out.output_tokens) == (9, 7, 9)
    assert out.text == "Hello world"  # the answer only: reasoning is not history


def test_tool_call_deltas_are_answer_tokens(clock: list[float]) -> None:
    call = [{"index": 0, "id": "c1", "function": {"name": "lookup", "arguments": ""}}]
    out = parse(
        [(0.2, chat(tool_calls=call)), (0.3, chat(tool_calls=[{"index": 0}]) + b"data: [DONE]\n")],
        "openai",
        clock,
    )
    assert out.chunk_times == [0.2, 0.3] and out.first_content_at == 0.2
    assert out.usage_tokens is None and out.output_tokens == 2  # counted as chunks


def test_completions_chunks_are_told_apart_by_shape(clock: list[float]) -> None:
    def text(t: str) -> bytes:
        return sse({"object": "text_completion", "choices": [{"index": 0, "text": t}]})

    out = parse(
        [
            (0.1, text("Once")),
            (0.2, text("")),
            (0.3, text(" upon") + USAGE),
            (0.4, b"data: [DONE]"),
        ],
        "openai",
        clock,
    )
    assert out.chunk_times == [0.1, 0.3]  # an empty text is no token
    assert out.first_content_at == 0.1 and out.output_tokens == 9 and out.text == "Once upon"


def test_anthropic_messages(clock: list[float]) -> None:
    start = {
        "type": "message_start",
        "message": {
            "usage": {
                "input_tokens": 5,
                "cache_creation_input_tokens": 2,
                "cache_read_input_tokens": 3,
                "output_tokens": 1,
            }
        },
    }

    def delta(kind: str, **fields: str) -> bytes:
        body = {"type": "content_block_delta", "index": 0, "delta": {"type": kind, **fields}}
        return sse(body, "content_block_delta")

    out = parse(
        [
            (0.01, sse(start, "message_start") + sse({"type": "ping"}, "ping")),
            (0.10, delta("thinking_delta", thinking="hmm")),
            (0.11, delta("signature_delta", signature="abc")),  # no token
            (0.20, delta("text_delta", text="Hi")),
            (0.30, delta("input_json_delta", partial_json='{"q":')),
            (
                0.40,
                sse({"type": "message_delta", "usage": {"output_tokens": 17}}, "message_delta")
                + sse({"type": "message_stop"}, "message_stop"),
            ),
        ],
        "anthropic",
        clock,
    )
    assert out.chunk_times == [0.10, 0.20, 0.30]
    assert out.first_token_at == 0.10 and out.first_content_at == 0.20
    assert out.usage_tokens == 17  # message_delta's count, not message_start's placeholder 1
    assert out.input_tokens == 10  # input + cache creation + cache read
    assert out.text == "Hi"


def test_generic_sse_counts_only_the_token_events(clock: list[float]) -> None:
    reads = [
        (0.01, sse({"type": "message_start"}, "message_start") + sse({"type": "ping"}, "ping")),
        (0.10, sse("Hel") + b": a comment\n\n"),
        (0.20, b"data: lo\ndata: again\n\n"),  # one event of two data lines: one token
        (0.30, sse("[DONE]")),
    ]
    out = parse(reads, "sse", clock)
    assert out.chunk_times == [0.10, 0.20]  # message_start and ping set no TTFT
    assert out.text == "Hello\nagain"
    named = parse(reads, "sse", clock, events=("ping",))
    assert named.chunk_times == [0.01]


@pytest.mark.parametrize(
    ("shape", "body", "message"),
    [
        ("openai", b"data: not json\n\n", "not JSON"),
        ("openai", b'data: {"error": {"message": "overloaded"}}\n\n', "overloaded"),
        ("openai", b": only a comment\n\n", r"ended before data: \[DONE\]"),
        ("anthropic", b'data: {"type": "error", "error": {"type": "overloaded"}}\n\n', "overload"),
        ("anthropic", b'data: {"type": "ping"}\n\n', "ended before message_stop"),
    ],
)
def test_broken_streams_are_protocol_errors(
    clock: list[float], shape: Streaming, body: bytes, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse([(0.1, body)], shape, clock)


def test_a_token_split_across_reads_gets_the_time_of_the_read_that_completes_it(
    clock: list[float],
) -> None:
    whole = chat(content="a")
    done = b"data: [DONE]\n\n"
    out = parse(
        [(0.1, whole[:20]), (0.2, whole[20:-3]), (0.3, whole[-3:]), (0.4, done)], "openai", clock
    )
    assert out.chunk_times == [0.3]


def test_surge_asks_for_usage_unless_told_not_to() -> None:
    body = {"model": "m", "stream": True, "messages": []}
    assert with_usage_request(body)["stream_options"] == {"include_usage": True}
    theirs = {**body, "stream_options": {"include_usage": False}}
    assert with_usage_request(theirs) is theirs  # the body's own choice stands
    merged = with_usage_request({**body, "stream_options": {"continuous_usage_stats": True}})
    assert merged["stream_options"] == {"continuous_usage_stats": True, "include_usage": True}
    assert with_usage_request({"stream": False}) == {"stream": False}  # OpenAI refuses it then

    def sent(**fields: Any) -> dict[str, Any]:
        spec = ScenarioSpec.model_validate({"body": body, **fields})
        req = Scenario(spec).single()
        assert req.body is not None
        result: dict[str, Any] = json.loads(req.body)
        return result

    assert sent(streaming="openai")["stream_options"] == {"include_usage": True}
    # TGI's /generate_stream sends generated_tokens only when asked for details.
    assert sent(streaming="tgi")["parameters"] == {"details": True}
    theirs_tgi = {**body, "parameters": {"details": False, "max_new_tokens": 8}}
    assert with_details_request(theirs_tgi) is theirs_tgi
    assert "parameters" not in sent(streaming="tgi", includeUsage=False)
    assert "stream_options" not in sent(streaming="openai", includeUsage=False)
    assert "stream_options" not in sent(streaming="anthropic")


def test_sse_token_events_are_checked() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="sseTokenEvents applies to streaming: sse"):
        ScenarioSpec.model_validate({"streaming": "openai", "sseTokenEvents": ["token"]})
    with pytest.raises(ValidationError, match="sseTokenEvents"):
        ScenarioSpec.model_validate({"streaming": "sse", "sseTokenEvents": ["two words"]})
    ok = ScenarioSpec.model_validate({"streaming": "sse", "sseTokenEvents": ["token"]})
    assert ok.sse_token_events == ["token"]


def test_choices_of_n_greater_than_one_are_timed_apart(clock: list[float]) -> None:
    def choice(i: int, text: str) -> bytes:
        return sse({"choices": [{"index": i, "delta": {"content": text}}]})

    out = parse(
        [
            (0.1, choice(0, "a") + choice(1, "x")),
            (0.2, choice(1, "y")),
            (0.3, choice(0, "b") + b"data: [DONE]\n\n"),
        ],
        "openai",
        clock,
    )
    assert out.chunk_times == [0.1, 0.1, 0.2, 0.3]  # every sequence's tokens
    assert out.sequences == [[0.1, 0.3], [0.1, 0.2]]  # in index order
    assert out.text == "ab"  # history: the first choice
    single = parse(
        [(0.1, choice(0, "a")), (0.2, choice(0, "b") + b"data: [DONE]")], "openai", clock
    )
    assert single.sequences is None


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_sse_fields_as_the_standard_reads_them(clock: list[float], eol: bytes) -> None:
    body = (
        b"\xef\xbb\xbf: a comment\n\n"  # a byte order mark, then a comment
        b"retry: 3000\nid: 7\n\n"  # no data: no event
        b"event: token\ndata:one\ndata\ndata:  two\n\n"  # no space, no colon, two spaces
        b"data: plain\n\n"  # the type is back to message
        b"event: token\ndata: last"  # open at the end of the body: still read
    ).replace(b"\n", eol)
    out = parse([(0.1, body[:9]), (0.2, body[9:])], "sse", clock, events=("token",))
    assert out.text == "one\n\n two" + "last"
    assert out.chunk_times == [0.2, 0.2]


def test_a_crlf_split_between_reads_is_one_line_end(clock: list[float]) -> None:
    reads = [(0.1, b"data: a\r"), (0.2, b"\ndata: b\r\n\r"), (0.3, b"\n")]
    out = parse(reads, "sse", clock)
    assert out.text == "a\nb"  # one event of two data lines, not two events
    assert out.chunk_times == [0.3]


@pytest.mark.parametrize(
    ("shape", "body", "message"),
    [
        (
            "openai",
            b'data: {"choices":[{"delta":{"content":"a"}}]}\n\nerror: {"message":"KV"}\n\n',
            "error line in stream: .*KV",
        ),
        ("sse", b"data: a\n\nerror: boom\n\n", "error line in stream: boom"),
        ("sse", b"data: a\n\nevent: error\ndata: boom\n\n", "error event in stream: boom"),
        ("openai", b'event: error\ndata: {"message": "bad"}\n\n', "error in stream"),
        ("ollama", b'{"response":"a","done":false}\n', 'ended before "done": true'),
        ("tgi", b'data:{"token":{"text":"a"},"generated_text":null}\n\n', "generated_text"),
        (
            "openai-responses",
            b'data: {"type":"error","message":"rate"}\n\n',
            "error in stream: rate",
        ),
    ],
)
def test_in_stream_errors_and_unended_streams(
    clock: list[float], shape: Streaming, body: bytes, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse([(0.1, body)], shape, clock)


def test_error_reasons_are_bounded() -> None:
    from surge.loadgen.outcome import MAX_REASONS, OTHER_REASON, merge_reasons, tally_reason

    tally: dict[str, int] = {}
    for i in range(MAX_REASONS + 5):
        tally_reason(tally, f"protocol: reason {i}", 2)
    assert len(tally) == MAX_REASONS + 1 and tally[OTHER_REASON] == 10
    merged = merge_reasons([tally, {"timeout: timed out": 30}])
    assert next(iter(merged)) == "timeout: timed out" and len(merged) == MAX_REASONS + 1
    assert sum(merged.values()) == sum(tally.values()) + 30
    # On the wire (JSON and the compact termination message) and through a merge.
    from surge.loadgen.summary import WorkerSummary, compact, merge, parse_summary

    one = WorkerSummary(reasons={"protocol: stream ended before message_stop": 3})
    back = parse_summary(compact(one))
    assert back is not None and back.reasons == one.reasons
    assert merge([one, back]).reasons == {"protocol: stream ended before message_stop": 6}
    assert "reasons" not in WorkerSummary().to_json()  # absent when nothing failed
