"""The cluster policy applied to a ScalingExperiment, before it takes its target. Pure.

Its loadTest template is a LoadTest spec and meets the same rules (operator/policy/rules.py);
on top, the target Deployment must have opted in, and no variant may write more replicas
or GPUs than the caps allow.
"""

from __future__ import annotations

from typing import Any

from surge.api.experiment import ScalingExperimentSpec
from surge.api.policy import (
    EXPERIMENT_TARGET_ANNOTATION,
    ClusterPolicy,
    Violation,
)
from surge.operator.policy.limits import gpu_count
from surge.operator.policy.rules import secret_violations
from surge.operator.policy.scaled_objects import scaled_object_violations


def secret_names(spec: ScalingExperimentSpec) -> list[tuple[str, str]]:
    """(field, Secret name) of every Secret a variant's env names."""
    out = []
    for i, v in enumerate(spec.variants):
        for j, e in enumerate(v.env or []):
            ref = ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
            if ref:
                out.append((f"spec.variants[{i}].env[{j}].valueFrom", str(ref)))
    return out


def experiment_violations(
    spec: ScalingExperimentSpec,
    deployment: dict[str, Any] | None,
    policy: ClusterPolicy,
    *,
    hpa: dict[str, Any] | None = None,
    secret_labels: dict[str, dict[str, str] | None] | None = None,
    scaled_object: dict[str, Any] | None = None,
    prometheus_urls: tuple[str, ...] = (),
) -> list[Violation]:
    out: list[Violation] = []
    ref = ((hpa or {}).get("spec") or {}).get("scaleTargetRef") or {}
    if hpa is not None and (
        ref.get("kind") != "Deployment" or ref.get("name") != spec.target_ref.deployment
    ):
        out.append(
            Violation(
                "spec.targetRef.hpa",
                "requireExperimentAnnotation",
                f"HPA {spec.target_ref.hpa} scales {ref.get('kind')} {ref.get('name')}, not the "
                f"Deployment {spec.target_ref.deployment}: variants would change that one",
            )
        )
    out += secret_violations(secret_names(spec), secret_labels or {}, policy)
    out += scaled_object_violations(spec, policy, prometheus_urls, scaled_object)
    annotations = ((deployment or {}).get("metadata") or {}).get("annotations") or {}
    if (
        deployment is not None
        and policy.require_experiment_annotation
        and annotations.get(EXPERIMENT_TARGET_ANNOTATION) != "true"
    ):
        out.append(
            Violation(
                "spec.targetRef.deployment",
                "requireExperimentAnnotation",
                f"Deployment {spec.target_ref.deployment} lacks the annotation "
                f'{EXPERIMENT_TARGET_ANNOTATION}: "true" (its owner opts in to experiments)',
            )
        )
    caps = policy.caps
    if caps.max_variants is not None and len(spec.variants) > caps.max_variants:
        out.append(
            Violation(
                "spec.variants",
                "caps.maxVariants",
                f"{len(spec.variants)} variants is above the cap of {caps.max_variants}",
            )
        )
    if caps.max_experiment_timeout is not None and spec.timeout > caps.max_experiment_timeout:
        out.append(
            Violation(
                "spec.timeout",
                "caps.maxExperimentTimeout",
                f"{spec.timeout:g}s is above the cap of {caps.max_experiment_timeout:g}s",
            )
        )
    for i, v in enumerate(spec.variants):
        where = f"spec.variants[{i}]"
        most = caps.max_experiment_replicas
        asked = [
            (f"{where}.replicas", v.replicas),
            (f"{where}.hpa.maxReplicas", v.hpa.max_replicas if v.hpa else None),
            (f"{where}.hpa.minReplicas", v.hpa.min_replicas if v.hpa else None),
        ]
        for field, n in asked:
            if most is not None and n is not None and n > most:
                out.append(
                    Violation(field, "caps.maxExperimentReplicas", f"{n} replicas is above the cap")
                )
        gpus = gpu_count(v.resources)
        if caps.max_gpus_per_pod is not None and gpus > caps.max_gpus_per_pod:
            out.append(
                Violation(
                    f"{where}.resources",
                    "caps.maxGpusPerPod",
                    f"{gpus} GPUs per pod is above the cap of {caps.max_gpus_per_pod}",
                )
            )
    return out
