"""Hostile specs (#25) on the in-memory FakeKube: the caps of the cluster policy, a reconcile
that raises, a watch line that cannot be read, and a dry run too large for status."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from surge.api.policy import Caps, ClusterPolicy
from surge.operator import crash, handlers
from surge.operator.context import MESSAGE_CHARS, Decision
from surge.operator.experiment import dry_run
from surge.operator.experiment import reconcile as experiments
from surge.operator.kube import watch_guard
from surge.operator.loadtest import lifecycle
from surge.operator.settings import Settings
from tests.operator import test_experiments as sx
from tests.operator import test_lifecycle as lt
from tests.operator.fake_kube import FakeKube, merge_patch

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _lt_step(spec: dict[str, Any], settings: Settings = lt.SETTINGS) -> dict[str, Any]:
    kube = FakeKube()
    kube.put(lt.SERVICE)
    kube.put(lt._deployment(ready=True))
    body = lt._body(spec)
    step = lifecycle.reconcile(body, kube, settings, T0)  # type: ignore[arg-type]
    status: dict[str, Any] = merge_patch({}, step.status)  # not the spec: 10,000 deep
    return status


def _sweep(start: float, factor: float, max_rate: float = 100) -> dict[str, Any]:
    return lt._spec(
        load={
            "model": "sweep",
            "sweep": {
                "startRate": start,
                "factor": factor,
                "maxRate": max_rate,
                "stepDuration": "1s",
            },
        }
    )


def test_sweep_steps_beyond_the_cap_are_a_policy_violation() -> None:
    st = _lt_step(_sweep(1, 1.05))  # 96 geometric steps + 3 bisections: within 100
    assert st["phase"] == "Pending", st["message"]
    st = _lt_step(_sweep(1, 1.01))  # 464 + 3
    assert st["phase"] == "Failed" and "policy.caps.maxSweepSteps" in st["message"], st
    st = _lt_step(_sweep(0.001, 1.000000000001))  # ~10^13: the model's own bound
    assert st["phase"] == "Failed" and "spec.load.sweep" in st["message"], st
    assert st["conditions"][0]["reason"] == "InvalidSpec"


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (_nested(33), "policy.caps.maxBodyDepth"),
        ({"prompt": "x" * 70_000}, "policy.caps.maxBodyBytes"),
        ("y" * 70_000, "policy.caps.maxBodyBytes"),
    ],
)
def test_the_body_is_capped_by_depth_and_size(body: Any, rule: str) -> None:
    st = _lt_step(lt._spec(scenario={"body": body}))
    assert st["phase"] == "Failed" and "spec.scenario.body" in st["message"], st
    assert rule in st["message"], st["message"]
    # The admin may allow more, up to the models' own bounds.
    roomy = Settings(
        policy=ClusterPolicy(caps=Caps(max_body_depth=64, max_body_bytes=1_000_000)),
    )
    assert _lt_step(lt._spec(scenario={"body": body}), roomy)["phase"] == "Pending"


def test_the_deepest_body_the_api_server_stores_is_an_invalid_spec() -> None:
    st = _lt_step(lt._spec(scenario={"body": _nested(10_000)}))
    assert st["phase"] == "Failed" and "levels deep" in st["message"], st
    assert len(json.dumps(st)) < 16_000


def _sx_status(spec: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    kube = sx.make_kube()
    body = sx._body(spec)
    step = experiments.reconcile_experiment(body, kube, settings or Settings(), T0)  # type: ignore[arg-type]
    status: dict[str, Any] = merge_patch({}, step.status)
    return status


def _variants(n: int) -> list[dict[str, Any]]:
    return [{"name": f"v{i}", "replicas": 1 + i % 3} for i in range(n)]


def test_variants_and_the_experiment_timeout_are_capped() -> None:
    st = _sx_status(sx._spec(variants=_variants(21)))
    assert st["phase"] == "Failed" and "policy.caps.maxVariants" in st["message"], st
    st = _sx_status(sx._spec(timeout="25h"))
    assert st["phase"] == "Failed" and "policy.caps.maxExperimentTimeout" in st["message"], st
    st = _sx_status(sx._spec(variants=_variants(101)))  # the model's own bound
    assert st["phase"] == "Failed" and st["conditions"][0]["reason"] == "InvalidSpec", st
    assert len(json.dumps(st)) < 16_000


def test_a_large_dry_run_plan_goes_to_an_owned_configmap() -> None:
    kube = sx.make_kube()
    dep = kube.deployment(sx.NS, "alice")
    assert dep is not None
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": f"E{i}", "value": "v" * 100} for i in range(40)
    ]
    many = Settings(policy=ClusterPolicy(caps=Caps(max_variants=100)))
    body = sx._body(sx._spec(dryRun=True, variants=_variants(100)))
    step = experiments.reconcile_experiment(body, kube, many, T0)  # type: ignore[arg-type]
    st = merge_patch(body, {"status": step.status})["status"]
    assert st["phase"] == "Succeeded" and not st.get("plan"), st["message"]
    name = dry_run.plan_name(sx.NAME)
    assert st["planConfigMap"] == name and name in st["message"]
    cm = kube.configmap(sx.NS, name)
    assert cm is not None and cm["metadata"]["ownerReferences"][0]["uid"] == "u-sx"
    plan = json.loads(cm["data"][dry_run.PLAN_KEY])
    assert [p["variant"] for p in plan] == [f"v{i}" for i in range(100)]
    assert len(json.dumps(st)) < 16_000
    # A small plan stays in status, as before.
    small = _sx_status(sx._spec(dryRun=True))
    assert len(small["plan"]) == 2 and "planConfigMap" not in small


# -- a reconcile that raises -----------------------------------------------------------------


def _memo(kube: FakeKube) -> Any:
    return SimpleNamespace(kube=kube, surge=lt.SETTINGS, locks={})


def _boom(*_: Any) -> Decision:
    raise RecursionError("maximum recursion depth exceeded while decoding a JSON array")


def test_a_reconcile_that_raises_fails_that_object_with_a_reason() -> None:
    kube = FakeKube()
    body = lt._body()
    step = handlers._guarded(body, _memo(kube), _boom, crash.crashed_loadtest)  # type: ignore[arg-type]
    st = merge_patch(body, {"status": step.status})["status"]
    assert st["phase"] == "Failed" and st["summary"]["verdict"] == "Failed"
    completed = next(c for c in st["conditions"] if c["type"] == "Completed")
    assert completed["reason"] == crash.REASON and "RecursionError" in completed["message"]


def test_a_running_experiment_that_raises_is_restored_and_failed() -> None:
    kube = sx.make_kube()
    body = sx._body()
    for _ in range(2):  # started, the first variant applied
        sx.tick(kube, body, T0)
    assert body["status"]["phase"] == "Running"
    dep = kube.deployment(sx.NS, "alice")
    assert dep is not None and dep["spec"]["template"]["spec"].get("nodeSelector")
    step = handlers._guarded(body, _memo(kube), _boom, crash.crashed_experiment)  # type: ignore[arg-type]
    st = merge_patch(body, {"status": step.status})["status"]
    assert (st["phase"], st["conditions"][-1]["reason"]) == ("Failed", crash.REASON), st
    dep = kube.deployment(sx.NS, "alice")
    assert dep is not None and "nodeSelector" not in dep["spec"]["template"]["spec"]  # restored


def test_a_restore_on_delete_that_raises_lets_the_deletion_go() -> None:
    """The delete handler's restore failing for good is logged as an error (a Warning Event)
    and returns, so the finalizer goes and the deletion is not held forever; an unreachable
    API server is still retried by kopf."""
    logged: list[str] = []
    logger = SimpleNamespace(error=logged.append, info=logged.append)
    body = sx._body()

    def boom(*_: Any) -> None:
        raise ValueError("a snapshot the operator cannot read")

    def unreachable(*_: Any) -> None:
        raise ConnectionRefusedError("connection refused")

    memo = _memo(FakeKube())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiments, "restore_on_delete", boom)
        handlers.restore_or_let_go(body, memo, logger)  # type: ignore[arg-type]
        assert len(logged) == 1 and "restore on delete failed" in logged[0], logged
        assert "ValueError" in logged[0]
        mp.setattr(experiments, "restore_on_delete", unreachable)
        with pytest.raises(ConnectionRefusedError):
            handlers.restore_or_let_go(body, memo, logger)  # type: ignore[arg-type]


def test_an_unreachable_api_server_is_left_to_kopfs_retries() -> None:
    def unreachable(*_: Any) -> Decision:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ConnectionRefusedError):
        handlers._guarded(lt._body(), _memo(FakeKube()), unreachable, crash.crashed_loadtest)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "exc",
    [ConnectionResetError("reset"), TimeoutError("timed out"), socket.gaierror(-3, "again")],
)
def test_only_no_answer_is_transient(exc: OSError) -> None:
    """No answer is retried by kopf; any other OSError (a file or a permission the operator
    lacks) would fail the same way at every retry, so it fails the object instead."""

    def raises(*_: Any) -> Decision:
        raise exc

    with pytest.raises(type(exc)):
        handlers._guarded(lt._body(), _memo(FakeKube()), raises, crash.crashed_loadtest)  # type: ignore[arg-type]

    def denied(*_: Any) -> Decision:
        raise PermissionError(13, "Permission denied", "/etc/surge/policy.yaml")

    step = handlers._guarded(lt._body(), _memo(FakeKube()), denied, crash.crashed_loadtest)  # type: ignore[arg-type]
    completed = [c for c in step.status["conditions"] if c["type"] == "Completed"]
    assert completed[-1]["reason"] == crash.REASON
    assert "PermissionError" in completed[-1]["message"]


def test_a_failure_that_cannot_be_recorded_still_writes_the_phase() -> None:
    step = handlers._guarded(lt._body(), _memo(FakeKube()), _boom, _boom)  # type: ignore[arg-type]
    assert step.status["phase"] == "Failed" and "RecursionError" in step.status["message"]
    # Only those two keys, through the status model: the merge patch keeps history.
    assert set(step.status) == {"phase", "message"}


def test_a_transient_error_while_recording_the_failure_is_left_to_kopf() -> None:
    """Recording an experiment's failure restores its target: with the API server away,
    kopf retries rather than a bare phase being written over a variant still applied."""

    def unreachable(*_: Any) -> Decision:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ConnectionRefusedError):
        handlers._guarded(sx._body(), _memo(FakeKube()), _boom, unreachable)  # type: ignore[arg-type]


def test_a_crash_while_a_new_run_id_starts_fails_that_run() -> None:
    """A finished run, then a new spec.runId whose admission raises: the new run ends Failed
    with InternalError (the old one stays in the history), not an empty step every tick."""
    kube = FakeKube()
    body = lt._body()
    body["status"] = {"runId": "1", "phase": "Succeeded", "history": [{"runId": "1",
                      "phase": "Succeeded"}]}  # fmt: skip
    body["spec"]["runId"] = "2"
    step = handlers._guarded(body, _memo(kube), _boom, crash.crashed_loadtest)  # type: ignore[arg-type]
    st = merge_patch(body, {"status": step.status})["status"]
    assert (st["runId"], st["phase"]) == ("2", "Failed"), st
    assert [c["reason"] for c in st["conditions"] if c["type"] == "Completed"] == [crash.REASON]
    assert "1" in {h["runId"] for h in st["history"]}


def test_messages_in_status_are_bounded() -> None:
    st = _lt_step(lt._spec(thresholds=[f"latncy.p{i} < 1s" for i in range(60)]))
    assert st["phase"] == "Failed"
    assert len(st["message"]) <= MESSAGE_CHARS + 40
    assert all(len(c["message"]) <= MESSAGE_CHARS + 40 for c in st["conditions"])


# -- the watch stream ------------------------------------------------------------------------


@pytest.fixture
def guarded() -> Iterator[None]:
    from kopf._cogs.clients import api

    limit, module = sys.getrecursionlimit(), watch_guard.decoder()
    watch_guard.install()
    yield
    sys.setrecursionlimit(limit)
    vars(api)["json"] = module


def _event(depth: int) -> bytes:
    body = {"metadata": {"name": "deep"}, "spec": {"scenario": {"body": _nested(depth)}}}
    return json.dumps({"type": "ADDED", "object": body}).encode()


def test_the_deepest_object_the_api_server_stores_decodes_in_kopfs_client(guarded: None) -> None:
    assert watch_guard.installed()
    event = watch_guard.decoder().loads(_event(10_000).decode())
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "deep"


def test_a_line_that_cannot_be_decoded_becomes_an_event_kopf_skips(guarded: None) -> None:
    too_deep = b'{"type": "ADDED", "object": {"spec": ' + b"[" * 30_000 + b"]" * 30_000 + b"}}"
    for line in (too_deep, b'{"type": "ADDED", "object": ', b"1" * 5000):
        event = watch_guard.decoder().loads(line.decode())
        assert event["type"] == watch_guard.SKIPPED_EVENT
    assert watch_guard.decoder().dumps({"a": 1}) == '{"a": 1}'  # the rest of the module is json's


def test_the_largest_status_the_models_allow_fits_etcd() -> None:
    """200 runs (the models' bound on variants × repetitions) whose Prometheus series are
    thinned to 120 points, 100 comparison rows and predictions: under 1 MiB, so status and a
    spec of 0.5 MiB fit etcd's 1.5 MiB object."""
    from surge.api.experiment import Variant
    from surge.api.experiment_status import (
        MAX_PREDICTED_POINTS,
        ComparisonRow,
        ExperimentStep,
        Prediction,
        ScalingExperimentStatus,
    )
    from surge.api.results import RunResults
    from surge.operator.experiment.runs import MAX_SERIES_POINTS, run_row
    from surge.operator.experiment.variants import aggregate

    series = [[float(t), float(1 + t % 7)] for t in range(0, 3600, 5)]  # 720 points
    cluster: dict[str, Any] = {"window": {"start": 0.0, "end": 3600.0, "stepSeconds": 5.0}}
    cluster["replicas"] = {"replicaSeconds": 3600.0, "series": series}
    results = RunResults.model_validate({"cluster": cluster}).to_json()
    status = {"phase": "Succeeded", "results": results, "summary": {"achievedRps": 12.5}}
    step = ExperimentStep(
        index=0, stage="Test", since="2026-12-06T12:00:00Z", variant="v", repetition=0
    )
    rows = [
        run_row(Variant(name=f"variant-{i:03d}"), r, f"lt-{i}-{r}", status, step, 2.5)
        for i in range(20)
        for r in range(10)
    ]
    assert all(len(r.replica_series or []) <= MAX_SERIES_POINTS for r in rows)
    assert (rows[0].replica_series or [])[-1] == series[-1]
    comparison: list[ComparisonRow] = [aggregate(f"variant-{i:03d}", rows[:10]) for i in range(100)]
    predictions = [
        Prediction(
            variant=f"variant-{i:03d}",
            rank=i + 1,
            live=i < 5,
            selection="TopK" if i < 5 else "Skipped",
            pool="cpu",
            replica_seconds=3600.0,
            slo_violation_seconds=0,
            sustainable_rps=100.0,
            replica_series=[[float(t), float(t % 9)] for t in range(MAX_PREDICTED_POINTS)],
        )
        for i in range(100)
    ]
    st = ScalingExperimentStatus(runs=rows, comparison=comparison, predictions=predictions)
    size = len(json.dumps(st.model_dump(mode="json", by_alias=True, exclude_none=True)))
    assert size < 1024 * 1024, size


def test_variants_times_repetitions_is_bounded() -> None:
    roomy = Settings(policy=ClusterPolicy(caps=Caps(max_variants=100)))
    st = _sx_status(sx._spec(variants=_variants(100), repetitions=3), roomy)
    assert st["phase"] == "Failed" and "300 runs, more than 200" in st["message"], st


def test_live_top_k_simulates_a_bounded_amount() -> None:
    from tests.operator.test_experiment_simulation import _spec, _variant

    spec = _spec(variants=[_variant(f"v{i}", "cpu", 1, 4) for i in range(20)])
    spec["loadTest"]["load"]["stages"] = [{"duration": "11h", "target": 5}]
    spec["loadTest"]["safety"] = {"maxDuration": "12h"}
    roomy = Settings(policy=ClusterPolicy(caps=Caps(max_duration=None)))
    st = _sx_status(spec, roomy)
    assert st["phase"] == "Failed", st
    assert "792,000 variant-seconds" in st["message"] and "SimulationInvalid" in str(st), st
