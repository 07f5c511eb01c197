"""Options shared by the whole suite."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keep-cluster",
        action="store_true",
        default=False,
        help="leave the local e2e cluster running after the session (see docs/cluster.md)",
    )
