"""Placement, resources and caps of a LoadTest against the cluster policy. Pure."""

from __future__ import annotations

from typing import Any

from kubernetes.utils import parse_quantity as _parse_quantity

from surge.api.bounds import tree_problem
from surge.api.loadtest import LoadTestSpec
from surge.api.policy import ClusterPolicy, Toleration, Violation


def parse_quantity(text: str) -> Any:
    """A Kubernetes quantity ("500m", "2Gi") as a Decimal."""
    return _parse_quantity(text)  # type: ignore[no-untyped-call]


def _tol(d: dict[str, Any] | Toleration) -> tuple[Any, ...]:
    t = d if isinstance(d, Toleration) else Toleration.model_validate(d)
    return (t.key, t.operator or "Equal", t.value, t.effect)


def placement_violations(spec: LoadTestSpec, policy: ClusterPolicy) -> list[Violation]:
    p, pol = spec.load.placement, policy.placement
    out = []
    where = "spec.load.placement"
    for k, v in p.node_selector.items():
        allowed = pol.allowed_node_selectors.get(k, [])
        # The pool's own keys keep the pool's values.
        pooled = k in pol.node_selector
        fits = pol.node_selector[k] == v if pooled else (v in allowed or "*" in allowed)
        if not fits:
            out.append(
                Violation(
                    f"{where}.nodeSelector",
                    "placement.allowedNodeSelectors",
                    f"{k}={v} is not an allowed node selector",
                )
            )
    ok = {_tol(t) for t in [*pol.tolerations, *pol.allowed_tolerations]}
    for i, t in enumerate(p.tolerations):
        try:
            bad = _tol(t) not in ok or "tolerationSeconds" in t
        except ValueError:
            bad = True
        if bad:
            out.append(
                Violation(
                    f"{where}.tolerations[{i}]",
                    "placement.allowedTolerations",
                    f"toleration {t} is not allowed",
                )
            )
    if p.priority_class_name and p.priority_class_name not in pol.priority_classes:
        out.append(
            Violation(
                f"{where}.priorityClassName",
                "placement.priorityClasses",
                f"priority class {p.priority_class_name!r} is not allowed",
            )
        )
    if p.affinity and not pol.allow_affinity:
        out.append(
            Violation(f"{where}.affinity", "placement.allowAffinity", "affinity is not allowed")
        )
    return out


def gpu_count(resources: dict[str, Any] | None) -> int:
    """The most accelerators asked for in requests or limits: every extended resource
    (a name with a domain: nvidia.com/gpu, its MIG slices, google.com/tpu, habana.ai/gaudi,
    aws.amazon.com/neuron, ...) counts, so a new device name is capped too. The quantities
    are valid: the models checked them (surge.api.placement.check_resources)."""
    most = 0
    for part in ("requests", "limits"):
        for name, qty in ((resources or {}).get(part) or {}).items():
            if "/" in name or "gpu" in name.lower():
                most = max(most, int(parse_quantity(str(qty))))
    return most


def worker_resources(spec: LoadTestSpec, policy: ClusterPolicy) -> dict[str, Any]:
    """The worker container's resources: the spec's, else the policy's workerResources. A
    limit the spec leaves out is the policy's (raised to the spec's own request, so the pod
    stays valid): leaving limits out must not take a worker out of the admin's bounds."""
    defaults = {part: q for part, q in policy.worker_resources.wire().items() if q}
    res = spec.load.placement.resources
    if not res:
        return defaults
    requests = dict(res.get("requests") or {})
    limits = dict(res.get("limits") or {})
    default_requests = defaults.get("requests") or {}
    for name, qty in (defaults.get("limits") or {}).items():
        if name in limits:
            continue
        asked = requests.get(name)
        above = asked is not None and parse_quantity(str(asked)) > parse_quantity(str(qty))
        limits[name] = asked if above else qty
        if asked is None and name in default_requests:
            # Kubernetes would make the missing request equal to the limit (1Gi, not 256Mi).
            floor = default_requests[name]
            lower = parse_quantity(str(floor)) < parse_quantity(str(qty))
            requests[name] = floor if lower else qty
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def resource_violations(spec: LoadTestSpec, policy: ClusterPolicy) -> list[Violation]:
    res = spec.load.placement.resources or {}
    caps, where = policy.caps, "spec.load.placement.resources"
    out = []
    if res.get("claims"):
        # A claim (DRA) is a device outside every count and cap here.
        out.append(Violation(f"{where}.claims", "caps.maxGpusPerPod", "workers take no claims"))
    gpus = gpu_count(res)
    if caps.max_gpus_per_pod is not None and gpus > caps.max_gpus_per_pod:
        out.append(Violation(where, "caps.maxGpusPerPod", f"asks for {gpus} GPUs per worker"))
    for name, cap in (("cpu", caps.worker_cpu), ("memory", caps.worker_memory)):
        if cap is None:
            continue
        for part in ("requests", "limits"):
            qty = (res.get(part) or {}).get(name)
            if qty is not None and parse_quantity(str(qty)) > parse_quantity(cap):
                out.append(
                    Violation(
                        f"{where}.{part}.{name}",
                        f"caps.worker{name.capitalize()}",
                        f"{qty} is above the cap of {cap}",
                    )
                )
    return out


