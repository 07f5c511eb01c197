"""The Grafana dashboard and the default queries: names the exporters really use, and
PromQL that Prometheus' own parser accepts (promtool check rules)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from surge.loadgen.recorder import PromMetrics
from surge.results.queries import DEFAULT_QUERIES, QueryVars, default_pod_regex, render_queries
from tests.support.prometheus import PROMTOOL, prometheus_missing_reason

DASHBOARD = Path(__file__).resolve().parents[2] / "charts/surge/dashboards/surge.json"
_METRIC = re.compile(r"\b(surge_[a-z_]+)\b")


def _dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def _exprs() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _loadgen_series() -> set[str]:
    """Sample names the loadgen worker really exports (its registry, rendered)."""
    prom = PromMetrics({"loadtest": "lt", "variant": "", "worker": "0"}, lambda: 0)
    for outcome in prom.outcome.values():
        outcome.inc()
    prom.dropped.inc()
    prom.latency.observe(0.1)
    prom.ttft.observe(0.1)
    text = generate_latest(prom.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def test_dashboard_shape() -> None:
    doc = _dashboard()
    assert doc["uid"] == "surge-loadtest" and doc["title"]
    panels = doc["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    graphs = [p for p in panels if p["type"] == "timeseries"]
    assert len(graphs) == 10
    for p in graphs:
        assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"])
        assert p["gridPos"]["w"] > 0 and p["fieldConfig"]["defaults"]["unit"]
    variables = [v["name"] for v in doc["templating"]["list"]]
    assert variables == ["datasource", "namespace", "loadtest", "deployment"]


def test_dashboard_uses_real_loadgen_and_kube_state_metrics_names() -> None:
    exported = _loadgen_series()
    used = {m for e in _exprs() for m in _METRIC.findall(e)}
    assert used == {
        "surge_requests_total",
        "surge_request_latency_seconds_bucket",
        "surge_ttft_seconds_bucket",
        "surge_in_flight",
        "surge_dropped_total",
    }
    assert used <= exported, used - exported
    text = " ".join(_exprs())
    assert "kube_deployment_status_replicas{" in text
    assert "kube_horizontalpodautoscaler_status_desired_replicas" in text


def test_default_queries_use_real_loadgen_names() -> None:
    used = {m for q in DEFAULT_QUERIES.values() for m in _METRIC.findall(q)}
    assert used and used <= _loadgen_series()


def _check_promql(exprs: dict[str, str], tmp_path: Path) -> None:
    rules = {"groups": [{"name": "check", "rules": [
        {"record": f"check:{name}", "expr": expr} for name, expr in exprs.items()
    ]}]}  # fmt: skip
    path = tmp_path / "rules.json"  # JSON is YAML
    path.write_text(json.dumps(rules))
    done = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


@pytest.mark.prometheus
@pytest.mark.skipif(
    prometheus_missing_reason() is not None, reason=str(prometheus_missing_reason())
)
def test_promql_parses(tmp_path: Path) -> None:
    qvars = QueryVars("shop", "peak", "1", "60s", "15s", "alice.v2", default_pod_regex("alice.v2"))
    rendered = render_queries(DEFAULT_QUERIES, qvars)
    assert not rendered.errors and not rendered.skipped
    grafana = {
        f"panel_{i}": e.replace("$__rate_interval", "1m").replace("$", "")
        for i, e in enumerate(_exprs())
    }
    _check_promql({**rendered.queries, **grafana}, tmp_path)
