"""load.model: sweep: what it accepts, and refusals that name the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from surge.api.loadtest import LoadTestSpec

SWEEP = {"startRate": 10, "maxRate": 160, "stepDuration": "10s"}


def _spec(load: dict[str, Any], **over: Any) -> LoadTestSpec:
    doc: dict[str, Any] = {
        "target": {"url": "http://127.0.0.1:8080"},
        "load": load,
        "thresholds": ["latency.p95 < 800ms"],
    }
    return LoadTestSpec.model_validate(doc | over)


def test_a_sweep_is_bounded_by_its_rates_and_steps() -> None:
    spec = _spec({"model": "sweep", "sweep": SWEEP})
    sweep = spec.load.sweep
    assert sweep is not None
    assert sweep.geometric_rates == [10, 20, 40, 80, 160]
    assert sweep.settle_s == 2.0  # 20 % of the step by default
    assert spec.load.peak == 160  # caps (safety.maxRate, cluster policy) apply to maxRate
    assert spec.load.duration_s == (5 + 3) * 10


@pytest.mark.parametrize(
    ("load", "over", "says"),
    [
        ({"model": "sweep"}, {}, "sweep: model sweep needs load.sweep"),
        ({"model": "constant", "sweep": SWEEP, "stages": [{"duration": "1s", "target": 1}]},
         {}, "sweep: set only with model: sweep"),
        ({"model": "sweep", "sweep": SWEEP, "workers": 2}, {}, "workers: a sweep runs in one"),
        ({"model": "sweep", "sweep": SWEEP, "stages": [{"duration": "1s", "target": 1}]},
         {}, "stages: a sweep sets its own rates"),
        ({"model": "sweep", "sweep": SWEEP, "warmup": "5s"}, {}, "warmup: a sweep excludes"),
        ({"model": "sweep", "sweep": SWEEP | {"maxRate": 5}}, {}, "maxRate (5) is below"),
        ({"model": "sweep", "sweep": SWEEP | {"settle": "10s"}}, {}, "settle (10s) must be"),
        ({"model": "sweep", "sweep": SWEEP | {"factor": 1}}, {}, "factor"),
        ({"model": "sweep", "sweep": SWEEP}, {"thresholds": []}, "thresholds: a sweep needs"),
        ({"model": "sweep", "sweep": SWEEP}, {"thresholds": ["replicas.max <= 4"]},
         "is a cluster metric"),
        ({"model": "sweep", "sweep": SWEEP | {"maxRate": 2000}}, {},
         "load.sweep.maxRate is 2000 req/s, above safety.maxRate"),
        ({"model": "sweep", "sweep": SWEEP | {"stepDuration": "10m"}}, {},
         "a sweep of every step would last 4800s, above safety.maxDuration"),
        ({"model": "constant"}, {},
         "stages\n  Value error, required field is missing: the constant model needs a stage"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(load: dict[str, Any], over: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as exc:
        _spec(load, **over)
    assert says in str(exc.value)


def test_the_crd_checks_sweep_max_rate_against_the_cap() -> None:
    from surge.api.spec_rules import SPEC_RULES

    rules = [r for r in SPEC_RULES if isinstance(r, dict)]
    sweep_rule = [r for r in rules if r.get("fieldPath") == ".load.sweep.maxRate"]
    assert len(sweep_rule) == 1 and "self.load.sweep.maxRate <=" in str(sweep_rule[0]["rule"])
    # stages are optional now (a sweep has none): every rule on them guards with has()
    for r in rules:
        if "self.load.stages" in str(r["rule"]):
            assert "!has(self.load.stages)" in str(r["rule"])
