"""`surge simulate` end to end: the JSON shape, the model's steady state, and bad input
(named field or line, the fix, exit 1, no traceback)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from surge.cli import app
from surge.simulate.errors import SimulationError
from surge.simulate.trace import read_csv

EXPERIMENT = Path(__file__).parent / "experiment.yaml"


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["simulate", *args])
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def _edited(tmp_path: Path, edit: object) -> Path:
    doc = yaml.safe_load(EXPERIMENT.read_text())
    edit(doc["spec"])  # type: ignore[operator]
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_json_has_named_variants_with_timelines_and_regret(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    code, text = _invoke(str(EXPERIMENT), "--out", str(out), "--report", str(tmp_path / "r.md"))
    assert code == 0, text
    doc = json.loads(out.read_text())
    names = [v["name"] for v in doc["variants"]]
    assert names == ["cpu-60", "cpu-80-slow-down", "rps-per-pod"]
    for v in doc["variants"]:
        ts = [p["t"] for p in v["timeline"]]
        assert ts[0] == 0 and ts == sorted(ts) and ts[1] == 15
        assert {"t", "replicas", "ready", "rps", "latencyP95"} <= set(v["timeline"][0])
        assert v["regret"]["extraCost"] >= 0
    perfect = doc["perfect"][0]
    assert perfect["sloViolationSeconds"] == 0
    assert "| cpu-60 |" in (tmp_path / "r.md").read_text()


def test_steady_load_converges_to_the_target_utilization(tmp_path: Path) -> None:
    def steady(spec: dict) -> None:  # type: ignore[type-arg]
        spec["loadTest"]["load"] = {
            "model": "constant",
            "stages": [{"duration": "20m", "target": 100}],
        }
        spec["variants"] = spec["variants"][:1]
        spec["variants"][0]["hpa"]["metrics"][0]["resource"]["target"]["averageUtilization"] = 50

    out = tmp_path / "sim.json"
    code, text = _invoke(str(_edited(tmp_path, steady)), "--out", str(out))
    assert code == 0, text
    doc = json.loads(out.read_text())
    # 100 rps × 50m = 5 cores; at 50 % of 1 core each: 10 pods.
    assert doc["variants"][0]["timeline"][-1]["replicas"] == 10
    # The perfect autoscaler: base 200 ms, SLO 1 s ⇒ ρ = 0.8 of 20 rps = 16 rps per pod.
    assert doc["perfect"][0]["timeline"][-1]["replicas"] == math.ceil(100 / 16)


def test_trace_replaces_the_stages(tmp_path: Path) -> None:
    csv = tmp_path / "trace.csv"
    csv.write_text("t_seconds,rps\n" + "".join(f"{t},{50 + t / 60}\n" for t in range(0, 3601, 15)))
    out = tmp_path / "sim.json"
    code, text = _invoke(str(EXPERIMENT), "--trace", str(csv), "--out", str(out))
    assert code == 0, text
    doc = json.loads(out.read_text())
    assert doc["load"]["durationSeconds"] == 3600
    assert doc["variants"][0]["timeline"][-1]["t"] == 3585


def test_search_prints_the_chosen_hpa(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    code, text = _invoke(str(EXPERIMENT), "--search", "--variant", "cpu-60", "--out", str(out))
    assert code == 0, text
    assert "kind: HorizontalPodAutoscaler" in text
    search = json.loads(out.read_text())["search"]
    assert search["points"] == 16
    costs = [p["cost"] for p in search["front"]]
    assert costs == sorted(costs, reverse=True)  # fewer violations cost more


def test_variant_without_hpa_is_named(tmp_path: Path) -> None:
    path = _edited(tmp_path, lambda s: s["variants"][1].pop("hpa"))
    code, text = _invoke(str(path))
    assert code == 1
    assert "spec.variants[1] (cpu-80-slow-down) has no hpa" in text


def test_unknown_pool_is_named(tmp_path: Path) -> None:
    path = _edited(
        tmp_path, lambda s: s["variants"][2].update(nodeSelector={"surge.dev/pool": "gpu"})
    )
    code, text = _invoke(str(path))
    assert code == 1
    assert "spec.variants[2] (rps-per-pod) runs on pool 'gpu'" in text
    assert "add spec.simulation.capacity.gpu" in text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("t_seconds,rps\n0,1\n15,2\n30,3\n600,4\n", "trace.csv:5: 570s since line 4"),
        ("0,1\n30,2\n15,3\n", "trace.csv:3: t_seconds 15 is not after line 2 (30); sort the file"),
        ("-15,1\n0,2\n", "trace.csv:1: t_seconds is negative (-15)"),
        ("0,1\n15,\n30,2\n", "trace.csv:2: rps is empty"),
        ("0,1\n15,NaN\n", "trace.csv:2: rps is empty (NaN): the trace has a gap"),
        ("0,1\n15,-2\n", "trace.csv:2: rps is negative"),
        ("0,1,2\n", "trace.csv:1: expected 2 columns"),
    ],
)
def test_bad_traces_name_the_line(tmp_path: Path, body: str, expected: str) -> None:
    csv = tmp_path / "trace.csv"
    csv.write_text(body)
    code, text = _invoke(str(EXPERIMENT), "--trace", str(csv))
    assert code == 1
    assert expected in text


def test_max_gap_allows_a_known_gap(tmp_path: Path) -> None:
    csv = tmp_path / "trace.csv"
    csv.write_text("0,10\n15,10\n30,10\n600,20\n")
    with pytest.raises(SimulationError):
        read_csv(csv)
    load = read_csv(csv, max_gap_s=600)
    assert len(load.rates) == 600 and load.rates[0] == 10.0
    assert load.rates[-1] == pytest.approx(20 - 10 * 0.5 / 570)


def test_an_invalid_manifest_is_reported_not_raised(tmp_path: Path) -> None:
    path = _edited(tmp_path, lambda s: s["simulation"].update(syncPeriod=15))
    code, text = _invoke(str(path))
    assert code == 1
    assert "spec.simulation.syncPeriod" in text


def test_a_sweeps_capacity_file_overrides_the_spec_field_by_field(tmp_path: Path) -> None:
    """What `surge run --capacity-out` writes for a sweep (pool `default`, no CPU per
    request: a local run cannot measure the target's CPU) combines with the spec's pool."""
    base = tmp_path / "base.json"
    assert _invoke(str(EXPERIMENT), "--out", str(base))[0] == 0
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"capacity": {"default": {"maxRps": 5, "baseLatency": "120ms"}}}))
    out = tmp_path / "sim.json"
    code, text = _invoke(str(EXPERIMENT), "--capacity", str(sweep), "--out", str(out))
    assert code == 0, text

    def by_variant(path: Path, key: str) -> dict[str, float]:
        doc = json.loads(path.read_text())
        return {v["name"]: v[key] for v in doc["variants"] if v["name"] != "perfect (cpu)"}

    # 5 req/s per replica at saturation (the spec's cpu pool derives its own from its request and
    # cpuPerRequest, which still drive the CPU metric): each variant serves less, late longer.
    served, served_now = by_variant(base, "served"), by_variant(out, "served")
    assert served and set(served) == set(served_now)
    assert all(served_now[n] < served[n] for n in served), (served, served_now)
    late, late_now = by_variant(base, "sloViolationSeconds"), by_variant(out, "sloViolationSeconds")
    assert all(late_now[n] > late[n] for n in late), (late, late_now)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cpu": {"maxRps": -1}}))
    code, text = _invoke(str(EXPERIMENT), "--capacity", str(bad))
    assert code == 1 and "spec.simulation.capacity.cpu.maxRps" in text, text
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"cpu": {"maxRPS": 5}}))
    code, text = _invoke(str(EXPERIMENT), "--capacity", str(typo))
    assert code == 1 and "cpu.maxRPS: not a capacity field" in text, text


def test_a_scaled_object_variant_is_simulated_and_shows_kedas_parameters(tmp_path: Path) -> None:
    def keda(spec: dict) -> None:  # type: ignore[type-arg]
        spec["targetRef"] = {"deployment": "alice", "scaledObject": "alice"}
        trigger = {"type": "prometheus", "name": "alice_queue_depth",
                   "metadata": {"threshold": "5", "activationThreshold": "1"}}  # fmt: skip
        spec["variants"] = [
            {
                "name": "keda-queue",
                "nodeSelector": {"surge.dev/pool": "cpu"},
                "resources": {"requests": {"cpu": "1"}},
                "scaledObject": {"triggers": [trigger], "minReplicaCount": 0,
                                 "maxReplicaCount": 40, "pollingInterval": 10},
            }
        ]  # fmt: skip
        spec["simulation"]["signals"] = {"alice_queue_depth": "queueDepth"}
        spec["simulation"].pop("search")

    out = tmp_path / "sim.json"
    code, text = _invoke(str(_edited(tmp_path, keda)), "--out", str(out))
    assert code == 0, text
    assert "keda-queue (KEDA): minReplicaCount 0, pollingInterval 10s, cooldownPeriod 300s" in text
    (variant,) = json.loads(out.read_text())["variants"]
    so = variant["scaledObject"]
    assert (so["hpa"]["minReplicas"], so["triggers"][0]["signal"]) == (1, "queueDepth")
    assert variant["replicasMax"] > 1


def test_a_trigger_without_a_signal_is_an_error_naming_the_field(tmp_path: Path) -> None:
    def keda(spec: dict) -> None:  # type: ignore[type-arg]
        spec["targetRef"] = {"deployment": "alice", "scaledObject": "alice"}
        trigger = {"type": "prometheus", "metadata": {"threshold": "5"}}
        spec["variants"] = [{"name": "k", "resources": {"requests": {"cpu": "1"}},
                             "nodeSelector": {"surge.dev/pool": "cpu"},
                             "scaledObject": {"triggers": [trigger]}}]  # fmt: skip

    code, text = _invoke(str(_edited(tmp_path, keda)))
    assert code == 1
    assert "spec.simulation.signals.s0-prometheus" in text
