"""The base for every API model: camelCase on the wire, snake_case in Python, no unknown fields."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GROUP = "surge.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
        use_attribute_docstrings=True,
    )

    def wire(self) -> dict[str, Any]:
        """The Kubernetes (camelCase, JSON-safe) form, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
