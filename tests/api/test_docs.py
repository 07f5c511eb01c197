"""docs/status.md lists every condition type and reason the code knows, and nothing else;
docs/experiments.md describes every experiment stage. The code passes Reason and
ExperimentStage members (mypy holds it to them), so enumerating the enums covers it."""

from __future__ import annotations

import re
from pathlib import Path

from surge.api.experiment_status import ExperimentStage
from surge.api.status import CONDITION_TYPES, REASONS, Reason

DOCS = Path(__file__).parents[2] / "docs"
STATUS = (DOCS / "status.md").read_text()


def _table(doc: str, heading: str) -> dict[str, str]:
    """The two-column table under `## heading`: first column -> second."""
    section = doc.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([A-Za-z]+) \| (.*) \|$", section, flags=re.M)
    return {name: meaning for name, meaning in rows if name not in ("reason", "type")}


def test_every_reason_has_a_meaning() -> None:
    assert set(REASONS) == set(Reason)


def test_the_reasons_table_is_the_enum() -> None:
    documented = _table(STATUS, "Reasons")
    assert documented == {r.value: meaning for r, meaning in REASONS.items()}


def test_the_conditions_table_is_the_list() -> None:
    assert _table(STATUS, "Conditions") == CONDITION_TYPES


def test_every_experiment_stage_is_described() -> None:
    doc = (DOCS / "experiments.md").read_text()
    described = set(re.findall(r"^\s+- \*\*([A-Za-z]+)\*\*", doc, flags=re.M))
    assert {s.value for s in ExperimentStage} <= described