def caps_violations(
    spec: LoadTestSpec, policy: ClusterPolicy, runs_in_flight: int
) -> list[Violation]:
    load, caps = spec.load, policy.caps
    out = []
    stages = "spec.load.trace" if load.trace is not None else "spec.load.stages"
    if load.model == "closed":
        if caps.max_users is not None and load.peak > caps.max_users:
            out.append(
                Violation(stages, "caps.maxUsers", f"peak {load.peak:g} users is above the cap")
            )
    elif caps.max_rate is not None and load.peak > caps.max_rate:
        out.append(
            Violation(
                stages,
                "caps.maxRate",
                f"peak {load.peak:g} req/s is above the cap of {caps.max_rate:g} req/s",
            )
        )
    # A sweep's steps each wait up to scenario.timeout for their last replies, and the run
    # (its workers, the target's Lease) lasts that long: the cap is on the whole.
    length = spec.run_length_s
    if caps.max_duration is not None and length > caps.max_duration:
        what = f"the stages last {load.duration_s:g}s"
        if load.sweep is not None:
            stages = "spec.load.sweep"
            what = (
                f"the sweep's {load.sweep.max_steps} steps last {load.duration_s:g}s, plus up "
                f"to scenario.timeout ({spec.scenario.timeout:g}s) each for their last "
                f"replies: {length:g}s"
            )
        out.append(
            Violation(
                stages, "caps.maxDuration", f"{what}, above the cap of {caps.max_duration:g}s"
            )
        )
    out += wait_violations(spec, caps.max_wait)
    if caps.max_workers is not None and load.workers > caps.max_workers:
        out.append(
            Violation("spec.load.workers", "caps.maxWorkers", f"{load.workers} is above the cap")
        )
    if (
        caps.max_in_flight is not None
        and load.model != "closed"
        and load.max_in_flight > caps.max_in_flight
    ):
        out.append(
            Violation(
                "spec.load.maxInFlight",
                "caps.maxInFlight",
                f"{load.max_in_flight} is above the cap",
            )
        )
    out += shape_violations(spec, policy)
    limit = caps.max_concurrent_runs_per_namespace
    if limit is not None and runs_in_flight >= limit:
        out.append(
            Violation(
                "metadata.namespace",
                "caps.maxConcurrentRunsPerNamespace",
                f"{runs_in_flight} runs of this namespace are in flight; at most {limit}",
            )
        )
    return out


def wait_violations(spec: LoadTestSpec, cap: float | None) -> list[Violation]:
    """Each wait the run holds its workers (their Job's deadline) or its target's Lease
    through, against caps.maxWait: a 10 s load with runGrace 720h would hold both a month."""
    if cap is None:
        return []
    to = spec.timeouts
    waits = {
        "spec.timeouts.workersReady": to.workers_ready,
        "spec.timeouts.runGrace": to.run_grace,
        "spec.timeouts.analysis": to.analysis,
        "spec.timeouts.targetReady": to.target_ready,
        "spec.target.readiness.timeout": spec.target.readiness.timeout,
        "spec.scenario.timeout": spec.scenario.timeout,
    }
    return [
        Violation(field, "caps.maxWait", f"{value:g}s is above the cap of {cap:g}s")
        for field, value in waits.items()
        if value is not None and value > cap
    ]


def shape_violations(spec: LoadTestSpec, policy: ClusterPolicy) -> list[Violation]:
    """Sweep steps (by formula), and the body's and dataset rows' size and depth."""
    caps, out = policy.caps, []
    sweep = spec.load.sweep
    steps_cap = caps.max_sweep_steps
    if sweep is not None and steps_cap is not None and sweep.max_steps > steps_cap:
        out.append(
            Violation(
                "spec.load.sweep",
                "caps.maxSweepSteps",
                f"{sweep.max_steps} steps (geometric from startRate to maxRate, plus "
                f"bisections) is above the cap of {steps_cap}; raise startRate or factor",
            )
        )
    depth = caps.max_body_depth if caps.max_body_depth is not None else 10**6
    size = caps.max_body_bytes if caps.max_body_bytes is not None else 10**12
    body = spec.scenario.body
    problem: str | None = None
    if isinstance(body, str):
        n = len(body.encode())
        problem = f"is {n:,} bytes, more than {size:,}" if n > size else None
        rule = "caps.maxBodyBytes"
    elif body is not None:
        found = tree_problem(body, max_depth=depth, max_bytes=size)
        problem = None if found is None else found.message
        rule = "caps.maxBodyDepth" if found and found.kind == "depth" else "caps.maxBodyBytes"
    if problem is not None:
        out.append(Violation("spec.scenario.body", rule, problem))
    rows = (spec.scenario.dataset.inline if spec.scenario.dataset else None) or []
    for i, row in enumerate(rows):
        found = tree_problem(row, max_depth=depth)
        if found is not None and found.kind == "depth":
            where = f"spec.scenario.dataset.inline[{i}]"
            out.append(Violation(where, "caps.maxBodyDepth", found.message))
            break
    return out
