"""CustomResourceDefinitions generated from the pydantic models (the single source of truth).

Pydantic emits JSON Schema 2020-12; Kubernetes wants a structural OpenAPI v3.0
subset. The conversion inlines $refs, turns Optional into nullable, maps free-form
objects to x-kubernetes-preserve-unknown-fields, and drops what OpenAPI v3.0 lacks.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from surge.api.base import GROUP, VERSION, Model
from surge.api.experiment import ScalingExperimentSpec
from surge.api.experiment_status import ScalingExperimentStatus
from surge.api.loadtest import LoadTestSpec
from surge.api.status import LoadTestStatus

_DROP = {"title", "default", "additionalProperties", "examples", "$defs", "const"}


def structural(model: type[Model]) -> dict[str, Any]:
    """The structural OpenAPI schema of a model, as the API server accepts it."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.get("$defs", {})
    return _convert(schema, defs)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra}
    return node


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(copy.deepcopy(node), defs)
    nullable = False
    if "anyOf" in node:
        options = [_resolve(o, defs) for o in node.pop("anyOf")]
        non_null = [o for o in options if o.get("type") != "null"]
        nullable = len(non_null) < len(options)
        if len(non_null) == 1:
            node = {**non_null[0], **node}
        else:
            types = sorted(o.get("type", "") for o in non_null)
            node = {k: v for k, v in node.items() if k in ("description",)}
            if types == ["integer", "string"]:
                node["x-kubernetes-int-or-string"] = True
            else:
                node["x-kubernetes-preserve-unknown-fields"] = True
    out: dict[str, Any] = {}
    if "description" in node:
        out["description"] = " ".join(str(node["description"]).split())
    kind = node.get("type")
    if "const" in node and "enum" not in node:
        out["enum"] = [node["const"]]
    if kind is None:
        # Any: a free-form value (e.g. a request body template).
        for k in ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields"):
            if k in node:
                out[k] = node[k]
        if len(out) <= 1 and "enum" not in out:
            out["x-kubernetes-preserve-unknown-fields"] = True
        if nullable:
            out["nullable"] = True
        return out
    out["type"] = kind
    for key in (
        "enum",
        "pattern",
        "format",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minimum",
        "maximum",
    ):
        if key in node:
            out[key] = node[key]
    if "exclusiveMinimum" in node:
        out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if out.get("format") not in (None, "int32", "int64", "double", "float", "date-time", "byte"):
        out.pop("format")
    if kind == "object":
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props:
            out["properties"] = {k: _convert(v, defs) for k, v in props.items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        elif isinstance(extra, dict) and extra:
            out["additionalProperties"] = _convert(extra, defs)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = _convert(node.get("items", {}), defs)
    for k, v in node.items():  # list-type and other structural markers set on a Field
        if k.startswith("x-kubernetes-") and k not in out:
            out[k] = v
    if nullable:
        out["nullable"] = True
    return {k: v for k, v in out.items() if k not in _DROP or k == "additionalProperties"}


def _root(spec: type[Model], status: type[Model]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural(spec),
            "status": structural(status),
        },
    }


def _crd(
    kind: str, plural: str, short: list[str], schema: dict[str, Any], columns: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["surge"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def loadtest_crd() -> dict[str, Any]:
    cols = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Target RPS", "type": "number", "jsonPath": ".status.summary.targetRps"},
        {"name": "Achieved RPS", "type": "number", "jsonPath": ".status.summary.achievedRps"},
        {"name": "p95 ms", "type": "number", "jsonPath": ".status.summary.p95Ms"},
        {"name": "Errors", "type": "number", "jsonPath": ".status.summary.errorRate"},
        {"name": "Verdict", "type": "string", "jsonPath": ".status.summary.verdict"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd("LoadTest", "loadtests", ["lt"], _root(LoadTestSpec, LoadTestStatus), cols)


def experiment_crd() -> dict[str, Any]:
    cols = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Variant", "type": "string", "jsonPath": ".status.currentVariant"},
        {"name": "Recommendation", "type": "string", "jsonPath": ".status.recommendation"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    schema = _root(ScalingExperimentSpec, ScalingExperimentStatus)
    return _crd("ScalingExperiment", "scalingexperiments", ["sx"], schema, cols)


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD object, as `make crds` writes them under crds/."""
    return {
        "surge.dev_loadtests.yaml": loadtest_crd(),
        "surge.dev_scalingexperiments.yaml": experiment_crd(),
    }


class _NoAliases(yaml.SafeDumper):
    """Shared sub-schemas (one enum used by two fields) are written out, not as &anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(crd: dict[str, Any]) -> str:
    header = "# Generated by `make crds` from surge/api; do not edit by hand.\n"
    return header + yaml.dump(
        crd, Dumper=_NoAliases, sort_keys=False, width=100, allow_unicode=True
    )
