"""The fuzz strategy's strings for a CRD `pattern` are what the API server's regex engine
(Go RE2: `\\d` is [0-9]) admits, not Python's (`\\d` takes "٥", "５"): else documents the
API server refuses are fuzzed as admitted ones (a review of #29: "٥ms" as a sendTick)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, find, settings
from hypothesis.errors import NoSuchExample

from surge.api.durations import DURATION_PATTERN, MAX_DURATION_CHARS
from tests.operator.crd_strategy import _string


def _non_ascii_digit(text: str) -> bool:
    return any(c.isdigit() and not c.isascii() for c in text)


def test_pattern_strings_have_only_ascii_digits() -> None:
    strategy = _string({"pattern": DURATION_PATTERN, "maxLength": MAX_DURATION_CHARS})
    with pytest.raises(NoSuchExample):
        find(
            strategy,
            _non_ascii_digit,
            settings=settings(
                max_examples=2000,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            ),
        )
