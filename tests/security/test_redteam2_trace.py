"""Red team 2: a 10,000-point trace made the operator's per-second curve integrals walk
every segment once per second (3600 s × 10,000 points: 5.7 s of CPU in Analyzing, 2.9 s
more before a liveTopK simulation), holding the GIL every other reconcile needs."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from surge.api.loadtest import Load
from surge.api.manifests import parse_spec
from surge.loadgen import schedule
from surge.loadgen import trace as loadgen_trace
from surge.loadgen.trace import per_second, trace_results
from surge.simulate import trace as simulate_trace
from surge.simulate.trace import from_stages

POINTS = 10_000
SECONDS = 3600.0


class Counting(list[schedule.Segment]):
    """The curve's segments, counting what reading them costs: a full walk per __iter__,
    one segment per index."""

    def __init__(self, segs: list[schedule.Segment]) -> None:
        super().__init__(segs)
        self.visits = 0

    def __iter__(self) -> Any:
        self.visits += len(self)
        return super().__iter__()

    def __getitem__(self, i: Any) -> Any:
        self.visits += 1
        return super().__getitem__(i)


def _long_trace() -> Load:
    points = [{"tSeconds": i * SECONDS / (POINTS - 1), "rps": 1 + i % 7} for i in range(POINTS)]
    spec = parse_spec(
        "LoadTest",
        {
            "target": {"url": "http://svc:8080/"},
            "load": {"model": "trace", "trace": {"points": points}},
        },
    )
    load: Load = spec.load
    return load


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[Counting]:
    made: list[Counting] = []
    real = loadgen_trace.load_segments

    def counted(load: Load) -> list[schedule.Segment]:
        made.append(Counting(real(load)))
        return made[-1]

    monkeypatch.setattr(module, "load_segments", counted)
    return made


def test_trace_results_read_the_curve_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: a 10,000-point, 1 h trace; Analyzing integrates it second by second."""
    load = _long_trace()
    made = _counting(monkeypatch, loadgen_trace)
    section = trace_results(load, {"sent": [5] * 3600})
    assert section is not None and len(section.expected_per_second) == 900  # 4 s buckets
    visits = sum(c.visits for c in made)
    assert visits <= 4 * (POINTS + SECONDS), f"{visits:,} segment visits"


def test_a_simulated_trace_reads_the_curve_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: the same trace under liveTopK; the simulator's per-second rates walk it too."""
    load = _long_trace()
    made = _counting(monkeypatch, simulate_trace)
    rates = from_stages(load).rates
    assert len(rates) == 3600 and abs(sum(rates) - schedule.cumulative(list(made[0]), SECONDS)) < 1
    visits = sum(c.visits for c in made)
    assert visits <= 4 * (POINTS + SECONDS), f"{visits:,} segment visits"


@pytest.mark.parametrize("seed", range(20))
def test_one_pass_equals_the_per_second_integral(seed: int) -> None:
    """The one-pass integral gives the very floats the per-second one gave."""
    rng = random.Random(seed)
    times = sorted(rng.sample(range(500), rng.randint(2, 40)))
    points = [(t - times[0] + rng.random() / 2, rng.random() * 100) for t in times]
    points[0] = (0.0, points[0][1])
    segs = schedule.curve_segments(points, rng.choice(["linear", "step"]))
    length = points[-1][0]
    want = [
        schedule.expected_arrivals(segs, float(i), float(min(i + 1, length)))
        for i in range(math.ceil(length))
    ]
    assert per_second(segs, length) == want
