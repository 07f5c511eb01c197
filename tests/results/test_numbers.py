"""Numbers for people: no scientific notation, thousands grouped, 4 significant digits."""

from __future__ import annotations

import pytest

from surge.api.results import RunResults
from surge.api.results.sections import Throughput
from surge.results.numbers import fmt_num
from surge.results.report import summary_rows


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (30000.0, "30,000"),
        (28690.4, "28,690"),
        (1234567.0, "1,234,567"),  # whole numbers from 1,000 on are exact to the unit
        (999.96, "1,000"),  # rounds to 4 digits first
        (412.3456, "412.3"),
        (68.75, "68.75"),
        (0.5, "0.5"),
        (0.0001234, "0.0001234"),
        (-1234.5, "-1,234"),
        (0.0, "0"),
        (None, "-"),
    ],
)
def test_fmt_num(value: float | None, text: str) -> None:
    assert fmt_num(value) == text


def test_the_report_shows_throughput_for_people() -> None:
    results = RunResults(throughput=Throughput(target_rps=30000.0, achieved_rps=28690.4))
    rows = dict(summary_rows(results))
    assert rows["throughput (target → achieved)"] == "30,000/s → 28,690/s"
