"""`surge run` replays a trace: 2 worker processes against the demo agent follow the curve,
and the results keep it beside the achieved per-second counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.loadgen.test_run import _free_port, _surge

MANIFEST = """
apiVersion: surge.dev/v1alpha1
kind: LoadTest
metadata: {{name: replay}}
spec:
  target:
    url: http://127.0.0.1:{port}
    readiness: {{http: {{path: /readyz}}, timeout: 20s}}
  scenario:
    path: /respond
    body: {{query: "where is my order"}}
  load:
    model: trace
    trace:
      points: [{{tSeconds: 0, rps: 10}}, {{tSeconds: 20, rps: 60}}, {{tSeconds: 40, rps: 20}}]
      timeScale: 10
      arrivals: constant
    workers: 2
  thresholds: ["errors.rate < 1%"]
"""


@pytest.mark.timeout(90)
def test_surge_run_replays_the_curve(tmp_path: Path) -> None:
    manifest = tmp_path / "lt.yaml"
    manifest.write_text(MANIFEST.format(port=_free_port()))
    out = tmp_path / "results.json"
    p = _surge("run", str(manifest), "--start-demo-agent", "--out", str(out))
    # 0 Passed; 1 where a loaded machine made the generator lag (GeneratorSaturated).
    assert p.returncode in (0, 1) and out.exists(), p.stdout + p.stderr
    results = json.loads(out.read_text())
    trace = results["trace"]
    assert trace["source"] == "trace from inline points, 3 points"
    assert trace["points"] == [[0.0, 10.0], [2.0, 60.0], [4.0, 20.0]]
    # The curve's integral per second: 10→35, 35→60, 60→40, 40→20 req/s, 150 arrivals.
    assert trace["expectedPerSecond"] == [22.5, 47.5, 50.0, 30.0]
    # Constant arrivals: the k-th at Λ⁻¹(k), k = 0 … 149: 150 sent, each counted once in
    # the second its reply finished. (How closely each second follows the curve depends on
    # the machine's load; tests/e2e/test_trace.py checks it, and the schedule's unit tests
    # check the due times exactly.)
    assert results["requests"]["sent"] == 150
    assert sum(trace["achievedPerSecond"]) == 150
