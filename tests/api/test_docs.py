"""docs/status.md lists every condition type and reason the code knows."""

from __future__ import annotations

from pathlib import Path

from surge.api.status import CONDITION_TYPES, REASONS

DOC = (Path(__file__).parents[2] / "docs" / "status.md").read_text()


def test_every_condition_and_reason_is_documented() -> None:
    for name, meaning in {**CONDITION_TYPES, **REASONS}.items():
        assert f"| {name} | {meaning} |" in DOC, name


def test_operator_uses_only_listed_reasons() -> None:
    import re

    source = "".join(p.read_text() for p in (Path(__file__).parents[2] / "operator").rglob("*.py"))
    used = set(re.findall(r'(?:fail|abort)\(ctx, "([A-Za-z]+)"', source))
    used |= set(re.findall(r'condition\("[A-Za-z]+", "[A-Za-z]+", "([A-Za-z]+)"', source))
    used |= set(re.findall(r'goto\(Phase\.[A-Z_]+, "([A-Za-z]+)"', source))
    used |= set(re.findall(r'"(?:Normal|Warning)", "([A-Za-z]+)"', source))
    used |= set(re.findall(r'Problem\("([A-Za-z]+)"', source))
    assert used
    assert used <= set(REASONS), sorted(used - set(REASONS))
