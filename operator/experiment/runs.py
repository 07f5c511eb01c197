"""A ScalingExperiment's runs, pure: their order and names, the objects they need (snapshot
ConfigMap, child LoadTest), rollout completion, replica sampling, the row each run leaves
in status, and the budget check. No API calls."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from surge.api.experiment import ScalingExperimentSpec, Variant
from surge.api.experiment_status import ExperimentStep, HpaInForce, RunRow
from surge.api.loadtest import DeploymentRef
from surge.api.results import ResultsError, RunResults, load_results
from surge.api.status import Phase
from surge.loadgen.trace import pin_window
from surge.operator.conditions import now_rfc3339, parse_time
from surge.operator.experiment.scaled_object_fields import so_brief
from surge.operator.experiment.variants import run_cost
from surge.operator.loadtest import builders
from surge.results.timeline import first_rise, value_changes

LABEL_EXPERIMENT = "surge.dev/experiment"
LABEL_VARIANT = "surge.dev/variant"
MAX_SERIES_POINTS = 120
MAX_RUN_SERIES_TOTAL = 4000
"""Series points all run rows of an experiment share (200 runs: 20 each)."""
MIN_ROW_POINTS = 12


def snapshot_name(experiment: str) -> str:
    return builders.fit_name(f"{experiment}-snapshot")


def child_name(experiment: str, variant: str, repetition: int) -> str:
    return builders.fit_name(f"{experiment}-{variant}-r{repetition}", 40)


def is_child(loadtest: str, ref: dict[str, Any], experiment: dict[str, Any]) -> bool:
    """Whether the experiment `ref` points at is this one (uid) and `loadtest` a name it
    gives its children (its raw body: read before its spec is known to be valid)."""
    name, spec = experiment["metadata"].get("name"), experiment.get("spec") or {}
    if experiment["metadata"].get("uid") != ref.get("uid"):
        return False
    return loadtest in {
        child_name(str(name), str(v.get("name")), r)
        for v in spec.get("variants") or []
        if isinstance(v, dict)
        for r in range(int(spec.get("repetitions") or 1))
    }


def runs_of(spec: ScalingExperimentSpec) -> list[tuple[Variant, int]]:
    """Variant by variant, repetition after repetition (a, b, a, b)."""
    return [(v, r) for r in range(spec.repetitions) for v in spec.variants]


def child_loadtest(
    owner: dict[str, Any], spec: ScalingExperimentSpec, variant: Variant, repetition: int
) -> dict[str, Any]:
    """The LoadTest of one run: the template, pointed at the target Deployment; a trace's
    `last` window pinned to the experiment's creation, so every variant replays one curve."""
    name, ns = owner["metadata"]["name"], owner["metadata"]["namespace"]
    lt = spec.load_test.model_copy(deep=True)
    created = parse_time(owner["metadata"].get("creationTimestamp"))
    if created is not None:
        lt.load = pin_window(lt.load, created.timestamp())
    if lt.target.deployment_ref is None:
        lt.target.deployment_ref = DeploymentRef(name=spec.target_ref.deployment)
    return {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {
            "name": child_name(name, variant.name, repetition),
            "namespace": ns,
            "labels": {LABEL_EXPERIMENT: builders.fit_name(name), LABEL_VARIANT: variant.name},
            "ownerReferences": [builders.owner_reference(owner)],
        },
        "spec": lt.wire(),
    }


