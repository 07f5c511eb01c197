"""Simulate, then confirm (spec.simulation.liveTopK): the ranking, pure; and the experiment on
the in-memory FakeKube, each status patch checked against the CRD's generated schema."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from surge.api.experiment import ScalingExperimentSpec
from surge.api.experiment_status import ComparisonRow, Prediction
from surge.api.manifests import ManifestError, parse_spec
from surge.operator.context import Decision
from surge.operator.experiment import simulation as sim
from surge.operator.experiment.runs import child_name, snapshot_name
from tests.operator.fake_kube import FakeKube
from tests.operator.schema import pruned
from tests.operator.test_experiments import (
    NAME,
    NS,
    SCHEMA,
    T0,
    make_kube,
    reasons,
    rolled_out,
    tick,
)

WRITES = ("patch_deployment", "put_hpa_spec")


def _hpa(low: int, high: int) -> dict[str, Any]:
    cpu = {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}
    return {
        "minReplicas": low,
        "maxReplicas": high,
        "metrics": [{"type": "Resource", "resource": cpu}],
    }


def _variant(name: str, pool: str, low: int, high: int) -> dict[str, Any]:
    # The env entry marks what each variant wrote to the Deployment.
    return {
        "name": name,
        "nodeSelector": {"surge.dev/pool": pool},
        "env": [{"name": "VARIANT", "value": name}],
        "hpa": _hpa(low, high),
    }


def _spec(**over: Any) -> dict[str, Any]:
    """20 req/s for 2 min. Predicted, cheapest-passing: right (2-4 cpu pods), big (6-8),
    gpu (dearer), and small last (one pod at saturation violates the SLO)."""
    spec: dict[str, Any] = {
        "targetRef": {"deployment": "alice", "hpa": "alice"},
        "loadTest": {
            "target": {"url": "http://alice.team:8080"},
            "load": {"model": "constant", "stages": [{"duration": "2m", "target": 20}]},
            "thresholds": ["latency.p95 < 1s"],
        },
        "variants": [
            _variant("small", "cpu", 1, 1),
            _variant("right", "cpu", 2, 4),
            _variant("big", "cpu", 6, 8),
            _variant("gpu", "gpu", 1, 2),
        ],
        "cost": {"perPool": {"cpu": 0.1, "gpu": 2.0}},
        "cooldown": "30s",
        "simulation": {
            "liveTopK": 2,
            "capacity": {
                "cpu": {"cpuPerRequest": "50m", "podCpuRequest": "1", "baseLatency": "200ms"},
                "gpu": {"cpuPerRequest": "10m", "podCpuRequest": "1", "baseLatency": "100ms"},
            },
        },
    }
    spec.update(over)
    return spec


def _body(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "ScalingExperiment",
        "metadata": {"name": NAME, "namespace": NS, "uid": "u-sx", "generation": 1},
        "spec": spec,
        "status": {},
    }


class RecordingKube(FakeKube):
    """FakeKube that also notes which variant's env each Deployment patch left in place."""

    def __init__(self) -> None:
        super().__init__()
        self.objects = make_kube().objects
        self.variants_written: list[str] = []

    def patch_deployment(
        self, namespace: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]:
        out = super().patch_deployment(namespace, name, ops)
        for env in out["spec"]["template"]["spec"]["containers"][0].get("env") or []:
            if env.get("name") == "VARIANT":
                self.variants_written.append(env["value"])
        return out


@pytest.fixture
def kube() -> RecordingKube:
    return RecordingKube()


MEASURED_P95 = {"small": 900.0, "right": 300.0, "big": 200.0, "gpu": 100.0}


def drive(kube: FakeKube, body: dict[str, Any]) -> list[Decision]:
    """Ticks until the experiment ends: rollouts complete, each child succeeds."""
    steps, now = [tick(kube, body, T0)], T0
    for _ in range(80):
        st = body["status"]
        if st["phase"] in ("Succeeded", "Failed", "Aborted"):
            return steps
        step = st.get("step") or {}
        if step.get("stage") == "RollOut":
            rolled_out(kube)
        if step.get("stage") == "Test":
            child = kube.loadtest(NS, child_name(NAME, step["variant"], step["repetition"]))
            if child is not None:
                child["status"] = {
                    "phase": "Succeeded",
                    "summary": {
                        "achievedRps": 20.0,
                        "p95Ms": MEASURED_P95[step["variant"]],
                        "errorRate": 0.0,
                    },
                    "results": {"requests": {"sent": 2400}},
                }
        now += timedelta(seconds=31)
        steps.append(tick(kube, body, now))
    raise AssertionError(f"never ended: {body['status']}")


