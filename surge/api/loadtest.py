"""The LoadTest resource (surge.dev/v1alpha1): how hard to load the target, and what passes.

The target models (URL, headers, readiness) are surge.api.target and the scenario models
(what one request is, its dataset, the stream shape) surge.api.scenario, re-exported here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from surge.api.base import API_VERSION, Model
from surge.api.bounds import MAX_ITEMS, MAX_RATE, MAX_STAGES, Key, SendTick, ShortText, Text
from surge.api.durations import Duration
from surge.api.placement import Placement
from surge.api.promql import QueryTemplateError, check_templates
from surge.api.scenario import ConfigMapKeyRef, Conversation, Dataset, PositiveInt, Scenario
from surge.api.spec_rules import SPEC_RULES
from surge.api.status import LoadTestStatus
from surge.api.sweep import Sweep, check_sweep_load, check_sweep_thresholds
from surge.api.target import (
    DeploymentRef,
    Header,
    HeaderValueFrom,
    HttpCheck,
    Name,
    Readiness,
    SecretKeyRef,
    Target,
    check_http_url,
)
from surge.api.thresholds import Threshold, parse_threshold
from surge.api.trace import Trace, check_trace_load

MAX_PROCESSES = 64
"""The most sending processes one worker runs (load.processesPerWorker)."""

__all__ = [
    "Cleanup",
    "ConfigMapKeyRef",
    "Conversation",
    "Dataset",
    "DeploymentRef",
    "Header",
    "HeaderValueFrom",
    "HttpCheck",
    "Load",
    "LoadTest",
    "LoadTestSpec",
    "Name",
    "ObjectMeta",
    "Placement",
    "PositiveInt",
    "Prometheus",
    "PrometheusAuth",
    "Readiness",
    "Safety",
    "Scenario",
    "SecretKeyRef",
    "Stage",
    "Sweep",
    "Target",
    "Timeouts",
    "Trace",
]


class Stage(Model):
    duration: Duration
    target: float = Field(ge=0, le=MAX_RATE)
    """Requests per second (open models) or virtual users (closed), reached at the stage's end."""

    @field_validator("duration")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("a stage must last more than 0s")
        return v