def rollout_done(dep: dict[str, Any] | None) -> bool:
    if dep is None:
        return False
    meta, spec, st = dep["metadata"], dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    return (
        int(st.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and int(st.get("updatedReplicas") or 0) == want
        and int(st.get("availableReplicas") or 0) >= want
        and int(st.get("replicas") or 0) == want
    )


def sample_replicas(step: ExperimentStep, replicas: int | None, now: datetime) -> None:
    """Integrates the Deployment's replicas over the load (replicas None: not loading yet),
    so cost needs no Prometheus; keeps a bounded series of changes."""
    last = parse_time(step.last_sample) or now
    step.last_sample = now_rfc3339(now)
    if replicas is None:
        return
    dt = (now - last).total_seconds()
    step.replica_seconds = (step.replica_seconds or 0.0) + replicas * dt
    step.observed_seconds = (step.observed_seconds or 0.0) + dt
    step.replicas_min = min(
        replicas, step.replicas_min if step.replicas_min is not None else replicas
    )
    step.replicas_max = max(
        replicas, step.replicas_max if step.replicas_max is not None else replicas
    )
    # [seconds since the load began, replicas] at each change, bounded.
    series = list(step.replica_series or [])
    if not series or series[-1][1] != replicas:
        at = round(step.observed_seconds - dt, 3)
        if len(series) < MAX_SERIES_POINTS:
            series.append([at, float(replicas)])
        elif step.replica_series_cut_s is None:
            step.replica_series_cut_s = at  # the series holds until here only
    step.replica_series = series


def thinned(
    series: list[list[float]] | None, most: int = MAX_SERIES_POINTS
) -> list[list[float]] | None:
    """At most `most` points of a series (every k-th, and the last): a row of status stays
    small however long the run or fine the Prometheus step."""
    if not series or len(series) <= most:
        return series
    k = -(-len(series) // (most - 1))
    return [*series[::k][: most - 1], series[-1]]


def row_points(planned_runs: int) -> int:
    """Series points each run row keeps: MAX_RUN_SERIES_TOTAL shared by the planned runs,
    between MIN_ROW_POINTS and MAX_SERIES_POINTS."""
    share = MAX_RUN_SERIES_TOTAL // max(planned_runs, 1)
    return max(MIN_ROW_POINTS, min(MAX_SERIES_POINTS, share))


def hpa_brief(spec: dict[str, Any] | None) -> HpaInForce | None:
    """The HPA spec in brief for a run row (the whole spec would be copied into every row)."""
    if spec is None:
        return None
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()

    def count(key: str) -> int | None:
        value = spec.get(key)
        return value if isinstance(value, int) else None

    return HpaInForce(
        min_replicas=count("minReplicas"),
        max_replicas=count("maxReplicas"),
        metrics=len(spec.get("metrics") or []),
        digest=hashlib.sha256(canonical).hexdigest()[:16],
    )


def run_row(
    variant: Variant,
    rep: int,
    loadtest: str,
    status: dict[str, Any],
    step: ExperimentStep,
    price: float | None,
    planned_runs: int = 1,
) -> RunRow:
    """One run's row: the child's results, cluster replicas (Prometheus when it had them,
    else the operator's own samples), and cost. `planned_runs`: the experiment's runs
    (variants × repetitions), which share the rows' series points."""
    most = row_points(planned_runs)
    results = _child_results(status)
    summary = status.get("summary") or {}
    cluster = results.cluster if results is not None else None
    replicas = cluster.replicas if cluster is not None else None
    observed = float(step.observed_seconds or 0.0)
    from_prom = replicas is not None and replicas.replica_seconds is not None
    replica_seconds = (
        replicas.replica_seconds
        if replicas is not None and from_prom
        else (step.replica_seconds if observed else None)
    )
    requests = results.requests.sent if results is not None else None
    hours, cost, per_1k = run_cost(replica_seconds, price, requests)
    mean = (replica_seconds / observed) if replica_seconds is not None and observed else None
    window_s = results.window.measured_seconds if results is not None else 0.0
    if not from_prom and mean is not None and window_s > 0:
        # The operator's samples span the whole load and the child's end (warm-up and
        # grace too), the requests only the measured window: per 1k requests, the mean
        # replicas are priced over that same window, not over the longer span.
        per_1k = run_cost(mean * window_s, price, requests)[2]
    return RunRow(
        name=variant.name,
        repetition=rep,
        load_test=loadtest,
        phase=status.get("phase"),
        passed=status.get("phase") == Phase.SUCCEEDED.value,
        achieved_rps=summary.get("achievedRps"),
        p95_ms=summary.get("p95Ms"),
        p99_ms=results.latency.p99 if results is not None else None,
        ttft_p95_ms=results.ttft.p95 if results is not None else None,
        error_rate=summary.get("errorRate"),
        requests=requests,
        replicas_min=replicas.min if replicas is not None else step.replicas_min,
        replicas_max=replicas.max if replicas is not None else step.replicas_max,
        replicas_mean=replicas.mean if replicas is not None else mean,
        time_to_scale_up_s=(
            replicas.time_to_first_scale_up_s if replicas is not None else own_rise(step)
        ),
        scale_events=replicas.scale_events if replicas is not None else own_events(step),
        replica_seconds=replica_seconds,
        replica_source="prometheus" if from_prom else "operator",
        price_per_replica_hour=price,
        replica_hours=hours,
        cost=cost,
        cost_per1k_requests=per_1k,
        pending_seconds=step.pending_seconds,
        rollout_seconds=step.rollout_seconds,
        hpa_in_force=hpa_brief(step.hpa_in_force),
        scaled_object_in_force=so_brief(step.scaled_object_in_force),
        replica_series=thinned(
            replicas.series if replicas is not None and from_prom else step.replica_series,
            most,
        ),
        replica_series_end_s=(
            results.window.measured_seconds
            if results is not None and from_prom
            else _own_series_end(observed, step.replica_series_cut_s)
        ),
    )


def own_rise(step: ExperimentStep) -> float | None:
    """Time to first scale-up from the operator's series: seconds from the load's start to
    the first change above the first value; None when it never rose while recorded."""
    return first_rise([(t, v) for t, v in step.replica_series or []], 0.0)


def own_events(step: ExperimentStep) -> float | None:
    """Scale events from the operator's series (one point per change); None when its cap
    cut it, since later changes went uncounted, or when nothing was sampled."""
    series = step.replica_series
    if not series or step.replica_series_cut_s is not None:
        return None
    return float(value_changes([(t, v) for t, v in series]))


def _own_series_end(observed: float, cut_s: float | None) -> float | None:
    """Where the operator's own series is complete: the load observed, or the first change
    its cap left out (comparisons must not read a held value past it)."""
    end = observed if cut_s is None else min(observed, cut_s)
    return end or None


def _child_results(status: dict[str, Any]) -> RunResults | None:
    """The child LoadTest's results; None when it has none or they cannot be read (the row
    then shows what the operator observed itself)."""
    raw = status.get("results")
    if not raw:
        return None
    try:
        return load_results(raw, "status.results")
    except ResultsError:
        return None


def over_budget(spec: ScalingExperimentSpec, runs: list[RunRow]) -> bool:
    if spec.budget is None:
        return False
    hours = sum(r.replica_hours or 0.0 for r in runs)
    gpu_variants = {
        v.name
        for v in spec.variants
        if "nvidia.com/gpu" in str((v.resources or {}).get("limits") or {})
    }
    gpu_hours = sum(r.replica_hours or 0.0 for r in runs if r.name in gpu_variants)
    b = spec.budget
    return bool(
        (b.max_replica_hours is not None and hours > b.max_replica_hours)
        or (b.max_gpu_hours is not None and gpu_hours > b.max_gpu_hours)
    )
