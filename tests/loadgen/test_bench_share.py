"""CPU shares print truncated to 2 decimals (a share printed 0.90 is at least 0.9), but
never below a hundredth the share reaches: floor(0.57 × 100) is 56 in floats (#29)."""

from __future__ import annotations

import pytest

from surge.bench.report import _share


@pytest.mark.parametrize("k", range(101))
def test_a_share_of_exactly_k_hundredths_prints_as_k(k: int) -> None:
    assert _share(k / 100) == f"{k / 100:.2f}"


@pytest.mark.parametrize(
    ("x", "printed"), [(0.8996, "0.89"), (0.8999999, "0.89"), (0.5799, "0.57")]
)
def test_a_share_just_below_a_hundredth_prints_below_it(x: float, printed: str) -> None:
    assert _share(x) == printed
    assert float(printed) <= x
