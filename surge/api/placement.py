"""Where worker pods run and what they may use: placement and container resources."""

from __future__ import annotations

from typing import Any

from kubernetes.utils import parse_quantity
from pydantic import Field, field_validator

from surge.api.base import Model


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
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    separate: bool = False
    """Spread workers over distinct nodes (required pod anti-affinity)."""
    priority_class_name: str | None = None

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_resources(v)
