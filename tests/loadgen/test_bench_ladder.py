"""The max-rate ladder's pure parts (surge.bench.ladder): vegeta's schedule lag from its
send timestamps, the nearest-rank p99, the hold rule and the stop-at-first-miss climb.
No tool runs here; `python -m surge.bench ladder` runs them."""

from __future__ import annotations

import pytest

from surge.bench.ladder import Step, climb, max_held, p99, vegeta_lags


def test_p99_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 201)]  # 1..200: ⌈0.99·200⌉ = 198th
    assert p99(values) == 198.0
    assert p99([3.0]) == 3.0
    assert p99([]) is None
    assert p99([5.0, 1.0, 2.0]) == 5.0  # ⌈2.97⌉ = 3rd smallest, order does not matter


def test_vegeta_lags_on_time_sends_have_zero_lag() -> None:
    rate, warmup, secs = 100.0, 1.0, 2.0
    t0 = 1000.0
    sends = [t0 + i / rate for i in range(300)]
    lags, ok, span = vegeta_lags(sends, [True] * 300, rate, warmup, secs)
    assert len(lags) == 200  # hits due in [t0 + 1, t0 + 3): i = 100..299
    assert max(abs(x) for x in lags) < 1e-9
    assert ok == 200
    assert span == secs  # kept up: M = P


def test_vegeta_lags_measure_a_stall_and_stretch_the_span() -> None:
    rate, warmup, secs = 100.0, 0.0, 1.0
    t0 = 50.0
    # Hits 0..49 on time; then a stall: hits 50..99 leave from 1.2 s on, back to back.
    late = [t0 + 1.2 + (i - 50) * 1e-4 for i in range(50, 100)]
    sends = [t0 + i / rate for i in range(50)] + late
    oks = [True] * 100
    oks[10] = False
    lags, ok, span = vegeta_lags(sends, oks, rate, warmup, secs)
    assert lags[49] == pytest.approx(0.0)
    assert lags[50] == pytest.approx(0.7)  # due at 0.5 s, left at 1.2 s
    assert lags[99] == pytest.approx(1.2049 - 0.99)
    assert ok == 99
    assert span == pytest.approx(1.2049)  # M = the last window send − the window start


def test_vegeta_lags_span_grows_when_sends_leave_after_the_window() -> None:
    rate = 10.0
    sends = [float(i) for i in range(20)]  # 1 a second where 10 were asked: very late
    lags, ok, span = vegeta_lags(sends, [True] * 20, rate, 0.0, 1.0)
    assert len(lags) == 10 and ok == 10  # the hits due in [0, 1): i = 0..9
    assert lags[9] == pytest.approx(9.0 - 0.9)
    assert span == pytest.approx(9.0)  # the 10th window hit left at 9 s: M = 9 > P


def test_vegeta_lags_when_fewer_hits_than_the_window_asks() -> None:
    lags, ok, span = vegeta_lags([0.0, 0.1, 0.2], [True] * 3, 10.0, 0.0, 1.0)
    assert len(lags) == 3 and ok == 3 and span == 1.0  # delivered 3/s of 10 asked
    assert vegeta_lags([], [], 10.0, 1.0, 5.0) == ([], 0, 5.0)


@pytest.mark.parametrize(
    ("delivered", "lag", "held"),
    [
        (9_900.0, 0.005, True),  # both bounds are inclusive
        (9_899.0, 0.001, False),  # under 99 % of asked
        (10_000.0, 0.0051, False),  # lag over 5 ms
        (10_000.0, None, False),  # no lag measured: cannot hold
    ],
)
def test_hold_rule(delivered: float, lag: float | None, held: bool) -> None:
    assert Step("t", 10_000, delivered, lag).held is held


def test_climb_retries_a_miss_once_and_stops_at_a_double_miss() -> None:
    # Each rate's outcomes, try by try: 20 misses once then holds; 30 misses twice.
    outcomes = {10: [True], 20: [False, True], 30: [False, False], 40: [True]}
    ran: list[int] = []

    def run(rate: int) -> Step:
        ran.append(rate)
        held = outcomes[rate][ran.count(rate) - 1]
        return Step("t", rate, float(rate), 0.001 if held else 0.5)

    steps = climb([10, 20, 30, 40], run)
    assert ran == [10, 20, 20, 30, 30]  # 40 is never run
    assert [s.held for s in steps] == [True, False, True, False, False]
    assert max_held(steps) == 20


def test_climb_with_one_try_stops_at_the_first_miss() -> None:
    steps = climb([10, 20, 30], lambda r: Step("t", r, float(r), 0.5 if r == 20 else 0.0), tries=1)
    assert [s.rate for s in steps] == [10, 20]
    assert max_held(steps) == 10


def test_max_held_none_when_the_first_rung_misses() -> None:
    assert max_held([Step("t", 10, 0.0, None)]) is None
    assert max_held([]) is None
    all_held = [Step("t", r, float(r), 0.0) for r in (10, 20)]
    assert max_held(all_held) == 20
