"""Random spellings of durations near a bound, for differential tests of duration checks
against Go's time.ParseDuration (directly, and through CEL's duration() in the API server).

Half the values sit within a microsecond (or a fraction of a nanosecond) of a bound, the
rest anywhere from 0 to twice the upper one; each is written in a random unit with 0-15
fraction digits, sometimes split across two units ("9ms999.5us"), sometimes with leading
zeros or far more digits than a float64 holds. Every spelling matches DURATION_PATTERN.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from surge.api.bounds import SendTick
from surge.api.durations import DURATION_RE

_UNITS_NS = {"us": 1_000, "µs": 1_000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_ROUNDING = (ROUND_DOWN, ROUND_UP, ROUND_HALF_EVEN)


def _write(ns: Decimal, unit: str, digits: int, rng: random.Random) -> str:
    value = (ns / _UNITS_NS[unit]).quantize(Decimal(1).scaleb(-digits), rng.choice(_ROUNDING))
    text = f"{value:f}"
    if rng.random() < 0.1:
        text = "00" + text
    return text + unit


def spelling(rng: random.Random, bounds_ns: tuple[int, int]) -> str:
    """One random spelling of a duration near `bounds_ns` (nanoseconds)."""
    bound = Decimal(rng.choice(bounds_ns))
    if rng.random() < 0.5:
        ns = bound + Decimal(rng.uniform(-1.0, 1.0)).quantize(Decimal("0.000001"))
    elif rng.random() < 0.5:
        ns = bound + rng.randint(-1_000, 1_000)
    else:
        ns = Decimal(rng.randint(0, 2 * bounds_ns[1]))
    ns = max(ns, Decimal(0))
    units = ["us", "µs", "ms", "s"] + (["m", "h"] if rng.random() < 0.2 else [])
    digits = rng.choice([0, 0, 1, 3, 6, 9, 10, 12, 15])
    if rng.random() < 0.25:  # two parts: whole milliseconds, the rest in microseconds
        whole = (ns // 10**6) * 10**6
        text = f"{whole // 10**6}ms" + _write(ns - whole, rng.choice(["us", "µs"]), digits, rng)
    else:
        text = _write(ns, rng.choice(units), digits, rng)
    assert DURATION_RE.fullmatch(text), text
    return text


def spellings(seed: int, count: int, bounds_ns: tuple[int, int]) -> list[str]:
    rng = random.Random(seed)
    return [spelling(rng, bounds_ns) for _ in range(count)]


GO_PROGRAM = r"""package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"
)

func main() {
	re := regexp.MustCompile(`^(\d+(\.\d+)?(us|µs|ms|s|m|h))+$`)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		t, err := strconv.Unquote(sc.Text())
		if err != nil {
			panic(err)
		}
		d, err := time.ParseDuration(t)
		v := "ERR"
		if err == nil {
			v = strconv.FormatInt(int64(d), 10)
		}
		fmt.Println(re.MatchString(t), v)
	}
}
"""


def go_reads(texts: list[str], tmp_path: Path) -> list[tuple[bool, int | None]]:
    """Per text, as go1.26 reads it: (the CRD's pattern matches under RE2, Go's
    time.ParseDuration in ns or None); skips the test without a go toolchain."""
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")  # as the Makefile
    if go is None:
        pytest.skip("no go toolchain (the cluster build needs one: /usr/local/go/bin or PATH)")
    (tmp_path / "main.go").write_text(GO_PROGRAM)
    quoted = "".join(json.dumps(t) + "\n" for t in texts)  # \uXXXX: Go's Unquote reads it
    env = {**os.environ, "GOFLAGS": "", "GOTOOLCHAIN": "local"}
    out = subprocess.run(
        [go, "run", "main.go"], input=quoted, capture_output=True, text=True, cwd=tmp_path,
        env=env, timeout=300, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(out) == len(texts)
    rows = [line.split() for line in out]
    return [(m == "true", None if v == "ERR" else int(v)) for m, v in rows]


def tick_admits(text: str) -> bool:
    """Whether the model admits `text` as load.sendTick."""
    try:
        TypeAdapter(SendTick).validate_python(text)
    except ValidationError:
        return False
    return True
