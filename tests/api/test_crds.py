"""crds/ is generated from the models: any drift fails, and the schemas are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from surge.api.crd import all_crds, render

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_checked_in_crd_matches_models(name: str) -> None:
    checked_in = (ROOT / "crds" / name).read_text()
    assert checked_in == render(all_crds()[name]), f"crds/{name} is stale: run `make crds`"


def test_no_stray_files_in_crds() -> None:
    assert sorted(p.name for p in (ROOT / "crds").glob("*.yaml")) == sorted(all_crds())


def _walk(node: dict[str, Any], path: str, problems: list[str]) -> None:
    # Structural schema rules (Kubernetes apiextensions): every node says its type,
    # unless it preserves unknown fields or is int-or-string; no $ref, no anyOf with types.
    if "$ref" in node or "anyOf" in node or "oneOf" in node:
        problems.append(f"{path}: $ref/anyOf/oneOf")
    if "type" not in node and not (
        node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
    ):
        problems.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    for key, sub in node.get("properties", {}).items():
        _walk(sub, f"{path}.{key}", problems)
    if isinstance(node.get("items"), dict):
        _walk(node["items"], f"{path}[]", problems)
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], f"{path}{{}}", problems)


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_schema_is_structural(name: str) -> None:
    crd = all_crds()[name]
    version = crd["spec"]["versions"][0]
    problems: list[str] = []
    _walk(version["schema"]["openAPIV3Schema"], "", problems)
    assert problems == []
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["categories"] == ["surge"]


def test_loadtest_names_and_columns() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "surge.dev_loadtests.yaml").read_text())
    assert crd["metadata"]["name"] == "loadtests.surge.dev"
    assert crd["spec"]["names"]["shortNames"] == ["lt"]
    columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["Phase", "Target RPS", "Achieved RPS", "p95 ms", "Errors", "Verdict", "Age"]


def test_durations_are_patterned_strings() -> None:
    crd = all_crds()["surge.dev_loadtests.yaml"]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    stage = spec["properties"]["load"]["properties"]["stages"]["items"]
    assert stage["properties"]["duration"]["type"] == "string"
    assert "pattern" in stage["properties"]["duration"]
    assert stage["required"] == ["duration", "target"]
