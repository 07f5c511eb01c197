"""The max-rate ladder (`python -m surge.bench ladder`): the highest fixed rate one client
core sustains, for Surge and vegeta, on the same `fast` target (issue #29).

Each tool runs pinned to the client core at rising fixed rates (LADDER_RATES), each step
STEP_SECS s after a WARMUP_S s warm-up; a step holds when delivered ≥ 99 % of the rate
asked AND schedule lag p99 ≤ 5 ms; a rung that misses runs once more (contention only
adds lag), a tool's ladder stops at the first rung that misses both times, and its
figure is the highest rate that held. Formulas and denominators: docs/metrics.md
("Bench: the max-rate ladder"); method: docs/bench.md.

- delivered = ok responses of the window's arrivals ÷ M, where M = max(P, last window
  send − window start), P = STEP_SECS: over the real span, as Surge's throughput.rps.
- Surge: its own throughput.rps and schedule_lag.p99 (HDR) from the worker's summary.
- vegeta: lag from its results (`vegeta encode --to csv`): the i-th hit (Seq i, stamped in
  the same critical section that numbers it, so Seq order is timestamp order) is due
  at began + (i + 1)/rate (its ConstantPacer), so lag_i = ts_i − (ts_0 + i/rate), taking
  the first hit's actual send as its due time (vegeta_lags). Nearest-rank p99.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from surge.bench.cpu import TARGET_CORE, settle
from surge.bench.rate import vegeta_attack, vegeta_path
from surge.bench.targets import start, stop
from surge.bench.worker import run_worker
from surge.loadgen.aggregate import compute_results

LADDER_RATES = tuple(range(10_000, 50_001, 5_000))
STEP_SECS, WARMUP_S = 5, 1.0
DELIVERED_MIN = 0.99
"""A step holds when delivered ≥ this share of the rate asked..."""
LAG_P99_MAX_S = 0.005
"""...and schedule lag p99 ≤ this."""
_RUNS = itertools.count()  # each worker run gets its own directory


@dataclass
class Step:
    """One rung: what a tool delivered at `rate` and its schedule lag p99 (seconds)."""

    tool: str
    rate: int
    delivered: float
    lag_p99_s: float | None
    cpu_share: float = 0.0
    """The client's CPU seconds ÷ wall seconds over the window (1.0: its whole core)."""

    @property
    def held(self) -> bool:
        return (
            self.delivered >= DELIVERED_MIN * self.rate
            and self.lag_p99_s is not None
            and self.lag_p99_s <= LAG_P99_MAX_S
        )


def climb(rates: Sequence[int], run: Callable[[int], Step], tries: int = 2) -> list[Step]:
    """Run `run` at each rate in order; a rung that misses is run again (up to `tries`
    times in all: on a shared machine contention only ever adds lag, never removes it);
    the climb stops at the first rung that misses every try. Every run is returned."""
    steps: list[Step] = []
    for rate in rates:
        for _ in range(tries):
            steps.append(run(rate))
            if steps[-1].held:
                break
        else:
            break
    return steps


def max_held(steps: Sequence[Step]) -> int | None:
    """The highest rate that held (None: none did). climb() stops at the first rung
    that misses every try, so every rate that held lies below it."""
    return max((s.rate for s in steps if s.held), default=None)


def p99(values: Sequence[float]) -> float | None:
    """Nearest-rank 99th percentile: the ⌈0.99·n⌉-th smallest value (None when empty)."""
    if not values:
        return None
    return sorted(values)[max(math.ceil(0.99 * len(values)), 1) - 1]


def vegeta_lags(
    sends: Sequence[float], oks: Sequence[bool], rate: float, warmup_s: float, secs: float
) -> tuple[list[float], int, float]:
    """Schedule lag of vegeta's hits from their actual send times (seconds, in Seq order)
    and whether each was ok: (lags of the window's hits, their ok count, M).

    Hit i is due at sends[0] + i/rate; the window holds the hits due in
    [sends[0] + warmup_s, sends[0] + warmup_s + secs); M = max(secs, the window's last
    actual send − the window's start)."""
    if not sends:
        return [], 0, float(secs)
    t0 = sends[0]
    first, end = math.ceil(warmup_s * rate - 1e-9), math.ceil((warmup_s + secs) * rate - 1e-9)
    lags = [sends[i] - (t0 + i / rate) for i in range(first, min(end, len(sends)))]
    ok = sum(1 for i in range(first, min(end, len(sends))) if oks[i])
    last = max(sends[first:end], default=t0 + warmup_s)
    return lags, ok, max(float(secs), last - (t0 + warmup_s))


