"""A second differential of load.sendTick against Go (#29), with a generator unlike
tests/support/durations.py's: strings built from random parts (runs of random digits,
all-9s, leading zeros, 0-30 fraction digits, 1-6 parts, each in a random unit), half of
them sums split near 1 ms or 10 ms, some after two parts of exactly 2^63 ns. Go (the
`go` toolchain, as the Makefile finds it) prints, per string, whether the CRD's pattern
matches under its RE2 and what time.ParseDuration returns; the API server admits a tick
when both pass, it is at most 40 characters (the field's maxLength) and within 1ms-10ms
(its CEL rule)."""

from __future__ import annotations

import random
from pathlib import Path

from surge.api.bounds import SEND_TICK_CHARS, SEND_TICK_NS
from surge.api.durations import DURATION_RE, go_duration_ns
from tests.support.durations import go_reads, tick_admits

SEED, COUNT = 4242, 4000
BOUNDS = SEND_TICK_NS
UNIT_NS = {"us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
TWO_TO_63 = ["9223372036.854775808s", "9223372036854.775808ms", "9223372036854775.808us"]
# Not the pattern under RE2 (ASCII \d, no ns, no U+03BC mu), or not whole.
OFF_PATTERN = ["٥ms", "５ms", "1٠ms", "1μs", "1ns", "1.ms", ".5ms", " 2ms", "2ms\t", "2", ""]


def _digits(rng: random.Random) -> str:
    n = rng.choice([1, 2, 4, 8, 19, 20, 25])
    kind = rng.randrange(4)
    if kind == 0:
        return "0" * (n - 1) + rng.choice("123456789")
    if kind == 1:
        return "9" * n
    return "".join(rng.choice("0123456789") for _ in range(n))


def _parts(rng: random.Random) -> str:
    out = ""
    for _ in range(rng.choice([1, 1, 2, 3, 4, 6])):
        frac = "." + _digits(rng)[: rng.choice([1, 3, 9, 30])] if rng.random() < 0.6 else ""
        out += _digits(rng) + frac + rng.choice(list(UNIT_NS))
    return out


def _near(rng: random.Random) -> str:
    total = rng.choice(BOUNDS) + rng.choice([0, 0, 1, -1, rng.randint(-2000, 2000)])
    cuts = sorted(rng.randint(0, total) for _ in range(rng.choice([0, 1, 1, 2, 3])))
    out = ""
    for ns in (b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)):
        unit = rng.choice(list(UNIT_NS))
        whole, rest = divmod(ns, UNIT_NS[unit])
        nd = rng.choice([0, 3, 6, 9, 12, 15, 18, 19, 20, 25])
        frac = str(rest * 10**nd // UNIT_NS[unit]).rjust(nd, "0") if nd else ""
        if frac and rng.random() < 0.3:  # one off in the last digit, either way
            frac = frac[:-1] + str((int(frac[-1]) + rng.choice([1, 9])) % 10)
        out += str(whole) + ("." + frac if frac else "") + unit
    if rng.random() < 0.1:
        out = rng.choice(TWO_TO_63) + rng.choice(TWO_TO_63) + out
    return out


def strings(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        text = _near(rng) if rng.random() < 0.5 else _parts(rng)
        if len(text) <= 64:
            assert DURATION_RE.fullmatch(text), text
            out.append(text)
    return out


def test_go_duration_ns_and_the_pattern_match_go_on_strings_built_from_parts(
    tmp_path: Path,
) -> None:
    texts = strings(SEED, COUNT) + OFF_PATTERN
    theirs = go_reads(texts, tmp_path)
    pattern = [(t, m) for t, (m, _) in zip(texts, theirs, strict=True)]
    assert [(t, bool(DURATION_RE.fullmatch(t))) for t in texts] == pattern
    differ = [
        (t, go_duration_ns(t), ns)
        for t, (m, ns) in zip(texts, theirs, strict=True)
        if m and go_duration_ns(t) != ns
    ]
    assert not differ, differ[:10]
    values = [ns for m, ns in theirs if m]
    assert sum(ns in BOUNDS for ns in values) >= 100  # the bounds themselves were reached
    assert any(ns == 0 for ns in values)  # and the 2^63 wrap
    assert sum(ns is None for ns in values) >= 500  # and Go's overflow refusals


def test_the_model_admits_the_ticks_the_api_server_would(tmp_path: Path) -> None:
    texts = strings(SEED + 1, COUNT)
    theirs = go_reads(texts, tmp_path)
    wrong = []
    admitted = 0
    for text, (match, ns) in zip(texts, theirs, strict=True):
        # The CRD: maxLength 40 (which keeps out every spelling of Go's uint64 wrap, 45
        # characters or more), the pattern, then the CEL rule on Go's reading.
        server = len(text) <= SEND_TICK_CHARS and match and ns is not None
        server = server and BOUNDS[0] <= ns <= BOUNDS[1]  # type: ignore[operator]
        admitted += server
        if tick_admits(text) != server:
            wrong.append((text, ns))
    assert not wrong, wrong[:10]
    assert admitted >= 100  # enough short spellings inside the bound to mean something
