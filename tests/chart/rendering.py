"""Render charts/surge through helm-python-sdk into plain manifests (shared with e2e tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import helm_python as helm
import yaml

from tests.support.cluster import REPO_ROOT

CHART = REPO_ROOT / "charts" / "surge"


@contextmanager
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(
    values: dict[str, Any] | None = None, *, namespace: str = "surge-system", name: str = "surge"
) -> list[dict[str, Any]]:
    """Every object the chart renders (NOTES.txt excluded), in template order.

    Raises helm_python.HelmValuesError when values.schema.json rejects ``values``.
    """
    with chart() as c:
        files = c.render(values=values, name=name, namespace=namespace, is_install=True)
    docs: list[dict[str, Any]] = []
    for path in sorted(files):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(files[path]) if d)
    return docs


def notes(values: dict[str, Any] | None = None, *, namespace: str = "surge-system") -> str:
    with chart() as c:
        files = c.render(values=values, name="surge", namespace=namespace, is_install=True)
    return next(text for path, text in files.items() if path.endswith("NOTES.txt"))


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = of_kind(docs, kind)
    return found


def rule_verbs(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every verb of every resource of every rule."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