def surge_step(tmp: Path, url: str, rate: int) -> Step:
    settle()
    spec = {
        "target": {"url": url},
        "scenario": {"method": "GET", "path": "/", "timeout": "5s"},
        "load": {"model": "constant", "warmup": f"{WARMUP_S}s",
                 "stages": [{"duration": f"{WARMUP_S + STEP_SECS}s", "target": rate}]},
        "safety": {"maxRate": rate},
    }  # fmt: skip
    run = run_worker(tmp, f"ladder-{rate}-{next(_RUNS)}", spec)
    m = compute_results(run.summary).metrics
    a, b = run.start_at + WARMUP_S, run.start_at + WARMUP_S + STEP_SECS
    return Step(
        "surge",
        rate,
        m["throughput.rps"] or 0.0,
        m["schedule_lag.p99"],
        run.sampler.cpu_between(a, b) / (b - a),
    )


def vegeta_step(tmp: Path, exe: str, url: str, rate: int) -> Step:
    settle()
    results, sampler = vegeta_attack(tmp, exe, url, rate, WARMUP_S + STEP_SECS, f"vegeta-{rate}")
    rows = sorted(
        ((int(r[8]), int(r[0]) / 1e9, 200 <= int(r[1]) < 400 and not r[5])
         for r in results if len(r) > 8),
    )  # fmt: skip
    sends, oks = [r[1] for r in rows], [r[2] for r in rows]
    lags, ok, span = vegeta_lags(sends, oks, rate, WARMUP_S, STEP_SECS)
    a = sends[0] + WARMUP_S if sends else 0.0
    share = sampler.cpu_between(a, a + STEP_SECS) / STEP_SECS
    return Step("vegeta", rate, ok / span, p99(lags), share)


def ladder(tmp: Path, rates: Sequence[int] = LADDER_RATES) -> dict[str, list[Step]]:
    """{tool: its steps}; vegeta is left out when it is not built."""
    proc, url = start("fast", core=TARGET_CORE)
    try:
        out = {"surge": climb(rates, lambda r: surge_step(tmp, url, r))}
        exe = vegeta_path()
        if exe is not None:
            out["vegeta"] = climb(rates, lambda r: vegeta_step(tmp, exe, url, r))
    finally:
        stop(proc)
    return out


def ladder_report(steps: dict[str, list[Step]]) -> str:
    lines = [
        "",
        f"Max-rate ladder, one client core ({STEP_SECS} s a step after {WARMUP_S:g} s warm-up;"
        f" holds: delivered ≥ {DELIVERED_MIN:.0%} of asked and schedule lag p99 ≤"
        f" {LAG_P99_MAX_S * 1000:g} ms; a rung that misses runs once more; a ladder stops"
        " at the first rung that misses twice):",
    ]
    for tool, rows in steps.items():
        for s in rows:
            lag = "n/a" if s.lag_p99_s is None else f"{s.lag_p99_s * 1000:.2f} ms"
            lines.append(
                f"  {tool:<7}{s.rate:>8,} req/s: delivered {s.delivered:>9,.0f}/s,"
                f" lag p99 {lag:>10}, client CPU {s.cpu_share:.0%}"
                f"  {'held' if s.held else 'MISSED'}"
            )
    for tool, rows in steps.items():
        best = max_held(rows)
        got = "none" if best is None else f"{best:,} req/s"
        if best is not None and best == LADDER_RATES[-1]:
            got += " (the ladder's top)"
        lines.append(f"Max rate one core sustains, {tool}: {got}")
    if "vegeta" not in steps:
        lines.append("  note: vegeta not built (make bench builds it with go)")
    return "\n".join(lines)
