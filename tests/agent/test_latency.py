"""Distribution grammar and samplers: the truth Alice's timing is built on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from surge.agent.latency import (
    DEFAULT_PARETO_CAP_S,
    LatencySpec,
    TokenSpec,
    parse_latency,
    parse_tokens,
    sample_latency_s,
    sample_tokens,
    stall_wait_s,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none", LatencySpec()),
        ("50ms", LatencySpec("fixed", value_s=0.05)),
        ("fixed:1.5s", LatencySpec("fixed", value_s=1.5)),
        ("normal:mean=100ms,sd=10ms", LatencySpec("normal", mean_s=0.1, sd_s=0.01)),
        ("lognormal:median=80ms,sigma=0.5", LatencySpec("lognormal", median_s=0.08, sigma=0.5)),
        (
            "pareto:scale=20ms,alpha=1.5",
            LatencySpec("pareto", scale_s=0.02, alpha=1.5, cap_s=DEFAULT_PARETO_CAP_S),
        ),
        (
            "pareto:scale=20ms,alpha=1.5,cap=2s",
            LatencySpec("pareto", scale_s=0.02, alpha=1.5, cap_s=2.0),
        ),
    ],
)
def test_parse_latency(text: str, expected: LatencySpec) -> None:
    spec = parse_latency(text)
    assert spec == expected
    assert parse_latency(spec.describe()) == spec


@pytest.mark.parametrize(
    "text",
    [
        "50",  # no unit
        "fixed:-5ms",
        "normal:mean=100ms",
        "lognormal:median=0ms,sigma=0.5",
        "lognormal:median=80ms,sigma=x",
        "pareto:scale=20ms,alpha=0",
        "gamma:k=2",
        "normal:mean=1s,sd=1s,extra=1",
    ],
)
def test_parse_latency_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_latency(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64", TokenSpec(64, 64)),
        ("fixed:8", TokenSpec(8, 8)),
        ("uniform:16-128", TokenSpec(16, 128)),
    ],
)
def test_parse_tokens(text: str, expected: TokenSpec) -> None:
    assert parse_tokens(text) == expected
    assert parse_tokens(expected.describe()) == expected


@pytest.mark.parametrize("text", ["0", "uniform:10-5", "uniform:5", "poisson:3", "x"])
def test_parse_tokens_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_tokens(text)


def _draw(spec: LatencySpec, n: int = 20_000) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.array([sample_latency_s(spec, rng) for _ in range(n)])


def test_fixed_and_none() -> None:
    assert set(_draw(parse_latency("fixed:50ms"), 100)) == {0.05}
    assert set(_draw(parse_latency("none"), 100)) == {0.0}


def test_lognormal_median_and_sigma() -> None:
    x = _draw(parse_latency("lognormal:median=80ms,sigma=0.5"))
    assert np.median(x) == pytest.approx(0.08, rel=0.03)
    assert np.std(np.log(x)) == pytest.approx(0.5, rel=0.03)


def test_normal_mean_sd_and_clip() -> None:
    x = _draw(parse_latency("normal:mean=100ms,sd=10ms"))
    assert np.mean(x) == pytest.approx(0.1, rel=0.01)
    assert np.std(x) == pytest.approx(0.01, rel=0.03)
    assert _draw(parse_latency("normal:mean=1ms,sd=10ms"), 2000).min() == 0.0


def test_pareto_minimum_tail_and_cap() -> None:
    x = _draw(parse_latency("pareto:scale=20ms,alpha=1.5,cap=2s"))
    assert x.min() >= 0.02
    assert x.max() <= 2.0
    # Survival function of the classic Pareto: P(X > x) = (scale/x)^alpha.
    for q in (0.04, 0.1, 0.3):
        assert np.mean(x > q) == pytest.approx((0.02 / q) ** 1.5, rel=0.1)


def test_tokens_uniform_is_inclusive() -> None:
    rng = np.random.default_rng(1)
    draws = {sample_tokens(TokenSpec(3, 6), rng) for _ in range(500)}
    assert draws == {3, 4, 5, 6}
    assert sample_tokens(TokenSpec(9, 9), rng) == 9


@pytest.mark.parametrize(
    ("elapsed", "wait"),
    [
        (0.0, 0.0),  # the first period is clean
        (0.5, 0.0),
        (4.0, 1.0),  # stall 1 starts at 4 s
        (4.25, 0.75),
        (4.999, 0.001),
        (5.0, 0.0),
        (7.9, 0.0),
        (8.5, 0.5),
        (400.1, 0.9),
    ],
)
def test_stall_windows(elapsed: float, wait: float) -> None:
    assert stall_wait_s(elapsed, 4.0, 1.0) == pytest.approx(wait, abs=1e-9)


def test_stall_off() -> None:
    assert stall_wait_s(10.0, 0.0, 1.0) == 0.0
    assert stall_wait_s(10.0, 4.0, 0.0) == 0.0
    assert not math.isnan(stall_wait_s(1e9, 4.0, 1.0))
