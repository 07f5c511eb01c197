"""Admission of a LoadTest run: the spec checks only the operator can make, and the plan's storage.

The CRD schema and `parse_spec` check the spec itself; here come the operator-wide guards
(allowed target hosts, the rate cap), the dataset read from a ConfigMap, and the plan
ConfigMap every worker reads. Raises ManifestError with field-named messages.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from surge.api.loadtest import LoadTestSpec
from surge.api.manifests import FieldError, ManifestError, parse_spec
from surge.loadgen.plan import build_plan, plan_json, with_inline_rows
from surge.operator import builders
from surge.operator.context import Ctx
from surge.operator.kube import Kube
from surge.operator.settings import Settings


def _refuse(field: str, message: str) -> ManifestError:
    return ManifestError([FieldError(field, message)])


def accepted_spec(
    spec_raw: dict[str, Any], namespace: str, kube: Kube, settings: Settings
) -> LoadTestSpec:
    """The validated spec with the operator's own guards applied and the dataset inlined."""
    spec: LoadTestSpec = parse_spec("LoadTest", spec_raw)
    host = urlsplit(spec.target.url).hostname or ""
    if not settings.host_allowed(host):
        raise _refuse(
            "spec.target.url",
            f"host {host!r} is not in the operator's allowed target hosts; ask your admin",
        )
    cap = settings.max_rate
    if cap is not None and spec.load.model != "closed" and spec.load.peak > cap:
        raise _refuse(
            "spec.load.stages",
            f"peak {spec.load.peak:g} req/s is above the operator's cap of {cap:g} req/s",
        )
    ds = spec.scenario.dataset
    if ds is not None and ds.file is not None:
        raise _refuse(
            "spec.scenario.dataset.file",
            "files are read on the local machine only; in a cluster use configMapRef or inline",
        )
    if ds is not None and ds.config_map_ref is not None:
        spec = with_inline_rows(spec, _dataset_rows(kube, namespace, ds.config_map_ref))
    return spec


def _dataset_rows(kube: Kube, namespace: str, ref: Any) -> list[dict[str, Any]]:
    where = "spec.scenario.dataset.configMapRef"
    cm = kube.configmap(namespace, ref.name)
    text = ((cm or {}).get("data") or {}).get(ref.key)
    if text is None:
        raise _refuse(where, f"ConfigMap {ref.name} has no key {ref.key!r}")
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise _refuse(where, f"line {exc.lineno}: not JSON") from None
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise _refuse(where, "expected JSONL: one JSON object per line")
    return rows


PLAN_LIMIT_BYTES = 1_000_000
"""A ConfigMap holds at most 1 MiB of data; the rest of the object needs a little room."""


class PlanTooLarge(ValueError):
    """The run's plan (the spec with its dataset inlined) does not fit a ConfigMap."""


def store_plan(ctx: Ctx[Any], spec: LoadTestSpec, run_id: str) -> None:
    """Write the run's plan ConfigMap (the spec as accepted, frozen for the run). Raises
    PlanTooLarge before asking the API server when it cannot fit, NotOwned when a ConfigMap
    of that name exists and is someone else's, KubeError."""
    plan = build_plan(spec, name=ctx.name, namespace=ctx.namespace, run_id=run_id)
    text = plan_json(plan)
    size = len(text.encode())
    if size > PLAN_LIMIT_BYTES:
        raise PlanTooLarge(
            f"the run's plan is {size:,} bytes, over the {PLAN_LIMIT_BYTES:,} a ConfigMap holds; "
            "make spec.scenario.dataset smaller (fewer or shorter rows)"
        )
    ctx.create(builders.plan_configmap(ctx.body, run_id, text))


def target_key(spec_raw: dict[str, Any], namespace: str) -> str:
    """What one-run-per-target compares: the Deployment (namespace/name), else the URL host."""
    target = spec_raw.get("target") or {}
    ref = target.get("deploymentRef")
    if ref:
        return f"deployment/{ref.get('namespace') or namespace}/{ref.get('name')}"
    return f"url/{urlsplit(str(target.get('url', ''))).netloc}"