class Load(Model):
    model: Literal["constant", "poisson", "closed", "sweep", "trace"]
    """constant/poisson: open loop, arrivals per second; closed: users that wait for replies;
    sweep: open-loop constant-rate steps that find the highest rate the thresholds allow;
    trace: open loop, arrivals following a recorded rate curve (load.trace)."""
    stages: list[Stage] = Field(default_factory=list, max_length=MAX_STAGES, validate_default=True)
    """Every model but sweep and trace needs at least one."""
    start_target: float | None = Field(None, ge=0, le=MAX_RATE)
    """Where the first stage ramps from; unset means the first stage holds its target throughout."""
    sweep: Sweep | None = None
    """The sweep's rates and timing (model sweep only; docs/metrics.md, "Capacity sweep")."""
    trace: Trace | None = None
    """The rate curve to replay and its source (model trace only; docs/api.md)."""
    warmup: Duration = 0.0
    """The first part of the timeline, excluded from every result."""
    think_time: Duration = 0.0
    """Closed model: pause between a reply and the user's next request."""
    max_in_flight: PositiveInt = 1000
    """Open model: arrivals beyond this many outstanding requests are dropped and counted."""
    send_tick: SendTick | None = None
    """Open model: the scheduler's shortest sleep (1ms-10ms; unset: 1ms, the loop's timer
    resolution). Longer: fewer wake-ups, up to a tick more lag (docs/metrics.md)."""
    workers: int = Field(1, ge=1, le=200)
    """Generator processes (pods in a cluster); the load is split evenly between them."""
    processes_per_worker: int | None = Field(None, ge=1, le=MAX_PROCESSES)
    """Sending processes inside each worker, sharing its slice exactly; unset: one per
    whole core of the worker's CPU limit (else request) in a cluster, the worker's share of
    this machine's cores with `surge run` (docs/api.md). Not with model sweep."""
    placement: Placement = Field(default_factory=Placement)
    # ±(2**53 − 1): the API server reads schema bounds as float64; 2**63 − 1 rounds past int64.
    seed: int | None = Field(None, ge=-(2**53 - 1), le=2**53 - 1)
    """Fixes Poisson gaps and dataset order, so two runs send the same schedule."""

    @field_validator("stages")
    @classmethod
    def _some_stages(cls, v: list[Stage], info: ValidationInfo) -> list[Stage]:
        model = info.data.get("model")
        if not v and model not in (None, "sweep", "trace"):
            raise ValueError(f"required field is missing: the {model} model needs a stage")
        return v

    @property
    def duration_s(self) -> float:
        """The load's length; for a sweep, the longest it can last (every step run)."""
        if self.sweep is not None:
            return self.sweep.duration_s
        if self.trace is not None:
            return self.trace.duration_s or 0.0  # a ConfigMap's curve: known once read
        return sum(s.duration for s in self.stages)

    @property
    def peak(self) -> float:
        """The highest rate (or users) the load may ask for; a sweep's maxRate, so every cap
        on the rate applies to it."""
        if self.sweep is not None:
            return self.sweep.max_rate
        if self.trace is not None:
            return self.trace.peak or 0.0  # known once the curve is resolved
        return max([s.target for s in self.stages] + [self.start_target or 0.0])

    @model_validator(mode="after")
    def _coherent(self) -> Load:
        if check_trace_load(self):
            return self  # the length and peak are checked once the curve is read
        if self.model == "sweep":
            if (self.processes_per_worker or 1) > 1:
                raise ValueError(
                    "processesPerWorker: a sweep runs one process per worker "
                    "(unset it, or scale with load.workers)"
                )
            check_sweep_load(self)
            return self
        if self.sweep is not None:
            raise ValueError("sweep: set only with model: sweep (or drop load.sweep)")
        if self.warmup >= self.duration_s:
            raise ValueError(
                f"warmup ({self.warmup:g}s) must be shorter than the stages "
                f"({self.duration_s:g}s in all), or nothing is measured"
            )
        if self.model != "closed" and self.think_time:
            raise ValueError("thinkTime applies to the closed model only")
        if self.model == "closed" and self.send_tick is not None:
            raise ValueError("sendTick applies to the open models only (drop it, or use constant)")
        if self.model == "closed":
            for i, s in enumerate(self.stages):
                if s.target != int(s.target):
                    raise ValueError(
                        f"stages[{i}].target: the closed model counts whole users, not {s.target:g}"
                    )
        if self.peak <= 0:
            raise ValueError("every stage targets 0: nothing would be sent")
        return self


class PrometheusAuth(Model):
    bearer_token_secret_ref: SecretKeyRef | None = None
    basic_auth_secret_ref: SecretKeyRef | None = None
    """Secret key holding 'user:password'."""


class Prometheus(Model):
    url: Text | None = None
    """Defaults to the operator's --prometheus-url; unset: cluster metrics are skipped."""
    auth: PrometheusAuth | None = None
    queries: dict[Key, Text] = Field(default_factory=dict, max_length=MAX_ITEMS)
    """Override default PromQL by name (see docs/metrics.md); templates may use {namespace},
    {deployment}, {pod_regex}, {loadtest}, {run}, {window}, {step}."""
    step: Duration = 15.0
    """Resolution of the stored time series."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_http_url(v)

    @field_validator("queries")
    @classmethod
    def _queries(cls, v: dict[str, str]) -> dict[str, str]:
        try:
            check_templates(v)
        except QueryTemplateError as exc:
            raise ValueError(str(exc)) from None
        return v


class Cleanup(Model):
    workers: Literal["Delete", "Keep", "DeleteOnSuccess"] = "DeleteOnSuccess"
    """What happens to worker Jobs and pods when a run ends; failed runs keep them for debugging."""
    ttl_seconds_after_finished: int | None = Field(None, ge=0, le=2**31 - 1)
    """Set on the worker Job, so Kubernetes removes kept workers after this long."""


class Timeouts(Model):
    """Every waiting phase ends by its timeout, with its own reason (docs/status.md)."""

    queued: Duration = 7200.0
    """Pending: how long the run may wait while another run holds its target (QueueTimeout)."""
    target_ready: Duration | None = None
    """Overrides target.readiness.timeout."""
    workers_ready: Duration = Field(180.0, gt=0)
    """Start barrier: every worker must be Running by then, or the run fails with the reason."""
    run_grace: Duration = 120.0
    """Allowed beyond the load's own duration before workers are stopped and the run fails."""
    analysis: Duration = 120.0
    """Analyzing: merging results and querying Prometheus, retries included (AnalysisTimeout)."""


