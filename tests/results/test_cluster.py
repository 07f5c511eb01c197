"""Samples -> cluster section and flat metrics; no data is named, never zero, never a pass."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from surge.api.loadtest import LoadTestSpec
from surge.api.thresholds import METRICS, parse_threshold
from surge.results.cluster import (
    CLUSTER_METRICS,
    QueryOutcome,
    build_cluster,
    metrics_available_condition,
)
from surge.results.prometheus import collect_cluster_metrics, parse_range_result
from surge.results.queries import DEFAULT_QUERIES
from surge.results.timeline import Window
from surge.verdicts import evaluate

W = Window(1000.0, 1100.0)
REPLICAS = [(1000.0, 1.0), (1010.0, 3.0), (1030.0, 5.0), (1070.0, 4.0)]


def test_cluster_metric_names_are_threshold_metrics() -> None:
    assert set(CLUSTER_METRICS) <= set(METRICS)


def test_replicas_section_and_flat_metrics() -> None:
    out = build_cluster(
        [
            QueryOutcome("replicas", "q1", REPLICAS),
            QueryOutcome("cpu", "q2", [(1000.0, 0.5), (1050.0, 1.5)]),
            QueryOutcome("gpu_util", "q3", [(1000.0, 20.0), (1075.0, 80.0)]),
            QueryOutcome("gpu_memory", "q4", [(1000.0, 4096.0)]),
        ],
        W,
        step_s=10,
    )
    rep = out.section["replicas"]
    assert rep["min"] == 1 and rep["max"] == 5 and rep["mean"] == 3.9
    assert rep["replicaSeconds"] == 390
    assert rep["scaleEvents"] == 3
    assert rep["timeToFirstScaleUpS"] == 10 and rep["timeToPeakS"] == 30
    assert rep["series"] == [[0, 1], [10, 3], [30, 5], [70, 4]]
    assert out.section["cpu"]["mean"] == 1.0 and out.section["cpu"]["unit"] == "cores"
    assert out.section["gpu"]["memory"]["max"] == 4096
    assert out.metrics == {
        "replicas.min": 1.0,
        "replicas.max": 5.0,
        "replicas.mean": 3.9,
        "replicas.scale_events": 3.0,
        "replicas.time_to_scale_up": 10.0,
        "cpu.mean": 1.0,
        "cpu.max": 1.5,
        "gpu.mean": 20 * 0.75 + 80 * 0.25,
        "gpu.max": 80.0,
    }
    assert out.no_data == {} and out.section["noData"] == []
    assert metrics_available_condition(out)["status"] == "True"


def test_no_data_is_named_and_fails_thresholds() -> None:
    out = build_cluster(
        [
            QueryOutcome("replicas", "q1", [], "no data"),
            QueryOutcome("cpu", "q2", [(900.0, 1.0)]),  # only before the window
            QueryOutcome("gpu_util", "q3", [], "query failed: ConnectionError: refused"),
        ],
        W,
        step_s=10,
    )
    assert out.section["noData"] == ["cpu", "gpu_util", "replicas"]
    assert out.no_data["gpu_util"].startswith("query failed")
    assert out.no_data["cpu"] == "no data in the measured window"
    assert out.section["replicas"] is None and out.section["cpu"] is None
    assert all(v is None for v in out.metrics.values())  # never a zero
    verdicts = evaluate([parse_threshold("replicas.max < 10")], out.metrics)
    assert verdicts[0].passed is False and "no data" in verdicts[0].display
    cond = metrics_available_condition(out)
    assert cond["status"] == "False" and cond["reason"] == "NoData"
    assert "gpu_util (query failed" in cond["message"]


def test_stored_series_are_capped() -> None:
    samples = [(1000.0 + i * 0.1, float(i // 10)) for i in range(1001)]
    out = build_cluster([QueryOutcome("replicas", "q", samples)], W, step_s=0.1, max_points=120)
    series = out.section["replicas"]["series"]
    assert len(series) <= 120 and series[0][0] == 0 and series[-1][0] == 100
    # the metrics use every sample, not the stored ones
    assert out.section["replicas"]["scaleEvents"] == 100


def test_extra_queries_are_kept() -> None:
    out = build_cluster([QueryOutcome("queue", "q", [(1000.0, 2.0), (1050.0, 6.0)])], W, step_s=1)
    assert out.section["extra"]["queue"]["mean"] == 4.0
    assert out.section["extra"]["queue"]["max"] == 6.0


@pytest.mark.parametrize(
    ("result", "samples", "reason"),
    [
        ([], [], "no data"),
        ([{"metric": {}, "values": [[1.5, "2"], [2.5, "NaN"], [3.5, "+Inf"]]}], [(1.5, 2.0)], None),
        ([{"metric": {}, "values": [[1, "NaN"]]}], [], "no data (only NaN points)"),
        ([{"values": []}, {"values": []}], [], "returned 2 series"),
    ],
)
def test_parse_range_result(result: Any, samples: list[Any], reason: str | None) -> None:
    got, why = parse_range_result(result)
    assert got == samples
    assert (why is None) if reason is None else (why is not None and why.startswith(reason))


class FakePrometheus:
    """An in-memory querier: answers by metric name, records what was asked."""

    def __init__(self, data: dict[str, list[list[Any]]], fail: set[str] | None = None) -> None:
        self.data = data
        self.fail = fail or set()
        self.calls: list[dict[str, Any]] = []

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        self.calls.append({"query": query, "step": step, "params": params})
        for metric, values in self.data.items():
            if metric in query:
                if metric in self.fail:
                    raise ConnectionError("connection refused")
                return [{"metric": {}, "values": values}]
        return []


def _spec(**prometheus: Any) -> LoadTestSpec:
    return LoadTestSpec.model_validate(
        {
            "target": {"url": "http://alice:8080", "deploymentRef": {"name": "alice"}},
            "load": {"model": "constant", "stages": [{"duration": "2m", "target": 5}]},
            "prometheus": prometheus,
        }
    )


def test_collect_bounds_queries_to_the_window_and_names_failures() -> None:
    fake = FakePrometheus(
        {
            "kube_deployment_status_replicas": [[1000.25, "1"], [1060.25, "2"]],
            "container_cpu_usage_seconds_total": [[1000.25, "0.25"]],
        },
        fail={"container_cpu_usage_seconds_total"},
    )
    out = collect_cluster_metrics(
        _spec(step="10s", queries={"gpu_memory": ""}),
        namespace="shop",
        loadtest="peak",
        run_id="1",
        window_start=1000.25,
        window_end=1120.25,
        querier=fake,
    )
    assert {c["params"]["start"] for c in fake.calls} == {"1000.250"}
    assert {c["params"]["end"] for c in fake.calls} == {"1120.250"}
    assert {c["step"] for c in fake.calls} == {"10"}
    assert len(fake.calls) == len(DEFAULT_QUERIES) - 1  # gpu_memory switched off
    assert out.metrics["replicas.max"] == 2.0
    assert out.metrics["replicas.time_to_scale_up"] == 60.0
    assert out.no_data["cpu"] == "query failed: ConnectionError: connection refused"
    assert "gpu_util" in out.no_data and "gpu_memory" not in out.section["queries"]
    assert "[60s]" in out.section["queries"]["loadgen_rps"]  # rate window max(60s, 4 x step)


def test_collect_bad_override_is_a_named_no_data_entry() -> None:
    # A spec with this override is refused at admission; the operator's own overrides
    # (settings_queries) are not validated there, so a typo in them becomes no data.
    out = collect_cluster_metrics(
        _spec(),
        namespace="shop",
        loadtest="peak",
        run_id="1",
        window_start=0.0,
        window_end=60.0,
        settings_queries={"queue": 'sum(q{ns="{namespce}"})'},
        querier=FakePrometheus({}),
    )
    assert "{namespce}" in out.no_data["queue"] and "'queue'" in out.no_data["queue"]


def test_bad_placeholder_in_a_spec_is_refused_at_admission() -> None:
    with pytest.raises(ValidationError, match=r"query 'queue' uses unknown placeholder"):
        _spec(queries={"queue": 'sum(q{ns="{namespce}"})'})


def test_collect_without_deployment_skips_target_queries() -> None:
    spec = _spec().model_copy(
        update={"target": _spec().target.model_copy(update={"deployment_ref": None})}
    )
    fake = FakePrometheus({"surge_in_flight": [[10, "3"]]})
    out = collect_cluster_metrics(
        spec, namespace="shop", loadtest="peak", run_id="1", window_start=0.0, window_end=60.0,
        querier=fake,
    )  # fmt: skip
    assert "replicas" in out.skipped and "replicas" not in out.no_data
    assert out.section["loadgen"]["inFlight"]["max"] == 3.0
    assert all("kube_" not in c["query"] for c in fake.calls)


def test_collect_unreachable_prometheus_never_raises() -> None:
    out = collect_cluster_metrics(
        _spec(),
        namespace="shop",
        loadtest="peak",
        run_id="1",
        window_start=0.0,
        window_end=60.0,
        prometheus_url="http://127.0.0.1:1",
    )
    assert set(out.no_data) == set(DEFAULT_QUERIES)
    assert all(r.startswith("query failed") for r in out.no_data.values())