def _children(kube: FakeKube) -> list[str]:
    return sorted(
        lt["metadata"]["labels"]["surge.dev/variant"] for lt in kube.of_kind("LoadTest", NS)
    )


# -- on the FakeKube ------------------------------------------------------------------------


def test_the_spec_with_live_top_k_fits_the_crd_schema() -> None:
    assert pruned(_spec(), SCHEMA["spec"]) == []


def test_top_k_runs_only_the_best_live_and_records_the_rest(kube: RecordingKube) -> None:
    body = _body(_spec())
    steps = drive(kube, body)
    assert reasons(steps[0]) == ["Simulated", "RunStarted"]
    simulated = steps[0].events[0][2]
    assert simulated.startswith("simulated 4 variants, running top 2 live: right, big")
    accepted = next(c for c in body["status"]["conditions"] if c["reason"] == "Accepted")
    assert "2 runs planned; simulated 4 variants, running top 2 live" in accepted["message"]
    st = body["status"]
    assert st["phase"] == "Succeeded"
    preds = st["predictions"]
    assert [(p["variant"], p["rank"], p["live"], p["selection"]) for p in preds] == [
        ("right", 1, True, "TopK"),
        ("big", 2, True, "TopK"),
        ("gpu", 3, False, "Skipped"),
        ("small", 4, False, "Skipped"),
    ]
    assert preds[3]["sloViolationSeconds"] > 0 and preds[0]["sloViolationSeconds"] == 0
    assert preds[0]["cost"] < preds[1]["cost"] < preds[2]["cost"]
    # Only the top two were ever written to the target, then restored.
    assert sorted(set(kube.variants_written)) == ["big", "right"]
    assert len([c for c in kube.calls if c[0] == "patch_deployment"]) == 4  # 2 applies, 2 restores
    assert _children(kube) == ["big", "right"]
    dep = kube.deployment(NS, "alice")
    assert dep is not None and not dep["spec"]["template"]["spec"]["containers"][0].get("env")
    assert [r["name"] for r in st["runs"]] == ["right", "big"]


def test_comparison_shows_predicted_next_to_measured(kube: RecordingKube) -> None:
    body = _body(_spec(objective="lowest-p95"))
    drive(kube, body)
    st = body["status"]
    # lowest-p95 predicts gpu and big first; they are the two that run.
    assert [p["variant"] for p in st["predictions"] if p["live"]] == ["gpu", "big"]
    rows = {r["name"]: r for r in st["comparison"]}
    assert set(rows) == {"gpu", "big"}
    big = rows["big"]
    assert big["p95Ms"] == 200.0 and big["predictedP95Ms"] == 240.0
    assert big["predictedSloViolationSeconds"] == 0 and big["predictedRank"] == 2
    assert big["predictedCost"] == pytest.approx(0.02)
    assert big["predictedCostPer1kRequests"] == pytest.approx(0.02 / 2.4, rel=1e-4)
    assert st["recommendation"].startswith("gpu: passes the SLO")


def test_the_baseline_always_runs_live(kube: RecordingKube) -> None:
    body = _body(_spec(baseline="small", simulation={**_spec()["simulation"], "liveTopK": 1}))
    steps = drive(kube, body)
    preds = {p["variant"]: p for p in body["status"]["predictions"]}
    assert (preds["small"]["live"], preds["small"]["selection"], preds["small"]["rank"]) == (
        True,
        "Baseline",
        4,
    )
    assert [v for v, p in preds.items() if p["live"]] == ["right", "small"]
    assert "running top 1 live: right (and the baseline small)" in steps[0].events[0][2]
    assert sorted(set(kube.variants_written)) == ["right", "small"]
    assert _children(kube) == ["right", "small"]
    # Runs keep the spec's order: small before right.
    assert [r["name"] for r in body["status"]["runs"]] == ["small", "right"]


def test_repetitions_alternate_over_the_live_variants_only(kube: RecordingKube) -> None:
    body = _body(_spec(repetitions=2))
    drive(kube, body)
    assert [r["name"] for r in body["status"]["runs"]] == ["right", "big", "right", "big"]
    assert sorted(set(kube.variants_written)) == ["big", "right"]


