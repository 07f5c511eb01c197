"""The fixed-rate bench compares CPU per request only between runs that kept the rate."""

from __future__ import annotations

from surge.bench.cpu import Rate
from surge.bench.rate import RATE, TLS_RATE
from surge.bench.report import rate_report


def _kept(rate: int, us_per_request: float, secs: float = 7.0) -> Rate:
    n = rate * secs
    return Rate(requests=n, wall_s=secs, cpu_s=n * us_per_request / 1e6)


def test_ratios_of_runs_that_kept_the_rate() -> None:
    # 25 µs against 50 µs is 0.50×; https 12,000 against 4,000 req/CPU-s is 3.00×.
    fr = {
        "http": {"surge": _kept(RATE, 25.0), "vegeta": _kept(RATE, 50.0)},
        "https": {"surge": _kept(TLS_RATE, 1e6 / 12_000), "locust": _kept(TLS_RATE, 250.0)},
    }
    out = rate_report(fr)
    assert "Surge/vegeta CPU per request (http): 0.50× (goal ≤ 0.7: met)" in out
    assert "Surge/Locust per core (https): 3.00× (goal ≥ 3: met)" in out


def test_a_peer_that_fell_behind_is_not_compared() -> None:
    # The run seen after the ladder: vegeta completed 291 of 5,000 req/s (ports in
    # TIME_WAIT) at 3,425 µs a request; its ratio (0.01×) must not read as "met".
    broken = Rate(requests=291 * 7, wall_s=7.0, cpu_s=291 * 7 * 3425.4e-6)
    fr = {
        "http": {"surge": _kept(RATE, 31.0), "vegeta": broken},
        "https": {"surge": _kept(TLS_RATE, 93.1), "locust": None},
    }
    out = rate_report(fr)
    assert "Surge/vegeta CPU per request (http): not compared: vegeta completed 291 of" in out
    assert "Surge/Locust per core (https): not compared: locust has no run" in out
    assert "met" not in out.replace("NOT met", "")


def test_the_longer_tick_is_printed_beside_the_goal_not_as_it() -> None:
    # Default tick 2.36× (not met); with sendTick 2 ms 3.57×: the goal line stays NOT met.
    tick = _kept(TLS_RATE, 1e6 / 15_488)
    tick.lag_p99_s = 0.00195
    fr = {
        "http": {"surge": _kept(RATE, 25.0), "vegeta": _kept(RATE, 50.0)},
        "https": {"surge": _kept(TLS_RATE, 1e6 / 10_243), "surge tick 2ms": tick,
                  "locust": _kept(TLS_RATE, 1e6 / 4_338)},
    }  # fmt: skip
    out = rate_report(fr)
    assert "Surge/Locust per core (https): 2.36× (goal ≥ 3: NOT met)" in out
    assert "  with load.sendTick 2ms: 3.57×, for schedule lag p99 1.95 ms" in out
