"""Cluster metrics through a real Prometheus: PromQL range queries via prometheus-api-client.

(a) Prometheus scrapes the demo agent Alice while requests arrive in two known batches.
(b) A deterministic replica/CPU/GPU timeline is backfilled with promtool hours in the
    past, so every number is checked exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from surge.agent import start_agent_process, stop_agent_process
from surge.api.loadtest import LoadTestSpec
from surge.api.thresholds import parse_threshold
from surge.results.cluster import metrics_available_condition
from surge.results.prometheus import collect_cluster_metrics, connect
from surge.results.queries import DEFAULT_QUERIES
from surge.verdicts import evaluate
from tests.support.prometheus import backfill, prometheus_missing_reason, running_prometheus

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        prometheus_missing_reason() is not None, reason=str(prometheus_missing_reason())
    ),
]

# Replicas 9 during warm-up, then 1 -> 3 -> 5 -> 4 in the window, 12 after the load:
# the window [T0+30, T0+300] must see only the middle part.
REPLICA_PLAN = [(0, 9), (30, 1), (60, 3), (120, 5), (240, 4), (315, 12)]
GPU_PLAN = [(0, 100), (30, 20), (210, 80), (315, 100)]
CPU_CORES = 0.75  # the cAdvisor counter grows by exactly this many seconds per second
POD = 'namespace="shop",pod="alice-5d9c7b8f6-x2x7q",container="agent"'


def _value_at(plan: Sequence[tuple[int, float]], dt: int) -> float:
    return [v for start, v in plan if start <= dt][-1]


# Two HPAs in the namespace: only alice's may count.
HPAS: dict[str, Callable[[int], float]] = {
    "alice-hpa": lambda dt: _value_at(REPLICA_PLAN, dt),
    "bob-hpa": lambda dt: 50.0,
}


def _openmetrics(t0: int) -> str:
    lines = [
        "# TYPE kube_deployment_status_replicas gauge",
        *(
            f'kube_deployment_status_replicas{{namespace="shop",deployment="alice"}} '
            f"{_value_at(REPLICA_PLAN, dt)} {t0 + dt}"
            for dt in range(0, 361, 15)
        ),
        "# TYPE kube_horizontalpodautoscaler_status_desired_replicas gauge",
        *(
            f'kube_horizontalpodautoscaler_status_desired_replicas{{namespace="shop",'
            f'horizontalpodautoscaler="{hpa}"}} {value(dt)} {t0 + dt}'
            for hpa, value in HPAS.items()
            for dt in range(0, 361, 15)
        ),
        "# TYPE kube_horizontalpodautoscaler_info gauge",
        *(
            f'kube_horizontalpodautoscaler_info{{namespace="shop",horizontalpodautoscaler='
            f'"{hpa}",scaletargetref_kind="Deployment",scaletargetref_name="{hpa[:-4]}"}}'
            f" 1 {t0 + dt}"
            for hpa in HPAS
            for dt in range(0, 361, 15)
        ),
        "# TYPE container_cpu_usage_seconds counter",
        *(
            f"container_cpu_usage_seconds_total{{{POD}}} {1000 + CPU_CORES * dt} {t0 + dt}"
            for dt in range(-60, 361, 15)  # a full rate window before the first step
        ),
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge",
        *(
            f"DCGM_FI_DEV_GPU_UTIL{{{POD}}} {_value_at(GPU_PLAN, dt)} {t0 + dt}"
            for dt in range(0, 361, 15)
        ),
        "# EOF",
    ]
    return "\n".join(lines) + "\n"


def _spec(**prometheus: Any) -> LoadTestSpec:
    return LoadTestSpec.model_validate(
        {
            "target": {"url": "http://alice:8080", "deploymentRef": {"name": "alice"}},
            "load": {
                "model": "constant",
                "stages": [{"duration": "300s", "target": 5}],
                "warmup": "30s",
            },
            "prometheus": prometheus,
        }
    )


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    workdir = tmp_path_factory.mktemp("prom-backfill")
    # 4 h back and minute-aligned: clear of the head block, and on the 15 s grid.
    t0 = (int(time.time()) - 4 * 3600) // 60 * 60
    backfill(_openmetrics(t0), workdir / "data")
    with running_prometheus(workdir) as prom:
        yield prom.url, t0


def test_backfilled_timeline_is_exact(backfilled: tuple[str, int]) -> None:
    url, t0 = backfilled
    out = collect_cluster_metrics(
        _spec(step="15s"),
        namespace="shop",
        loadtest="peak",
        run_id="1",
        window_start=t0 + 30,  # load start t0 + 30 s warm-up
        window_end=t0 + 300,
        prometheus_url=url,
    )
    rep = out.section["replicas"]
    # step function on the 15 s grid: 1 for 30 s, 3 for 60 s, 5 for 120 s, 4 for 60 s
    assert rep["replicaSeconds"] == 1 * 30 + 3 * 60 + 5 * 120 + 4 * 60 == 1050
    assert out.metrics["replicas.min"] == 1.0
    assert out.metrics["replicas.max"] == 5.0  # not 9 (warm-up) nor 12 (after the load)
    assert out.metrics["replicas.mean"] == pytest.approx(1050 / 270, abs=1e-6)
    assert out.metrics["replicas.scale_events"] == 3.0
    assert out.metrics["replicas.time_to_scale_up"] == 30.0
    assert rep["timeToPeakS"] == 90.0
    assert rep["series"][0] == [0.0, 1.0] and rep["series"][-1] == [270.0, 4.0]
    assert len(rep["series"]) == 270 // 15 + 1
    # the join on kube_horizontalpodautoscaler_info keeps alice's HPA, not bob's (50)
    desired = out.section["hpa"]["desiredReplicas"]
    assert (desired["min"], desired["max"]) == (1.0, 5.0)
    assert desired["series"] == rep["series"]
    # rate() of a counter growing 0.75/s is 0.75 cores at every step
    assert out.metrics["cpu.mean"] == pytest.approx(CPU_CORES, abs=1e-9)
    assert out.metrics["cpu.max"] == pytest.approx(CPU_CORES, abs=1e-9)
    # GPU 20 % for 180 s, then 80 % for 90 s
    assert out.metrics["gpu.max"] == 80.0
    assert out.metrics["gpu.mean"] == pytest.approx((20 * 180 + 80 * 90) / 270, abs=1e-6)
    # No memory, no loadgen series in this storage: named, and never zero.
    assert {"memory", "gpu_memory", "loadgen_rps", "loadgen_in_flight"} <= set(out.no_data)
    assert out.section["memory"] is None
    assert metrics_available_condition(out)["status"] == "False"


def test_window_bounding_with_a_shorter_window(backfilled: tuple[str, int]) -> None:
    url, t0 = backfilled
    out = collect_cluster_metrics(
        _spec(step="15s"),
        namespace="shop",
        loadtest="peak",
        run_id="1",
        window_start=t0 + 120,
        window_end=t0 + 240,
        prometheus_url=url,
    )
    assert out.metrics["replicas.min"] == 4.0 and out.metrics["replicas.max"] == 5.0
    assert out.metrics["replicas.time_to_scale_up"] is None  # it only scaled down
    assert out.section["replicas"]["timeToPeakS"] == 0.0
    assert out.section["replicas"]["replicaSeconds"] == 5 * 120


def test_no_data_query_is_a_condition_and_fails_its_threshold(backfilled: tuple[str, int]) -> None:
    url, t0 = backfilled
    out = collect_cluster_metrics(
        _spec(step="15s"),
        namespace="other",  # nothing was ever recorded there
        loadtest="peak",
        run_id="1",
        window_start=t0 + 30,
        window_end=t0 + 300,
        prometheus_url=url,
    )
    assert set(out.no_data) == set(DEFAULT_QUERIES)
    assert all(reason == "no data" for reason in out.no_data.values())
    assert out.metrics["replicas.max"] is None
    [verdict] = evaluate([parse_threshold("replicas.max < 10")], out.metrics)
    assert verdict.passed is False and verdict.measured is None
    cond = metrics_available_condition(out)
    assert cond["reason"] == "NoData" and "replicas (no data)" in cond["message"]


def test_bad_promql_is_a_named_reason(backfilled: tuple[str, int]) -> None:
    url, t0 = backfilled
    out = collect_cluster_metrics(
        _spec(step="15s", queries={"replicas": "max(kube_deployment_status_replicas{"}),
        namespace="shop",
        loadtest="peak",
        run_id="1",
        window_start=t0 + 30,
        window_end=t0 + 300,
        prometheus_url=url,
    )
    assert out.no_data["replicas"].startswith("query failed: PrometheusApiClientException")
    assert "400" in out.no_data["replicas"]
    assert out.metrics["gpu.max"] == 80.0  # the other queries still answer


def _wait(url: str, promql: str, ok: Any, timeout_s: float) -> None:
    client = connect(url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = time.time()
        result = client.custom_query_range(
            promql,
            start_time=datetime.fromtimestamp(now - 1, UTC),
            end_time=datetime.fromtimestamp(now, UTC),
            step="1",
        )
        if result and ok(float(result[0]["values"][-1][1])):
            return
        time.sleep(0.2)
    raise AssertionError(f"{promql} did not settle within {timeout_s}s")


def _after_next_scrape(url: str, interval_s: float, lead_s: float = 0.1) -> None:
    """Sleeps until `lead_s` after the next scrape of job "test" (its scrapes keep their phase)."""
    now = time.time()
    (series,) = connect(url).custom_query_range(
        'timestamp(up{job="test"})',
        start_time=datetime.fromtimestamp(now - 1, UTC),
        end_time=datetime.fromtimestamp(now, UTC),
        step="1",
    )
    last = float(series["values"][-1][1])
    upcoming = last + math.ceil((time.time() - last) / interval_s) * interval_s
    time.sleep(max(0.0, upcoming + lead_s - time.time()))


def test_scraping_alice(tmp_path: Path) -> None:
    proc, alice = start_agent_process(
        ["--latency", "1ms", "--cpu-ms", "0", "--seed", "1"], timeout_s=30
    )
    try:
        host = alice.removeprefix("http://")
        with running_prometheus(tmp_path, targets=[host], scrape_interval_s=0.5) as prom:
            _wait(prom.url, 'up{job="test"}', lambda v: v == 1.0, 20)
            counter = 'sum(alice_requests_total{endpoint="respond", status="200"})'
            with httpx.Client(base_url=alice, timeout=5) as http:
                for _ in range(3):
                    assert http.post("/respond", json={"query": "refund"}).status_code == 200
                _wait(prom.url, counter, lambda v: v == 3.0, 20)
                # The window opens once 3 is scraped: a scrape between the first batch's
                # requests (a loaded box) would otherwise put a 1 or 2 in it.
                start = time.time()
                time.sleep(2.0)
                # Both at once, just after a scrape, so none falls between them (one rise, 3 -> 5).
                _after_next_scrape(prom.url, 0.5)
                second_batch = time.time() - start
                with ThreadPoolExecutor(2) as pool:
                    codes = list(
                        pool.map(
                            lambda _: http.post("/respond", json={"query": "shipping"}).status_code,
                            range(2),
                        )
                    )
                assert codes == [200, 200]
                _wait(prom.url, counter, lambda v: v == 5.0, 20)
            time.sleep(1.0)
            end = time.time()
            out = collect_cluster_metrics(
                # The override path: read Alice's request counter as the "replicas"
                # timeline, plus an extra query of our own.
                _spec(step="0.5s", queries={"replicas": counter, "served": counter}),
                namespace="shop",
                loadtest="peak",
                run_id="1",
                window_start=start,
                window_end=end,
                prometheus_url=prom.url,
                settings_queries={n: "" for n in DEFAULT_QUERIES if n != "replicas"},
            )
    finally:
        stop_agent_process(proc)
    assert out.no_data == {}
    rep = out.section["replicas"]
    assert (rep["min"], rep["max"], rep["scaleEvents"]) == (3.0, 5.0, 1)
    # the rise is seen at the first scrape after the second batch, so within a scrape
    # interval plus a step (0.5 s + 0.5 s) and the 2-core box's jitter
    assert second_batch <= rep["timeToFirstScaleUpS"] <= second_batch + 2.5
    assert out.section["extra"]["served"]["max"] == 5.0
    first_t, first_v = rep["series"][0]
    assert first_v == 3.0 and 0 <= first_t <= second_batch  # never a zero before data
