"""Hostile streams found by an outside attack on the parser (#27): each is a protocol error
or an ignored count, never a crash, an unbounded buffer or quadratic CPU."""

from __future__ import annotations

import pytest

from surge.loadgen.outcome import Outcome, ProtocolError
from surge.loadgen.streams import MAX_LINE_BYTES, MAX_SEQUENCES, TokenStream


def _stream(shape: str = "openai") -> tuple[TokenStream, Outcome]:
    out = Outcome(sent_at=0.0)
    return TokenStream(out, shape, False), out  # type: ignore[arg-type]


def _feed(s: TokenStream, chunks: list[bytes]) -> None:
    for chunk in chunks:
        s.feed(chunk)


def test_a_line_that_never_ends_is_refused_not_buffered() -> None:
    s, _ = _stream()
    with pytest.raises(ProtocolError, match="stream line"):
        _feed(s, [b"x" * 65536] * (MAX_LINE_BYTES // 65536 + 2))


def test_an_event_of_endless_data_lines_is_refused() -> None:
    s, _ = _stream("sse")
    line = b"data: " + b"y" * 1000 + b"\n"
    with pytest.raises(ProtocolError, match="stream event"):
        _feed(s, [line] * (MAX_LINE_BYTES // 1000 + 2))


def test_deep_json_is_a_protocol_error() -> None:
    s, _ = _stream()
    with pytest.raises(ProtocolError, match="not JSON"):
        s.feed(b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n")


@pytest.mark.parametrize("count", [10**400 // 10**300, -5, 2**60])
def test_a_count_out_of_range_is_no_count(count: int) -> None:
    s, out = _stream()
    s.feed(b'data: {"choices": [], "usage": {"completion_tokens": %d}}\n\n' % count)
    assert out.usage_tokens is None


def test_choices_are_bounded() -> None:
    s, _ = _stream()
    chunk = b'data: {"choices": [{"index": %d, "delta": {"content": "a"}}]}\n\n'
    with pytest.raises(ProtocolError, match="choices"):
        _feed(s, [chunk % i for i in range(MAX_SEQUENCES + 1)])


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": [1, 2.5, "x\\u00e9"], "b": null}',
        b' {"a": 1} ',  # whitespace around the value
        b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 BOM, which json.loads drops
        b'{"a": NaN, "b": -Infinity}',
        b'{"a": 1}{"b": 2}',  # extra data
        b'{"a": "\xff"}',  # not UTF-8
        b'{"a": "tab\tinside"}',  # a control character in a string
        b"[" * 100_000 + b"]" * 100_000,  # past the parser's recursion limit
        b"",
        b"[1]",
    ],
)
def test_chunks_parse_as_json_loads_parses_them(data: bytes) -> None:
    """The direct C-scanner path gives json.loads' value, or the same refusal."""
    import json

    from surge.loadgen.stream_formats import _json

    try:
        want = json.loads(data)
    except (ValueError, RecursionError):
        want = ProtocolError
    if isinstance(want, dict):
        assert repr(_json(data)) == repr(want)  # repr: NaN != NaN
    else:
        with pytest.raises(ProtocolError):
            _json(data)
