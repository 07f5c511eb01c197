"""`surge run` end to end: a short manifest, 2 worker processes, the demo agent."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from surge.api.results import load_results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MANIFEST = """
apiVersion: surge.dev/v1alpha1
kind: LoadTest
metadata: {{name: quick}}
spec:
  target:
    url: http://127.0.0.1:{port}
    readiness: {{http: {{path: /readyz}}, timeout: 20s}}
  scenario:
    path: /respond
    body: {{query: "{{{{query}}}}"}}
    dataset: {{file: rows.jsonl}}
  load:
    model: poisson
    stages: [{{duration: 3s, target: 40}}]
    warmup: 1s
    workers: 2
    seed: 3
  thresholds: ["latency.p95 < 2s", "errors.rate < 1%", "{extra}"]
"""


def _surge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "surge.loadgen.commands", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.timeout(90)
def test_run_with_demo_agent(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"query": "where is my order"}\n{"query": "refund"}\n')
    manifest = tmp_path / "lt.yaml"
    manifest.write_text(MANIFEST.format(port=_free_port(), extra="requests.count > 1000000"))
    out = tmp_path / "results.json"
    page = tmp_path / "report.html"
    p = _surge("run", str(manifest), "--start-demo-agent", "--out", str(out), "--report", str(page))
    assert p.returncode == 1, p.stdout + p.stderr  # the impossible threshold fails
    assert "started the demo agent" in p.stdout
    assert "Thresholds" in p.stdout
    # Not a terminal: the progress table's last row ends before the results start.
    assert any(line.strip() == "Results" for line in p.stdout.splitlines()), p.stdout
    r = load_results(json.loads(out.read_text()), str(out))
    assert r.workers.reported == [0, 1]
    assert r.requests.sent > 40
    assert r.errors.rate == 0
    assert r.summary.target_rps == pytest.approx(40)
    assert [t.passed for t in r.thresholds] == [True, True, False]
    assert r.verdict is not None and r.verdict.outcome == "Failed"
    assert r.timeseries
    # The schedule's rate in each second: 40/s while it runs, 0 after its end.
    assert [p.target_rps for p in r.timeseries[:2]] == [40.0, 40.0]
    # --report: the same renderer as `surge report`, plots included.
    html = page.read_text()
    assert "Verdict: Failed" in html
    assert html.count('src="data:image/png;base64,') >= 3
    assert 'id="plot-latency"' in html


def test_bad_input_exits_2_with_field_names(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MANIFEST.format(port=1, extra="latncy.p95 < 1s"))
    p = _surge("run", str(bad))
    assert p.returncode == 2
    assert "spec.thresholds[2]" in p.stderr
    assert "Traceback" not in p.stderr


def test_remote_targets_are_refused(tmp_path: Path) -> None:
    remote = tmp_path / "remote.yaml"
    text = MANIFEST.format(port=80, extra="errors.rate < 1%").replace("127.0.0.1", "example.com")
    remote.write_text(text.replace('"errors.rate < 1%", "errors.rate < 1%"', '"errors.rate < 1%"'))
    (tmp_path / "rows.jsonl").write_text('{"query": "x"}\n')
    p = _surge("run", str(remote))
    assert p.returncode == 2
    assert "--allow-remote" in p.stderr
