"""A capacity sweep by `surge run` against Alice with a known capacity, loopback only.

Alice with --latency fixed:50ms --max-concurrency 4 --queue-size 0 serves at most 4
requests at once and refuses (503) the rest, so no rate above 4 / 50 ms = 80 req/s can
hold `errors.rate < 1%`, and every rate below 4 / S, S her slowest service time, does.
Steps 12.5, 25, 50, 100 (fails), then 3 bisections in [50, 100): resolution 6.25 req/s.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from surge.agent.process import start_agent_process, stop_agent_process
from surge.api.results import load_results
from surge.api.simulation import PoolCapacity
from surge.loadgen.local import execute

NOMINAL_RPS = 4 / 0.050


@pytest.mark.timeout(60)
def test_sweep_finds_alices_capacity(tmp_path: Path) -> None:
    args = ["--latency", "fixed:50ms", "--cpu-ms", "0", "--max-concurrency", "4"]
    proc, url = start_agent_process(
        [*args, "--queue-size", "0", "--seed", "1"], stderr=subprocess.DEVNULL
    )
    manifest = tmp_path / "sweep.yaml"
    manifest.write_text(
        f"""apiVersion: surge.dev/v1alpha1
kind: LoadTest
metadata: {{name: sweep}}
spec:
  target: {{url: "{url}"}}
  scenario: {{path: /respond, body: {{query: "where is my order"}}}}
  load:
    model: sweep
    sweep: {{startRate: 12.5, maxRate: 200, stepDuration: 3s, settle: 1s, bisections: 3}}
  thresholds: ["errors.rate < 1%"]
"""
    )
    out, cap_out = tmp_path / "out.json", tmp_path / "capacity.json"
    try:
        rc = execute(
            manifest,
            out=out,
            capacity_out=cap_out,
            replicas=2,
            console=Console(file=open("/dev/null", "w")),  # noqa: SIM115
            live=False,
        )
    finally:
        stop_agent_process(proc)
    results = load_results(json.loads(out.read_text()), str(out))
    sweep, cap = results.sweep, results.capacity
    assert sweep is not None and cap is not None
    steps = sweep.steps
    assert [s.rate for s in steps[:4]] == [12.5, 25, 50, 100]
    assert [s.passed for s in steps[:4]] == [True, True, True, False]
    assert len(steps) == 4 + 3 and sweep.stop == "Bisected"
    assert sweep.resolution_rps == pytest.approx((100 - 50) / 2**3)
    found = sweep.max_sustainable_rps
    assert found is not None and steps[0].latency.p99 is not None
    slowest_s = steps[0].latency.p99 / 1000  # her service time at light load
    # The truth lies in [found, found + resolution): nothing above 80 req/s holds, and
    # the first failing rate is at least the rate at which her slowest replies fit.
    assert found <= NOMINAL_RPS
    assert sweep.first_failing_rps is not None and sweep.first_failing_rps >= 4 / slowest_s
    assert rc == 0 and results.verdict is not None
    assert (results.verdict.outcome, results.verdict.reason) == ("Passed", "CapacityFound")
    assert cap.max_sustainable_rps_per_replica == pytest.approx(found / 2)
    assert results.summary.max_sustainable_rps == found
    body = json.loads(cap_out.read_text())["capacity"]["default"]
    # Without Prometheus, cpuPerRequest is unknown: the simulator's file needs it added.
    assert "cpuPerRequest" not in body
    pool = PoolCapacity.model_validate(body | {"cpuPerRequest": "50m"})
    assert pool.max_rps is not None and pool.max_rps <= NOMINAL_RPS / 2
