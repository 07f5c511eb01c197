"""The operator's own replica series of a run: bounded, and honest about where it stops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from surge.api.experiment_status import ExperimentStage, ExperimentStep
from surge.operator.experiment.runs import MAX_SERIES_POINTS, _own_series_end, sample_replicas

T0 = datetime(2026, 12, 6, tzinfo=UTC)


def test_the_series_is_cut_at_its_cap_and_says_where() -> None:
    """Past MAX_SERIES_POINTS changes the series keeps its points but records where it
    stopped, so a comparison (the simulator error) never reads a held value beyond it."""
    step = ExperimentStep(index=0, stage=ExperimentStage.TEST, since="", variant="v", repetition=0)
    sample_replicas(step, None, T0)  # not loading yet: starts the clock
    changes = MAX_SERIES_POINTS + 5
    for i in range(changes):
        sample_replicas(step, 1 + i % 2, T0 + timedelta(seconds=i + 1))
    assert step.replica_series is not None and len(step.replica_series) == MAX_SERIES_POINTS
    assert step.replica_series_cut_s == float(MAX_SERIES_POINTS)  # the first change left out
    assert step.observed_seconds == float(changes)
    assert _own_series_end(float(changes), step.replica_series_cut_s) == MAX_SERIES_POINTS
    assert _own_series_end(30.0, None) == 30.0
    assert _own_series_end(0.0, None) is None
