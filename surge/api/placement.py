"""Where worker pods run and what they may use: placement and container resources."""

from __future__ import annotations

from typing import Any

from kubernetes.utils import parse_quantity
from pydantic import Field, field_validator

from surge.api.base import Model
from surge.api.bounds import MAX_ITEMS, Key, Text, TreeMap


def check_resources(v: dict[str, Any] | None) -> dict[str, Any] | None:
    """Container resources as Kubernetes has them: {requests, limits} of name -> quantity,
    each a finite, non-negative Kubernetes quantity. For validators."""
    if v is None:
        return v
    unknown = sorted(set(v) - {"requests", "limits", "claims"})
    if unknown:
        raise ValueError(f"{unknown[0]!r}: resources have requests and limits only")
    for part in ("requests", "limits"):
        table = v.get(part) or {}
        if not isinstance(table, dict):
            raise ValueError(f"{part}: a map of resource name to quantity, e.g. {{cpu: 500m}}")
        for name, qty in table.items():
            try:
                q = parse_quantity(str(qty))  # type: ignore[no-untyped-call]
            except ValueError:
                q = None
            if q is None or not q.is_finite() or q < 0:
                raise ValueError(f"{part}.{name}: {qty!r} is not a quantity (e.g. 500m, 2, 2Gi)")
    return v


class Placement(Model):
    node_selector: dict[Key, Text] = Field(default_factory=dict, max_length=MAX_ITEMS)
    tolerations: list[TreeMap] = Field(default_factory=list, max_length=MAX_ITEMS)
    affinity: TreeMap | None = None
    resources: TreeMap | None = None
    separate: bool = False
    """Spread workers over distinct nodes (required pod anti-affinity)."""
    priority_class_name: Key | None = None

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_resources(v)
