"""Red team 2: a run that holds its workers and the target's Lease far longer than
caps.maxDuration allows the load to last."""

from __future__ import annotations

from typing import Any

from surge.api.loadtest import LoadTestSpec
from surge.api.policy import ClusterPolicy
from surge.operator.loadtest import builders
from surge.operator.policy.rules import Allowed, Facts, Service, loadtest_violations

NS = "team"
OWN = Allowed(images=("surge:1",), prometheus_urls=())
FACTS = Facts(services={"alice": Service(cluster_ips=("10.96.0.10",))})
CAP_S = ClusterPolicy().caps.max_duration or 0.0


def _violations(spec: LoadTestSpec) -> list[tuple[str, str]]:
    found = loadtest_violations(spec, NS, ClusterPolicy(), OWN, FACTS)
    return [(v.field, v.rule) for v in found]


def _sweep(timeout: str) -> LoadTestSpec:
    raw: dict[str, Any] = {
        "target": {"url": "http://alice:8080"},
        "scenario": {"timeout": timeout},
        "load": {
            "model": "sweep",
            # 1, 2, 4, ... 512, then 1000: 11 steps, plus 3 bisections: 14 × 4m = 56 min.
            "sweep": {"startRate": 1, "factor": 2, "maxRate": 1000, "stepDuration": "4m"},
        },
        "thresholds": ["latency.p95 < 1s"],
    }
    return LoadTestSpec.model_validate(raw)


def test_a_sweeps_reply_waits_count_against_max_duration() -> None:
    """Attack: 14 sweep steps within maxDuration (1h), each allowed 720h for its replies by
    scenario.timeout: the target (the tenant's own, hanging) keeps the workers 420 days."""
    spec = _sweep("720h")
    assert spec.load.duration_s <= CAP_S
    assert builders.active_deadline_s(spec) > 365 * 86400  # what the Job would be allowed
    assert ("spec.load.sweep", "caps.maxDuration") in _violations(spec)


def test_a_sweep_with_short_timeouts_still_fits() -> None:
    """14 steps of 4m with the default 30s timeout: 63 min of run, over the 1h cap; 1s: fits."""
    assert ("spec.load.sweep", "caps.maxDuration") in _violations(_sweep("30s"))
    assert _violations(_sweep("1s")) == []


def test_run_grace_cannot_hold_the_workers_past_the_caps() -> None:
    """Attack: a 10 s load with timeouts.runGrace 720h and scenario.timeout 720h."""
    spec = LoadTestSpec.model_validate(
        {
            "target": {"url": "http://alice:8080"},
            "scenario": {"timeout": "720h"},
            "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
            "timeouts": {"runGrace": "720h"},
        }
    )
    assert builders.active_deadline_s(spec) > 29 * 86400
    assert _violations(spec) != []
