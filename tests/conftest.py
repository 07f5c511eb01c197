"""Options shared by the whole suite.

Property tests (Hypothesis) draw new examples on every local run, to keep finding; under
CI=true they are derandomized (a fixed seed per test) with no example database, so a
submission's CI run is the run that was checked, and a failure replays."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keep-cluster",
        action="store_true",
        default=False,
        help="leave the local e2e cluster running after the session (see docs/cluster.md)",
    )