def test_dry_run_plans_only_the_live_variants(kube: RecordingKube) -> None:
    body = _body(_spec(dryRun=True))
    step = tick(kube, body, T0)
    st = body["status"]
    assert st["phase"] == "Succeeded" and reasons(step) == ["Simulated", "DryRun"]
    assert [p["variant"] for p in st["plan"]] == ["right", "big"]
    assert len(st["predictions"]) == 4
    assert not [c for c in kube.calls if c[0] in WRITES]


def _no_hpa(spec: dict[str, Any]) -> None:
    del spec["variants"][1]["hpa"]


def _unknown_pool(spec: dict[str, Any]) -> None:
    spec["variants"][3]["nodeSelector"] = {"surge.dev/pool": "tpu"}


def _missing_capacity(spec: dict[str, Any]) -> None:
    del spec["simulation"]["capacity"]["cpu"]["podCpuRequest"]


@pytest.mark.parametrize(
    ("breaks", "names"),
    [
        (_no_hpa, "spec.variants[1].hpa"),
        (_unknown_pool, "spec.simulation.capacity has no 'tpu'"),
        (_missing_capacity, "spec.simulation.capacity.cpu.podCpuRequest"),
    ],
)
def test_bad_simulation_input_fails_before_anything_is_applied(
    kube: RecordingKube, breaks: Any, names: str
) -> None:
    spec = _spec()
    breaks(spec)
    body = _body(spec)
    step = tick(kube, body, T0)
    st = body["status"]
    assert st["phase"] == "Failed" and reasons(step) == ["SimulationInvalid"]
    assert names in st["message"] and st["message"].endswith("nothing was applied")
    completed = next(c for c in st["conditions"] if c["type"] == "Completed")
    assert completed["reason"] == "SimulationInvalid"
    assert kube.calls == []  # no Lease, no snapshot, no write to the target
    assert kube.configmap(NS, snapshot_name(NAME)) is None


def test_a_queued_experiment_with_bad_simulation_input_fails_at_once(kube: RecordingKube) -> None:
    other = _body(_spec(simulation=None))
    other["metadata"].update(name="other", uid="u-other")
    tick(kube, other, T0)  # holds the target's Lease
    kube.put(other)
    spec = _spec()
    _no_hpa(spec)
    body = _body(spec)
    step = tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed" and reasons(step) == ["SimulationInvalid"]


def test_without_live_top_k_nothing_changes(kube: RecordingKube) -> None:
    # spec.simulation without liveTopK is for `surge simulate` only: a variant the simulator
    # could not take (no HPA) still runs, and every variant runs live.
    spec = _spec(simulation={"capacity": {}})
    _no_hpa(spec)
    body = _body(spec)
    steps = drive(kube, body)
    assert reasons(steps[0]) == ["RunStarted"]
    st = body["status"]
    assert st["phase"] == "Succeeded" and "predictions" not in st
    assert _children(kube) == ["big", "gpu", "right", "small"]
    assert all("predictedCost" not in row for row in st["comparison"])


def test_live_top_k_below_one_is_invalid() -> None:
    with pytest.raises(ManifestError, match="liveTopK"):
        parse_spec("ScalingExperiment", _spec(simulation={"liveTopK": 0}))


# -- the ranking, pure ----------------------------------------------------------------------


def _p(
    name: str,
    cost: float | None,
    violations: int = 0,
    p95: float | None = 100.0,
    rate: float = 10.0,
    replica_seconds: float = 100.0,
) -> Prediction:
    return Prediction(
        variant=name,
        rank=0,
        live=False,
        selection="Skipped",
        pool="cpu",
        cost=cost,
        replica_seconds=replica_seconds,
        slo_violation_seconds=violations,
        p95_ms=p95,
        sustainable_rps=rate,
    )


def _names(preds: list[Prediction]) -> list[str]:
    return [p.variant for p in preds]


def test_cheapest_passing_then_the_rest_by_violation_seconds() -> None:
    preds = [
        _p("dear", 5.0),
        _p("cheap-failing", 0.1, violations=30),
        _p("cheap", 1.0),
        _p("worse-failing", 0.1, violations=90),
        _p("dearer-failing", 3.0, violations=30),
    ]
    ranked = sim.rank(preds, "cheapest-passing")
    assert _names(ranked) == ["cheap", "dear", "cheap-failing", "dearer-failing", "worse-failing"]
    assert [p.rank for p in ranked] == [1, 2, 3, 4, 5]


def test_without_every_price_cost_is_replica_seconds() -> None:
    preds = [_p("priced", 0.01, replica_seconds=500.0), _p("unpriced", None, replica_seconds=50.0)]
    assert _names(sim.rank(preds, "cheapest-passing")) == ["unpriced", "priced"]


