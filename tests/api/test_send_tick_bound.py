"""load.sendTick's bound as Go reads durations: `go_duration_ns` against Go's own
time.ParseDuration (fixed cases, and 2,000 seeded random spellings through the `go`
toolchain the cluster build uses), and the model's check against that bound. The CRD's CEL
rule, which the API server evaluates with the same Go parser, is checked against the model
on the real control plane in tests/e2e/test_send_tick_cel.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from surge.api.bounds import SEND_TICK_NS, SendTick
from surge.api.durations import go_duration_ns
from tests.support.durations import go_reads, spellings, tick_admits

BOUNDS = SEND_TICK_NS
SEED = 29

# What go1.26's time.ParseDuration returned for each (printed by the program above).
GO_SAYS: dict[str, int | None] = {
    "1ms": 1_000_000,
    "0.9999999999ms": 999_999,  # a float64 product, truncated: not 1 ms
    "1.0000000001ms": 1_000_000,
    "9ms1000us": 10_000_000,
    "10.0000009ms": 10_000_000,
    "10.000001ms": 10_000_001,
    "999.9999999999us": 999_999,
    "1.99999999999999999999999ms": 2_000_000,  # fraction digits past int64 are ignored
    "0.00000277777777778h": 10_000_000,
    "0000010ms": 10_000_000,
    "1000µs": 1_000_000,
    "2562047h47m16.854775807s": 2**63 - 1,
    "2562047h47m16.854775808s": None,
    "99999999999999999999us": None,
}


@pytest.mark.parametrize("text", sorted(GO_SAYS))
def test_go_duration_ns_matches_go_on_its_edges(text: str) -> None:
    assert go_duration_ns(text) == GO_SAYS[text]


def test_go_duration_ns_matches_go_on_random_spellings(tmp_path: Path) -> None:
    texts = spellings(SEED, 2000, BOUNDS)
    theirs = [ns for _, ns in go_reads(texts, tmp_path)]
    ours = [go_duration_ns(t) for t in texts]
    differ = [(t, a, b) for t, a, b in zip(texts, ours, theirs, strict=True) if a != b]
    assert not differ, differ[:10]
    # The sample reaches both sides of both bounds, and the truncation cases.
    assert any(n is not None and n < BOUNDS[0] for n in theirs)
    assert any(n is not None and n > BOUNDS[1] for n in theirs)
    assert sum(n in BOUNDS for n in theirs) >= 50


def test_send_tick_admits_exactly_what_go_puts_within_1ms_to_10ms() -> None:
    texts = spellings(SEED + 1, 3000, BOUNDS) + sorted(GO_SAYS)
    wrong = []
    for text in texts:
        ns = go_duration_ns(text)
        if tick_admits(text) != (ns is not None and BOUNDS[0] <= ns <= BOUNDS[1]):
            wrong.append((text, ns))
    assert not wrong, wrong[:10]
    assert (
        tick_admits("9ms1000us")
        and not tick_admits("0.9999999999ms")
        and not tick_admits("10.000001ms")
    )


def test_send_tick_refuses_zero_and_unitless_numbers_with_a_message() -> None:
    for value, words in ((0, "0 is outside 1ms-10ms"), (2, "has no unit"), ("2", "not a duration")):
        with pytest.raises(ValidationError, match=words):
            TypeAdapter(SendTick).validate_python(value)
