"""The differential test's pure parts (tests/e2e/test_hpa_simulator.py): the scenario
generator, and the regression cases: scenarios on which the real HPA controller was
recorded (tests/simulate/differential/*.json), replayed through the simulator, which must
give the real count at every sync instant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from surge.api.experiment import HpaSpec
from tests.support import hpa_compare as hc
from tests.support import hpa_scenarios as hs

CASES = sorted((Path(__file__).parent / "differential").glob("*.json"))


def test_the_random_batch_is_a_function_of_the_seed() -> None:
    a, b = hs.random_batch(7, 32), hs.random_batch(7, 32)
    assert a == b
    assert a != hs.random_batch(8, 32)
    assert len({s.name for s in a}) == 32


@pytest.mark.parametrize("seed", [1, 20261206, 424242])
def test_random_scenarios_are_valid_hpas_within_bounds(seed: int) -> None:
    kinds: set[str] = set()
    for s in hs.random_batch(seed, 32):
        HpaSpec.model_validate(s.hpa_spec())  # what the API server would accept
        assert 1 <= s.min_replicas < s.max_replicas <= 10
        assert 1 <= s.initial <= s.max_replicas + 2
        assert len(s.rates()) == hc.DURATION_S and min(s.blocks) >= 0.5
        kinds.add(s.target["type"])
        for rules in (s.behavior or {}).values():
            assert rules.get("stabilizationWindowSeconds", 0) % 5 == 0
            assert all(p["periodSeconds"] % 15 == 0 for p in rules.get("policies", []))
        sims = hc.simulated(s)
        assert [t for t, _ in sims][:3] == [20, 35, 50]
    assert kinds == {"Utilization", "AverageValue"}


def test_the_fixed_scenarios() -> None:
    # 10 replicas, load for 4: the initial recommendation (recordInitialRecommendation) holds
    # 10 for the 300 s downscale window without a behavior, for 100 s with one.
    legacy, window, at_target = (dict(hc.simulated(s)) for s in hs.fixed())
    assert set(legacy.values()) == {10}
    assert all(v == (10 if t <= 110 else 4) for t, v in window.items())
    # calcPlainMetricReplicas at a ratio of exactly 1.0 ignores the 2 pods without a metric.
    assert set(at_target.values()) == {6}


def test_the_load_driver_writes_what_the_simulator_reads() -> None:
    # The scrape at t = 27.5 reads second 26's load; usage is the simulator's integer split.
    rates = [float(t) for t in range(60)]
    assert hc.load_at_scrape(rates, 27.5) == 26.0
    assert hc.usage_milli(30.0, 3) == 100 and hc.usage_milli(10.0, 3) == 33
    assert hc.usage_milli(5.0, 0) == 0
    # Written half a milli-core low: the measured rate, a hair off, still rounds up to 88m.
    assert hc.usage_annotation(88) == "87500u" and hc.usage_annotation(0) == "0"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_regression_case_matches_the_recorded_real_controller(path: Path) -> None:
    case: dict[str, Any] = json.loads(path.read_text())
    scenario = hc.Scenario.from_json(case["scenario"])
    sim = dict(hc.simulated(scenario))
    got = [sim[t] for t in case["syncInstants"]]
    assert got == case["real"], list(zip(case["syncInstants"], case["real"], got, strict=True))
