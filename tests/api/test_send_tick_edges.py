"""load.sendTick's bound on the spellings a review found (#29): text that Duration reads
but the bound never saw (spaces around it), digits that Python's `\\d` takes and Go's RE2
(the CRD's pattern in the API server) does not, and Go's own uint64 wrap when two parts
are each exactly 2^63 ns. What Go says was printed by go1.26's time.ParseDuration and
regexp (`^(\\d+(\\.\\d+)?(us|µs|ms|s|m|h))+$`); the apiextensions-apiserver v0.36.3
validator (OpenAPI schema, then the CEL rule) admitted the wrap spelling as 5 ms."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from surge.api.bounds import SendTick
from surge.api.durations import DURATION_RE, Duration, go_duration_ns, parse_duration
from tests.support.durations import tick_admits

_TICK = TypeAdapter(SendTick)

# 2^63 ns, written in one part: Go's uint64 sum of two of them wraps to 0.
WRAP = "9223372036.854775808s9223372036.854775808s"


@pytest.mark.parametrize("text", [" 0.5ms", "0.5ms\n", "\t100h", "\u00a0720h", " 11ms "])
def test_spaces_around_an_out_of_bound_tick_do_not_skip_the_bound(text: str) -> None:
    assert not tick_admits(text)


@pytest.mark.parametrize("text", ["٥ms", "５ms", "٢.٥ms", "1٠ms"])
def test_non_ascii_digits_are_not_durations(text: str) -> None:
    # Go's RE2 `\d` is [0-9]: the CRD's pattern refuses these, so the model must too.
    assert DURATION_RE.fullmatch(text) is None
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
    assert not tick_admits(text)


@pytest.mark.parametrize(
    ("text", "go_ns"),
    [
        (WRAP, 0),
        (WRAP + "5ms", 5_000_000),
        ("9223372036854.775808ms9223372036854775.808us2ms", 2_000_000),
        ("9223372036.854775808s", None),  # 2^63 alone: past int64
    ],
)
def test_go_duration_ns_wraps_as_go_does(text: str, go_ns: int | None) -> None:
    assert DURATION_RE.fullmatch(text) and len(text) <= 64
    assert go_duration_ns(text) == go_ns


@pytest.mark.parametrize(
    "text", ["1.5ms" * 200_000, "0" * 62 + "11ms", "1" * 100_000 + "ms", "0" * 39 + "2ms", WRAP]
)
def test_a_tick_over_40_characters_is_refused_for_its_length_in_a_short_message(
    text: str,
) -> None:
    # The CRD's maxLength for sendTick is 40 as well: every wrap spelling needs 45 or more.
    with pytest.raises(ValidationError) as info:
        _TICK.validate_python(text)
    msg = info.value.errors()[0]["msg"]
    assert msg == f"a sendTick of {len(text)} characters; write it as e.g. 2ms (at most 40)"


def test_forty_characters_still_pass_and_spaces_are_refused_with_their_fix() -> None:
    assert tick_admits("0" * 37 + "2ms")
    with pytest.raises(ValidationError) as info:
        _TICK.validate_python(" 2ms")
    assert info.value.errors()[0]["msg"] == "' 2ms' has spaces around it; write it as '2ms'"


@pytest.mark.parametrize(
    ("value", "msg"),
    [
        ("721h", "'721h' is longer than 720h (30 days), the most any duration may be"),
        (True, "True is not a duration; use e.g. 5m or 300s"),
        ("5m ", "'5m ' has spaces around it; write it as '5m'"),
    ],
)
def test_duration_messages_quote_the_text_itself(value: object, msg: str) -> None:
    # pydantic's message templates have no "!r": "{value!r}" was printed as it stands.
    with pytest.raises(ValidationError) as info:
        TypeAdapter(Duration).validate_python(value)
    assert info.value.errors()[0]["msg"] == msg
