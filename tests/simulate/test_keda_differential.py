"""The KEDA differential test's pure parts (tests/e2e/test_keda_simulator.py): the scenario
generator, the clock that keeps KEDA's polls off the HPA's sync instants, and the regression
cases recorded on real KEDA (tests/simulate/differential/keda/*.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from surge.api.experiment import ScaledObjectSpec
from tests.support import keda_compare as kc

CASES = sorted((Path(__file__).parent / "differential" / "keda").glob("*.json"))


def test_the_batch_is_a_function_of_the_seed() -> None:
    a, b = kc.random_batch(7, 24), kc.random_batch(7, 24)
    assert a == b and a != kc.random_batch(8, 24)


@pytest.mark.parametrize("seed", [1, 20261206])
def test_scenarios_are_valid_scaled_objects_with_every_rule_covered(seed: int) -> None:
    mins, types, pollings = set(), set(), set()
    for s in kc.random_batch(seed, 24):
        ScaledObjectSpec.model_validate(s.scaled_object)  # what a variant would carry
        wire = s.spec("http://127.0.0.1:1/x")
        assert wire["pollingInterval"] == kc.CREATION_POLLING_S
        assert ("advanced" in wire) == ("behavior" in s.scaled_object)
        mins.add(min(s.scaled_object["minReplicaCount"], 1))
        types.add(s.scaled_object["triggers"][0].get("metricType", "AverageValue"))
        pollings.add(s.scaled_object["pollingInterval"])
        assert len(s.values()) == kc.DURATION_S and len(s.blocks) == kc.BLOCKS
    assert mins == {0, 1} and types == {"AverageValue", "Value"}
    assert pollings <= {5, 10, 15, 20, 30} and len(pollings) >= 3


@pytest.mark.parametrize("polling", [5, 10, 15, 20, 30])
def test_polls_and_syncs_never_meet_and_read_their_own_block(polling: int) -> None:
    # Syncs at 16 + 15m, polls at 8.5 + kP: 2.5 s apart at least, and each instant at least
    # 2.25 s from a change of value, so clock drift of a second reads the same block.
    so: dict[str, Any] = {"triggers": [], "pollingInterval": polling}
    s = kc.Scenario("x", 1, so, tuple(float(i) for i in range(kc.BLOCKS)))
    at = kc.instants(s)
    syncs = {t for t in at if (t - kc.FIRST_SYNC_S) % kc.SYNC_S == 0}
    polls = set(at) - syncs
    assert min(abs(p - q) for p in polls for q in syncs) >= 2.5
    values = s.values()
    for t in at:
        edge = (t - kc.BLOCK_START_S) % kc.BLOCK_S
        assert min(edge, kc.BLOCK_S - edge) >= 2.25
        # The simulator reads the second before the instant: the same block.
        assert values[int(t) - 1] == s.value_at(t) == s.value_at(t + 1.0)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_regression_case_matches_real_keda(path: Path) -> None:
    case: dict[str, Any] = json.loads(path.read_text())
    scenario = kc.Scenario.from_json(case["scenario"])
    sim = [(float(t), r) for t, r in kc.simulated(scenario)]
    got = [kc.value_at(sim, float(int(t + kc.KEDA_WRITE_S))) for t in case["instants"]]
    assert got == case["real"], list(zip(case["instants"], case["real"], got, strict=True))
