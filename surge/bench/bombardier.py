"""bombardier (Go, MIT) in the fixed-rate CPU-per-request comparison (surge.bench.rate):
it stands in for k6, which issue #29 asked for and which is not allowed here (AGPL).

bombardier prints no per-request times, only totals. So it runs against its own `fast`
target started with a response counter (surge.bench.targets, $SURGE_TARGET_COUNT: the
count every 10 ms with the wall-clock time), and the requests completed in the steady
window (1 s after the load starts to its end, as for the others) are read off that
counter at the window's edges; the client's CPU seconds come from the same window.
bombardier's own totals (its JSON result) are checked against the counter.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from surge.bench.cpu import CLIENT_CORE, TARGET_CORE, CpuSampler, Rate, interp, pin_prefix
from surge.bench.peers import go_tool
from surge.bench.targets import COUNT_EVERY_S, start, stop

BOMBARDIER_ENV = "SURGE_BENCH_BOMBARDIER"
"""Path of the bombardier binary (`make bench` builds it into .venv/gobin)."""
CONNECTIONS = 50
"""bombardier's -c: as many connections as Locust has users (and the speed part's Surge)."""


def bombardier_path() -> str | None:
    return go_tool("bombardier", BOMBARDIER_ENV)


def bombardier_argv(exe: str, url: str, rate: int, secs: float) -> list[str]:
    """Keep-alive (its default), CONNECTIONS connections, its token-bucket limiter at
    `rate` req/s, for `secs`, 5 s timeout like the others; only the result, as JSON."""
    return [exe, "-c", str(CONNECTIONS), "-r", str(rate), "-d", f"{secs:g}s", "-t", "5s",
            "-p", "result", "-o", "json", f"{url}/"]  # fmt: skip


@dataclass
class Totals:
    """bombardier's own totals for the whole run (its JSON result)."""

    completed: int
    """Responses of any status, and requests that ended in an error ("others")."""
    errors: int
    """Non-2xx answers and errors."""
    secs: float


def parse_result(text: str) -> Totals:
    """bombardier's `-o json -p result` output; ValueError naming what is missing."""
    try:
        res = json.loads(text)["result"]
        codes = [int(res[k]) for k in ("req1xx", "req2xx", "req3xx", "req4xx", "req5xx")]
        others = int(res["others"])
        secs = float(res["timeTakenSeconds"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"bombardier's JSON result is not as expected ({e!r}): {text[:200]!r}"
        ) from None
    return Totals(sum(codes) + others, sum(codes) - codes[1] + others, secs)


def steady_window(
    samples: list[tuple[float, float]], secs: float, warmup_s: float
) -> tuple[float, float, float] | None:
    """(a, b, responses in [a, b]) from the target's (time, responses so far) samples of
    one run: the load starts after the last sample still at 0 (t₀) and ends after the
    last sample below the final count (t_end); a = t₀ + warmup_s, b = min(t₀ + secs,
    t_end). Both edges are taken early, so the window lies inside the load. None when
    the target answered nothing or the window is empty."""
    if not samples or samples[-1][1] <= 0:
        return None
    t0 = max((t for t, n in samples if n <= 0), default=samples[0][0])
    final = samples[-1][1]
    t_end = max((t for t, n in samples if n < final), default=samples[0][0])
    a, b = t0 + warmup_s, min(t0 + secs, t_end)
    if b <= a:
        return None
    return a, b, interp(samples, b) - interp(samples, a)


def read_samples(path: Path) -> list[tuple[float, float]]:
    rows = (ln.split() for ln in path.read_text().splitlines() if ln.strip())
    return [(float(r[0]), float(r[1])) for r in rows if len(r) == 2]


def wait_for_sample_after(path: Path, t: float, limit_s: float = 2.0) -> None:
    """Until the target has written a sample timed after `t` (bombardier's exit: every
    answer was written by then, so that sample holds the final count), at most limit_s.
    A fixed sleep lost the final count when the target was starved for that long."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        samples = read_samples(path) if path.exists() else []
        if samples and samples[-1][0] > t:
            return
        time.sleep(COUNT_EVERY_S)


def bombardier_rate(
    tmp: Path, exe: str, rate: int, secs: float, warmup_s: float, notes: list[str]
) -> Rate | None:
    """bombardier pinned to the client core at `rate` for `secs` against its own counting
    `fast` target on the target core; None (with a note) when it fails."""
    count = tmp / "bombardier.count"
    count.unlink(missing_ok=True)
    proc, url = start("fast", core=TARGET_CORE, count=count)
    try:
        bomb = subprocess.Popen(
            [*pin_prefix(CLIENT_CORE), *bombardier_argv(exe, url, rate, secs)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        sampler = CpuSampler(bomb.pid)
        try:
            out, err = bomb.communicate(timeout=secs + 60)
        except subprocess.TimeoutExpired:
            bomb.kill()  # a hung run must not outlive the bench, nor skew what runs next
            bomb.communicate()
            notes.append(f"bombardier did not end within {secs + 60:g} s; killed")
            return None
        wait_for_sample_after(count, time.time())
    finally:
        stop(proc)  # after the run: its last samples hold the final count
    if bomb.returncode != 0:
        notes.append(f"bombardier failed (exit {bomb.returncode}): {err.strip()[:200]}")
        return None
    try:
        totals = parse_result(out)
    except ValueError as e:
        notes.append(str(e))
        return None
    samples = read_samples(count)
    window = steady_window(samples, secs, warmup_s)
    if window is None:
        got = samples[-1][1] if samples else 0
        notes.append(
            f"bombardier: the target counted {got:,.0f} responses, none in a steady window "
            f"({warmup_s:g} s after the load started, to its end)"
            if got
            else "bombardier: the target counted no responses"
        )
        return None
    a, b, n = window
    answered = samples[-1][1]
    if totals.errors or answered != totals.completed:
        notes.append(f"bombardier: {totals.completed:,} completed by its count, {answered:,.0f}"
                     f" answered by the target's, {totals.errors:,} not 2xx")  # fmt: skip
    return Rate(n, b - a, sampler.cpu_between(a, b))