class Safety(Model):
    max_rate: float = Field(1000.0, gt=0, le=MAX_RATE)
    """Open model: no stage may target more requests per second than this."""
    max_users: int = Field(1000, ge=1, le=int(MAX_RATE))
    """Closed model: no stage may target more virtual users than this."""
    max_duration: Duration = 3600.0
    """The stages may not add up to more than this."""


class LoadTestSpec(Model):
    model_config = ConfigDict(
        **Model.model_config,
        json_schema_extra={"x-kubernetes-validations": SPEC_RULES},
    )
    target: Target
    scenario: Scenario = Field(default_factory=Scenario)
    load: Load
    thresholds: list[ShortText] = Field(default_factory=list, max_length=MAX_ITEMS)
    """SLOs such as 'latency.p95 < 800ms' or 'errors.rate < 1%' (docs/metrics.md)."""
    prometheus: Prometheus = Field(default_factory=Prometheus)
    cleanup: Cleanup = Field(default_factory=Cleanup)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    safety: Safety = Field(default_factory=Safety)
    run_id: str = Field(
        "1", min_length=1, max_length=40, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )
    """Change it to run again without deleting the resource (GitOps)."""
    suspend: bool = False
    """true aborts a running test and keeps a new one from starting."""
    image: Text | None = None
    """Loadgen image; defaults to the operator's --loadgen-image."""

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for i, text in enumerate(v):
            try:
                t = parse_threshold(text)
            except ValueError as exc:
                raise ValueError(f"[{i}]: {exc}") from None
            key = f"{t.metric}{t.op}"
            if key in seen:
                raise ValueError(f"[{i}]: {text!r} repeats a threshold on {t.metric} {t.op}")
            seen.add(key)
        return v

    @model_validator(mode="after")
    def _safety(self) -> LoadTestSpec:
        load, safety = self.load, self.safety
        if load.model == "closed":
            if load.peak > safety.max_users:
                raise ValueError(
                    f"load peaks at {load.peak:g} users, above safety.maxUsers "
                    f"({safety.max_users}); raise the cap if you mean it"
                )
        elif load.peak > safety.max_rate:
            what = "load.sweep.maxRate is" if load.sweep is not None else "load peaks at"
            raise ValueError(
                f"{what} {load.peak:g} req/s, above safety.maxRate "
                f"({safety.max_rate:g}); raise the cap if you mean it"
            )
        if load.duration_s > safety.max_duration:
            what = "a sweep of every step would last" if load.sweep else "stages last"
            raise ValueError(
                f"{what} {load.duration_s:g}s, above safety.maxDuration ({safety.max_duration:g}s)"
            )
        if load.model == "sweep":
            check_sweep_thresholds(self.parsed_thresholds())
        procs = load.processes_per_worker or 1
        if load.model != "closed" and procs > 1 and load.max_in_flight < load.workers * procs:
            raise ValueError(
                "load.maxInFlight must be at least load.workers × load.processesPerWorker "
                "(it is split per sending process)"
            )
        if load.model != "closed" and load.max_in_flight < load.workers:
            raise ValueError(
                "load.maxInFlight must be at least load.workers (it is split per worker)"
            )
        return self

    @property
    def run_length_s(self) -> float:
        """The longest the workers may take to send the load: its duration and, for a
        sweep, one request timeout per step (each step waits for its last replies)."""
        sweep = self.load.sweep
        extra = self.scenario.timeout * sweep.max_steps if sweep is not None else 0.0
        return self.load.duration_s + extra

    def parsed_thresholds(self) -> list[Threshold]:
        return [parse_threshold(t) for t in self.thresholds]


class ObjectMeta(Model):
    """The parts of metadata Surge reads; the rest is kept as Kubernetes sent it."""

    model_config = Model.model_config | {"extra": "allow"}
    name: Name | None = None
    namespace: Name | None = None


class LoadTest(Model):
    api_version: Literal["surge.dev/v1alpha1"] = API_VERSION  # type: ignore[assignment]
    kind: Literal["LoadTest"] = "LoadTest"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: LoadTestSpec
    status: LoadTestStatus | None = None
