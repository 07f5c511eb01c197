"""Red team 2: the liveTopK budget counts variant-seconds, but the simulator's cost also
grows with the HPA syncs: spec.simulation.syncPeriod 1s makes each second cost ~6× more."""

from __future__ import annotations

import pytest

from surge.api.experiment import ScalingExperimentSpec
from surge.api.manifests import parse_spec
from surge.operator.experiment import simulation as sim
from tests.security.test_redteam2_status import _flapping_experiment


def _spec(sync: str) -> ScalingExperimentSpec:
    """100 variants × a 2 h load: 720,000 variant-seconds, the budget's very edge."""
    body = _flapping_experiment(100)
    body["spec"]["loadTest"]["load"]["trace"]["points"] = [
        {"tSeconds": float(t), "rps": 400 if (t // 3) % 2 else 5} for t in range(7201)
    ]
    body["spec"]["loadTest"]["safety"] = {"maxDuration": "2h"}
    body["spec"]["simulation"]["syncPeriod"] = sync
    spec: ScalingExperimentSpec = parse_spec("ScalingExperiment", body["spec"])
    return spec


def test_the_budget_admits_its_edge_at_the_default_sync() -> None:
    """720,000 variant-seconds at a 15 s sync: about 1.6 s of CPU measured, admitted."""
    sim.check(_spec("15s"))


def test_a_one_second_sync_counts_against_the_budget() -> None:
    """Attack: the budget's 720,000 variant-seconds with spec.simulation.syncPeriod 1s."""
    with pytest.raises(sim.SimulationError):
        sim.check(_spec("1s"))
