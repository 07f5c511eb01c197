"""The schedule math: ramps, even spacing, Poisson determinism, the split across workers."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import pytest

from surge.loadgen import schedule


@dataclass
class St:
    duration: float
    target: float


def segs(*stages: tuple[float, float], start: float | None = None) -> list[schedule.Segment]:
    return schedule.segments([St(d, t) for d, t in stages], start)


def test_segments_ramp_from_previous_target() -> None:
    s = segs((10, 100), (5, 100), (5, 20), start=20)
    assert [(x.start_s, x.end_s, x.rate0, x.rate1) for x in s] == [
        (0, 10, 20, 100),
        (10, 15, 100, 100),
        (15, 20, 100, 20),
    ]


def test_first_stage_holds_without_start_target() -> None:
    s = segs((10, 50))
    assert s[0].rate0 == s[0].rate1 == 50
    assert schedule.rate_at(s, 3.0) == 50


def test_constant_is_evenly_spaced() -> None:
    times = list(schedule.arrival_times(segs((1, 10)), "constant"))
    assert times == pytest.approx([k / 10 for k in range(10)])
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.1}


def test_linear_ramp_integrates_the_rate() -> None:
    # r(t) = 5t on [0, 2]: Λ(t) = 2.5t², so arrival k is due at sqrt(k / 2.5).
    s = segs((2, 10), start=0)
    times = list(schedule.arrival_times(s, "constant"))
    assert len(times) == 10  # Λ(2) = 10; the arrival due at t = 2 is past the end
    assert times == pytest.approx([math.sqrt(k / 2.5) for k in range(10)])
    assert schedule.cumulative(s, 2.0) == pytest.approx(10.0)


def test_ramp_down_and_hold() -> None:
    s = segs((2, 10), (2, 0))  # hold 10 for 2 s, then 10 -> 0 over 2 s
    times = list(schedule.arrival_times(s, "constant"))
    assert len(times) == 30  # 20 + 10
    later = times[20:]
    assert all(b - a > 0 for a, b in itertools.pairwise(later))
    gaps = [b - a for a, b in itertools.pairwise(later)]
    assert gaps == sorted(gaps)  # the rate falls, so the gaps grow


def test_workers_interleave_into_the_single_schedule() -> None:
    s = segs((3, 40), (2, 90), start=5)
    single = list(schedule.arrival_times(s, "constant"))
    parts = [list(schedule.arrival_times(s, "constant", index=i, workers=3)) for i in range(3)]
    assert sorted(t for p in parts for t in p) == pytest.approx(single)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_poisson_is_fixed_by_the_seed() -> None:
    s = segs((5, 200))
    a = list(schedule.arrival_times(s, "poisson", seed=7))
    b = list(schedule.arrival_times(s, "poisson", seed=7))
    c = list(schedule.arrival_times(s, "poisson", seed=8))
    assert a == b
    assert a != c
    # The count is Poisson(1000): 5 standard deviations is about 158.
    assert abs(len(a) - 1000) < 160
    gaps = [y - x for x, y in itertools.pairwise(a)]
    mean = sum(gaps) / len(gaps)
    cv = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps)) / mean
    assert 0.9 < cv < 1.1  # exponential gaps: coefficient of variation 1


def test_poisson_split_gives_each_worker_its_share() -> None:
    s = segs((10, 300), start=100)
    parts = [list(schedule.arrival_times(s, "poisson", index=i, workers=2, seed=3)) for i in (0, 1)]
    assert parts[0] != parts[1]
    expected = schedule.cumulative(s, 10.0)  # 2000
    total = sum(len(p) for p in parts)
    assert abs(total - expected) < 5 * math.sqrt(expected)
    # The ramp shows: more arrivals in the second half than the first.
    both = [t for p in parts for t in p]
    assert sum(t >= 5 for t in both) > sum(t < 5 for t in both)


def test_users_follow_the_ramp_and_split_as_integers() -> None:
    s = segs((10, 10), (5, 10), start=0)
    assert schedule.users_at(s, 0.0) == 0
    assert schedule.users_at(s, 5.0) == 5
    assert schedule.users_at(s, 12.0) == 10
    assert [schedule.share_of_users(7, i, 3) for i in range(3)] == [3, 2, 2]
    assert sum(schedule.users_at(s, 7.5, index=i, workers=4) for i in range(4)) == 7


def test_expected_arrivals() -> None:
    s = segs((10, 100), start=0)
    assert schedule.expected_arrivals(s, 0, 10) == pytest.approx(500)
    assert schedule.expected_arrivals(s, 5, 10) == pytest.approx(375)


def test_bad_index_is_refused() -> None:
    with pytest.raises(ValueError, match="index"):
        list(schedule.arrival_times(segs((1, 1)), "constant", index=2, workers=2))
