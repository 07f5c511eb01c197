"""A dry run's plan: in status when it is small, else in a ConfigMap the experiment owns.

Each entry copies a whole Deployment spec, so a plan grows with the variants and the
Deployment; status shares etcd's 1.5 MiB object limit with the spec, and a refused status
write would make the timer redo the work forever. Up to INLINE_BYTES the plan stays in
status.plan (`kubectl get -o yaml` shows it); above, it goes to the ConfigMap named by
status.planConfigMap (key plan.json); above what a ConfigMap holds, the dry run fails
with PlanTooLarge and writes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from surge.api.experiment import ScalingExperimentSpec
from surge.api.experiment_status import PlanEntry, ScalingExperimentStatus
from surge.operator.context import Ctx
from surge.operator.experiment.runs import LABEL_EXPERIMENT
from surge.operator.experiment.scaled_object_fields import so_apply
from surge.operator.experiment.variants import apply_hpa, apply_variant
from surge.operator.loadtest import builders

INLINE_BYTES = 32 * 1024
CONFIGMAP_BYTES = 1_000_000
"""A ConfigMap holds 1 MiB of data; the rest of the object needs a little room."""
PLAN_KEY = "plan.json"

Exp = Ctx[ScalingExperimentStatus]


class PlanTooLarge(ValueError):
    """The dry run's plan does not fit a ConfigMap."""


def plan_name(experiment: str) -> str:
    return builders.fit_name(f"{experiment}-plan")


def plan_configmap(owner: dict[str, Any], text: str) -> dict[str, Any]:
    name = owner["metadata"]["name"]
    lbls = {LABEL_EXPERIMENT: builders.fit_name(name)}
    return builders.owned_configmap(owner, plan_name(name), lbls, {PLAN_KEY: text})


def plan_entries(
    spec: ScalingExperimentSpec,
    deployment: dict[str, Any],
    hpa: dict[str, Any] | None,
    scaled_object: dict[str, Any] | None,
) -> list[PlanEntry]:
    """Each variant's Deployment, HPA and ScaledObject specs, computed from the originals."""
    target = spec.target_ref.deployment
    return [
        PlanEntry(
            variant=v.name,
            deployment=apply_variant(deployment, v),
            hpa=apply_hpa(hpa, v.hpa, target) or hpa,
            scaled_object=(
                so_apply(scaled_object, v.scaled_object, target)
                if v.scaled_object is not None
                else scaled_object
            ),
        )
        for v in spec.variants
    ]


def record_plan(ctx: Exp, entries: list[PlanEntry]) -> str:
    """Put the plan where it fits and say where. Raises PlanTooLarge (nothing written),
    NotOwned (a ConfigMap of that name is someone else's) or KubeError."""
    text = json.dumps([e.wire() for e in entries], sort_keys=True, separators=(",", ":"))
    size = len(text.encode())
    if size <= INLINE_BYTES:
        ctx.status.plan, ctx.status.plan_config_map = entries, None
        return "the plan is in status.plan"
    if size > CONFIGMAP_BYTES:
        raise PlanTooLarge(
            f"the plan of {len(entries)} variants is {size:,} bytes, more than a ConfigMap "
            f"holds ({CONFIGMAP_BYTES:,}); dry-run fewer variants at a time"
        )
    cm = plan_configmap(ctx.body, text)
    live = ctx.create(cm)
    if live is not None and (live.get("data") or {}).get(PLAN_KEY) != text:
        ctx.kube.patch_configmap_data(ctx.namespace, cm["metadata"]["name"], cm["data"])
    ctx.status.plan, ctx.status.plan_config_map = [], cm["metadata"]["name"]
    return f"the plan ({size:,} bytes) is in ConfigMap {cm['metadata']['name']}, key {PLAN_KEY}"