def test_lowest_p95_puts_passing_first_and_no_ready_pod_last() -> None:
    preds = [
        _p("fast-failing", 1.0, violations=5, p95=50.0),
        _p("never-ready", 1.0, violations=120, p95=None),
        _p("slow", 1.0, p95=400.0),
        _p("fast", 2.0, p95=200.0),
    ]
    assert _names(sim.rank(preds, "lowest-p95")) == ["fast", "slow", "fast-failing", "never-ready"]


def test_highest_sustainable_rate_ties_go_to_the_cheaper() -> None:
    preds = [
        _p("wide-dear", 9.0, rate=100.0),
        _p("wide-cheap", 1.0, rate=100.0),
        _p("narrow", 0.5, rate=40.0),
        _p("widest-failing", 0.1, violations=3, rate=500.0),
    ]
    assert _names(sim.rank(preds, "highest-sustainable-rate")) == [
        "wide-cheap",
        "wide-dear",
        "narrow",
        "widest-failing",
    ]


def _parsed(**over: Any) -> ScalingExperimentSpec:
    spec: ScalingExperimentSpec = parse_spec("ScalingExperiment", _spec(**over))
    return spec


def test_select_live_spec_and_summary() -> None:
    spec = _parsed(baseline="gpu")
    chosen = sim.select(spec)
    assert [(p.variant, p.selection) for p in chosen] == [
        ("right", "TopK"),
        ("big", "TopK"),
        ("gpu", "Baseline"),
        ("small", "Skipped"),
    ]
    assert [v.name for v in sim.live_spec(spec, chosen).variants] == ["right", "big", "gpu"]
    assert sim.summary(spec, chosen) == (
        "simulated 4 variants, running top 2 live: right, big (and the baseline gpu); "
        "skipped: small"
    )


def test_select_without_live_top_k_simulates_nothing() -> None:
    spec = _parsed(simulation={"capacity": {}})
    assert sim.select(spec) == [] and sim.summary(spec, []) == ""
    assert sim.live_spec(spec, []) is spec
    sim.check(spec)  # no capacity, but nothing is simulated: no error


def test_with_predicted_fills_only_the_predicted_rows() -> None:
    rows = [
        ComparisonRow(name="a", repetitions=1, passed=True),
        ComparisonRow(name="b", repetitions=1, passed=True),
    ]
    filled = sim.with_predicted(
        rows, [_p("a", 0.5, violations=2, p95=123.0).model_copy(update={"rank": 1})]
    )
    assert (filled[0].predicted_cost, filled[0].predicted_p95_ms, filled[0].predicted_rank) == (
        0.5,
        123.0,
        1,
    )
    assert filled[0].predicted_slo_violation_seconds == 2
    assert filled[1].predicted_cost is None
    assert rows[0].predicted_cost is None  # the input is left as it was


def test_simulating_a_long_load_stays_fast() -> None:
    import time

    spec = _parsed(
        loadTest={
            "target": {"url": "http://alice.team:8080"},
            "load": {"model": "constant", "stages": [{"duration": "1h", "target": 20}]},
            "thresholds": ["latency.p95 < 1s"],
        }
    )
    started = time.perf_counter()
    assert len(sim.select(spec)) == 4
    assert time.perf_counter() - started < 5.0


def test_a_scaled_object_variant_is_predicted_like_an_hpa() -> None:
    # liveTopK replays a ScaledObject variant through the simulator's KEDA model: the HPA
    # KEDA makes (max(minReplicaCount, 1)..maxReplicaCount) and its poll loop.
    raw = _spec(targetRef={"deployment": "alice", "hpa": "alice", "scaledObject": "alice"})
    trigger = {"type": "prometheus", "name": "rps", "metadata": {"threshold": "8"}}
    so = {"triggers": [trigger], "minReplicaCount": 0, "maxReplicaCount": 4}
    raw["variants"][1] = {"name": "keda", "nodeSelector": {"surge.dev/pool": "cpu"},
                          "scaledObject": so}  # fmt: skip
    raw["simulation"]["signals"] = {"rps": "requestRate"}
    spec = ScalingExperimentSpec.model_validate(raw)
    sim.check(spec)
    keda = next(p for p in sim.predict(spec) if p.variant == "keda")
    # 20 req/s over 8 per replica: ceil(2.5) = 3 replicas once the HPA has synced.
    assert keda.replica_series is not None and keda.replica_series[-1][1] == 3
