"""The worker plan: one JSON document that tells every worker of a run what to do.

The operator (or `surge run`) calls `build_plan` once and stores the result as
`plan.json` in the run's ConfigMap. Every worker reads the same document and takes
its own share from its index (`--index`, or JOB_COMPLETION_INDEX in an indexed
Job): `plan.for_index(i)`. Nothing in the plan is per-worker except `index`.

Secrets: a header given as `valueFrom.secretKeyRef` is not in the plan. The pod
gets it as the env var `SURGE_HEADER_<i>`, where <i> is the header's position in
`spec.target.headers` (0-based); `header_env_var(i)` spells the name. Local runs
read the same variables.

Dataset: `configMapRef` and `file` rows must be resolved into `inline` before the
plan is built (`with_inline_rows`), so workers never read files or ConfigMaps.
Likewise a trace's `configMapRef` or `prometheus` curve becomes `points`
(surge.loadgen.trace_resolve): the plan, and so its hash, carry the curve itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from surge.api.loadtest import LoadTestSpec
from surge.loadgen import schedule
from surge.loadgen.trace import load_segments

PLAN_VERSION = 1
HEADER_ENV_PREFIX = "SURGE_HEADER_"
DEFAULT_BARRIER_TIMEOUT_S = 300.0


def header_env_var(position: int) -> str:
    """The env var holding the value of spec.target.headers[position] (a Secret's key)."""
    return f"{HEADER_ENV_PREFIX}{position}"


class WorkerPlan(BaseModel):
    """What a worker runs. Serialize with `plan.model_dump_json()`; read with `parse_plan`."""

    model_config = ConfigDict(extra="forbid")

    version: int = PLAN_VERSION
    spec: LoadTestSpec
    name: str
    """The LoadTest's name (the `loadtest` label on metrics)."""
    namespace: str
    run_id: str
    variant: str | None = None
    """The ScalingExperiment variant this run belongs to (the `variant` label)."""
    workers: int = Field(ge=1)
    index: int = Field(0, ge=0)
    barrier_timeout_s: float = Field(DEFAULT_BARRIER_TIMEOUT_S, gt=0)
    """How long a worker waits for `startAt` before giving up (exit 3)."""
    allowed_networks: list[str] = Field(default_factory=list)
    """Address ranges the target host may resolve to, from the cluster policy (the operator
    checked them at admission; the worker checks again where it runs). Empty: no check."""
    process: int = Field(0, ge=0)
    processes: int = Field(1, ge=1)
    """This sending process of the worker, and how many it runs (surge.loadgen.processes);
    set where the worker runs, never in plan.json."""

    def for_index(self, index: int) -> WorkerPlan:
        """This plan as worker `index` runs it. Raises ValueError when out of range."""
        if not 0 <= index < self.workers:
            raise ValueError(f"worker index {index} is not in 0..{self.workers - 1}")
        return self.model_copy(update={"index": index})

    def for_process(self, process: int, processes: int) -> WorkerPlan:
        """This worker's plan as its process `process` of `processes` runs it."""
        if not 0 <= process < processes:
            raise ValueError(f"process {process} is not in 0..{processes - 1}")
        return self.model_copy(update={"process": process, "processes": processes})

    @property
    def slot(self) -> int:
        """This process's place among all W × P of the run (schedule's module doc)."""
        return self.index + self.process * self.workers

    @property
    def slots(self) -> int:
        return self.workers * self.processes

    @property
    def labels(self) -> dict[str, str]:
        return {
            "loadtest": self.name,
            "variant": self.variant or "",
            "worker": str(self.index),
        }

    @property
    def segments(self) -> list[schedule.Segment]:
        """The load's rate curve: its stages', or its trace's resolved points."""
        return load_segments(self.spec.load)

    @property
    def max_in_flight(self) -> int:
        """This process's share of load.maxInFlight (open model), at least 1."""
        return max(1, self.spec.load.max_in_flight // self.slots)


def build_plan(
    spec: LoadTestSpec,
    *,
    name: str,
    namespace: str,
    run_id: str,
    index: int = 0,
    workers: int | None = None,
    variant: str | None = None,
    barrier_timeout_s: float | None = None,
    allowed_networks: list[str] | None = None,
) -> WorkerPlan:
    """The plan for one run. Pure. `workers` defaults to spec.load.workers.

    The barrier timeout defaults to spec.timeouts.workersReady. Raises ValueError when
    the dataset still points at a file or ConfigMap (resolve it with with_inline_rows).
    """
    n = spec.load.workers if workers is None else workers
    ds = spec.scenario.dataset
    if ds is not None and ds.inline is None:
        raise ValueError("resolve scenario.dataset into inline rows before building the plan")
    if spec.load.trace is not None and not spec.load.trace.resolved:
        raise ValueError("resolve load.trace into points before building the plan")
    timeout = spec.timeouts.workers_ready if barrier_timeout_s is None else barrier_timeout_s
    plan = WorkerPlan(
        spec=spec,
        name=name,
        namespace=namespace,
        run_id=run_id,
        variant=variant,
        workers=n,
        barrier_timeout_s=timeout,
        allowed_networks=list(allowed_networks or []),
    )
    return plan.for_index(index)


def with_inline_rows(spec: LoadTestSpec, rows: list[dict[str, Any]]) -> LoadTestSpec:
    """A copy of spec whose dataset holds `rows` inline (order kept)."""
    ds = spec.scenario.dataset
    if ds is None:
        raise ValueError("the spec has no dataset")
    new_ds = ds.model_copy(update={"inline": rows, "file": None, "config_map_ref": None})
    return spec.model_copy(
        update={"scenario": spec.scenario.model_copy(update={"dataset": new_ds})}
    )


def plan_json(plan: WorkerPlan) -> str:
    """The ConfigMap form (the spec in its camelCase wire form)."""
    data = plan.model_dump(mode="json", exclude={"spec", "process", "processes"})
    data["spec"] = plan.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(data, separators=(",", ":"))


PLAN_SHA256_ENV = "SURGE_PLAN_SHA256"
"""Set by the operator on worker pods: the SHA-256 of plan.json as it was admitted."""


def plan_sha256(text: str) -> str:
    """The digest the operator stores at admission and each worker checks."""
    return hashlib.sha256(text.encode()).hexdigest()


def check_plan_digest(text: str, expected: str | None) -> None:
    """Raise ValueError when `expected` is set and plan.json's SHA-256 is another: the plan
    ConfigMap was changed after the operator admitted it, so it is not run."""
    if not expected:
        return
    got = plan_sha256(text)
    if got != expected:
        raise ValueError(
            f"the plan's SHA-256 is {got[:12]}, not the {expected[:12]} the operator admitted: "
            "the plan ConfigMap was changed after admission; refusing to run it"
        )


def outside_networks(addresses: list[str], networks: list[str]) -> list[str]:
    """The addresses in none of `networks` (all of them allowed when `networks` is empty)."""
    if not networks:
        return []
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    return [a for a in addresses if not any(ipaddress.ip_address(a) in n for n in nets)]


def parse_plan(text: str) -> WorkerPlan:
    """Read plan.json. Raises pydantic.ValidationError or ValueError on bad input."""
    return WorkerPlan.model_validate_json(text)


def resolve_headers(plan: WorkerPlan, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Target headers then scenario headers (scenario wins). Secret-backed ones come from env.

    Raises ValueError naming the env var when a secret-backed header has no value.
    """
    env = os.environ if env is None else env
    out: dict[str, str] = {}
    for i, h in enumerate(plan.spec.target.headers):
        if h.value is not None:
            out[h.name] = h.value
            continue
        var = header_env_var(i)
        if var not in env:
            raise ValueError(
                f"header {h.name!r} (spec.target.headers[{i}]) comes from a Secret; "
                f"set the env var {var}"
            )
        out[h.name] = env[var]
    out.update(plan.spec.scenario.headers)
    return out
