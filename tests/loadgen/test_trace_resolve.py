"""Resolving a trace at the edge: the query sent (window, step), the ConfigMap read, the
resolved spec checked again, the refusals of a local run; then against a real Prometheus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests
from prometheus_api_client.exceptions import PrometheusApiClientException

from surge.api.loadtest import LoadTestSpec
from surge.api.manifests import ManifestError
from surge.loadgen.plan import build_plan, plan_json, plan_sha256
from surge.loadgen.trace import TraceError
from surge.loadgen.trace_resolve import TraceUnavailable, resolve_locally, resolve_trace
from surge.simulate.trace import from_load
from tests.support.prometheus import backfill, prometheus_missing_reason, running_prometheus


class FakeQuerier:
    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls: list[dict[str, Any]] = []

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any:
        self.calls.append({"query": query, "step": step, "params": params})
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def _spec(trace: dict[str, Any], **over: Any) -> LoadTestSpec:
    return LoadTestSpec.model_validate(
        {
            "target": {"url": "http://127.0.0.1:9"},
            "load": {"model": "trace", "trace": trace, "warmup": "1s"},
            **over,
        }
    )


NOW = 1_800_000_007.0
QUERY = 'sum(rate(http_requests_total{service="alice"}[1m]))'


def test_a_prometheus_curve_is_read_over_the_window_at_its_step() -> None:
    end = 1_800_000_000.0  # NOW rounded down to the 10 s step
    q = FakeQuerier([{"metric": {}, "values": [[end - 20 + 10 * i, f"{i + 1}"] for i in range(3)]}])
    spec = _spec({"prometheus": {"query": QUERY, "last": "20s", "step": "10s"}, "timeScale": 2})
    out = resolve_trace(spec, querier=q, now=NOW)
    assert q.calls == [
        {
            "query": QUERY,
            "step": "10",
            "params": {"start": f"{end - 20:.3f}", "end": f"{end:.3f}"},
        }
    ]
    trace = out.load.trace
    assert trace is not None and trace.prometheus is None
    assert [(p.t_seconds, p.rps) for p in trace.points or []] == [(0, 1), (10, 2), (20, 3)]
    assert trace.resolved_from == (
        f"trace from Prometheus {QUERY} [2027-01-15T07:59:40Z, 2027-01-15T08:00:00Z] step 10s, "
        "3 points, timeScale 2, rateScale 1, linear, poisson arrivals"
    )
    assert out.load.duration_s == 10.0 and out.load.peak == 3.0
    # The plan (and so its hash) carries the curve: the same points give the same digest.
    plan = build_plan(out, name="t", namespace="n", run_id="1")
    again = build_plan(resolve_trace(spec, querier=q, now=NOW), name="t", namespace="n", run_id="1")
    assert plan_sha256(plan_json(plan)) == plan_sha256(plan_json(again))


def test_a_configmap_curve_is_read_and_named() -> None:
    spec = _spec({"configMapRef": {"name": "tuesday", "key": "rps.csv"}, "arrivals": "constant"})
    seen: list[tuple[str, str]] = []

    def read(name: str, key: str) -> str:
        seen.append((name, key))
        return "t_seconds,rps\n0,4\n60,8\n"

    out = resolve_trace(spec, read_configmap=read)
    assert seen == [("tuesday", "rps.csv")]
    assert out.load.trace is not None
    assert out.load.trace.source.startswith("trace from ConfigMap tuesday key rps.csv, 2 points")


def test_the_resolved_curve_is_checked_against_the_caps() -> None:
    spec = _spec({"configMapRef": {"name": "c", "key": "k"}}, safety={"maxRate": 100})
    with pytest.raises(ManifestError, match=r"load peaks at 500 req/s, above safety\.maxRate"):
        resolve_trace(spec, read_configmap=lambda *_: "0,1\n10,500\n")
    with pytest.raises(ManifestError, match="warmup"):
        resolve_trace(spec, read_configmap=lambda *_: "0,1\n1,5\n")


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([], "spec.load.trace.prometheus: the query returned no series"),
        (ConnectionError("refused"), "the query failed: ConnectionError: refused"),
    ],
)
def test_query_failures_name_the_field(result: Any, message: str) -> None:
    spec = _spec({"prometheus": {"query": QUERY, "last": "1m"}})
    with pytest.raises(TraceError, match=message):
        resolve_trace(spec, querier=FakeQuerier(result), now=NOW)


@pytest.mark.parametrize(
    ("exc", "unavailable"),
    [
        (ConnectionError("refused"), True),
        (requests.ConnectionError("refused"), True),
        (requests.Timeout("read timed out"), True),
        (PrometheusApiClientException("HTTP Status Code 503 (b'overloaded')"), True),
        (PrometheusApiClientException("HTTP Status Code 429 (b'slow down')"), True),
        (PrometheusApiClientException("HTTP Status Code 400 (b'parse error')"), False),
        (ValueError("bad JSON"), False),
    ],
)
def test_only_no_answer_is_unavailable(exc: Exception, unavailable: bool) -> None:
    """No answer (the operator retries it) versus an answer that refuses the query (the
    spec is refused, naming the field)."""
    spec = _spec({"prometheus": {"query": QUERY, "last": "1m"}})
    with pytest.raises(TraceError, match=r"spec\.load\.trace\.prometheus: the query failed") as err:
        resolve_trace(spec, querier=FakeQuerier(exc), now=NOW)
    assert isinstance(err.value, TraceUnavailable) is unavailable


def test_local_runs_refuse_a_configmap_and_a_missing_prometheus() -> None:
    with pytest.raises(ManifestError, match="configMapRef: local runs cannot read ConfigMaps"):
        resolve_locally(_spec({"configMapRef": {"name": "c", "key": "k"}}))
    with pytest.raises(ManifestError, match=r"no Prometheus: set spec\.prometheus\.url"):
        resolve_locally(_spec({"prometheus": {"query": QUERY, "last": "1m"}}))


# A real Prometheus: backfilled hours back (clear of the head block), on the 5 s grid.
RATES = [(0, 2.0), (60, 2.0), (120, 8.0), (180, 8.0), (240, 4.0)]  # a gauge, piecewise


def _value(dt: int) -> float:
    return [v for start, v in RATES if start <= dt][-1]


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    missing = prometheus_missing_reason()
    if missing:
        pytest.skip(missing)
    workdir = tmp_path_factory.mktemp("trace-prom")
    t0 = (int(time.time()) - 3 * 3600) // 60 * 60
    lines = ["# TYPE recorded_rps gauge"]
    lines += [f'recorded_rps{{service="alice"}} {_value(dt)} {t0 + dt}' for dt in range(0, 301, 5)]
    backfill("\n".join([*lines, "# EOF"]) + "\n", workdir / "data")
    with running_prometheus(workdir) as server:
        yield server.url, t0


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def test_a_real_prometheus_gives_the_window_at_its_step(prom: tuple[str, int]) -> None:
    url, t0 = prom
    spec = _spec(
        {
            "prometheus": {
                "query": 'sum(recorded_rps{service="alice"})',
                "start": _iso(t0 + 30),
                "end": _iso(t0 + 270),
                "step": "30s",
            },
            "timeScale": 10,
            "interpolation": "step",
        },
        prometheus={"url": url},
    )
    out = resolve_locally(spec)
    trace = out.load.trace
    assert trace is not None
    got = [(p.t_seconds, p.rps) for p in trace.points or []]
    assert got == [(30.0 * i, _value(30 + 30 * i)) for i in range(9)]
    assert out.load.duration_s == 24.0  # 240 s at 10×
    assert f"[{_iso(t0 + 30)}, {_iso(t0 + 270)}] step 30s, 9 points" in trace.source
    # `surge simulate` reads the same curve: one rate per second of the replay.
    rates = from_load(spec).rates
    assert rates[:3] == [2.0, 2.0, 2.0] and rates[9:12] == [8.0, 8.0, 8.0] and len(rates) == 24


def test_an_empty_window_is_refused(prom: tuple[str, int]) -> None:
    url, t0 = prom
    spec = _spec(
        {
            "prometheus": {
                "query": 'sum(recorded_rps{service="bob"})',
                "start": _iso(t0),
                "end": _iso(t0 + 60),
            }
        },
        prometheus={"url": url},
    )
    with pytest.raises(ManifestError, match="prometheus: the query returned no series"):
        resolve_locally(spec)
