"""What the API server would prune: the paths of a value that a structural schema does not
declare (no property of that name, and no x-kubernetes-preserve-unknown-fields)."""

from __future__ import annotations

from typing import Any


def pruned(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    if value is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is None:
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                return [p for k, v in value.items() for p in pruned(v, extra, f"{path}.{k}")]
            return [path or "."] if value else []
        out: list[str] = []
        for k, v in value.items():
            if k not in props:
                out.append(f"{path}.{k}")
            else:
                out += pruned(v, props[k], f"{path}.{k}")
        return out
    if isinstance(value, list):
        items = schema.get("items", {})
        return [p for i, v in enumerate(value) for p in pruned(v, items, f"{path}[{i}]")]
    return []
