"""A trace at admission: the operator reads the curve (a labelled ConfigMap, or a query the
policy allows) into the plan, checks the caps on it, and names the source in status."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from surge.api.experiment import ScalingExperimentSpec
from surge.api.manifests import ManifestError
from surge.api.policy import Caps, ClusterPolicy, PolicyViolation
from surge.loadgen.plan import parse_plan
from surge.operator.experiment.runs import child_loadtest, runs_of
from surge.operator.kube.errors import KubeError
from surge.operator.loadtest import admission, builders
from surge.operator.settings import Settings
from tests.loadgen.test_trace_resolve import FakeQuerier
from tests.operator.fake_kube import FakeKube
from tests.operator.test_lifecycle import NAME, NS, SERVICE, T0, _body, _spec, tick

EXPERIMENT = Path(__file__).parents[1] / "simulate" / "experiment.yaml"
QUERY = 'sum(rate(http_requests_total{service="alice"}[1m]))'
CSV = {
    "kind": "ConfigMap",
    "metadata": {"name": "tuesday", "namespace": NS},
    "data": {"rps.csv": "t_seconds,rps\n0,2\n600,10\n1200,4\n"},
}


@pytest.fixture
def kube() -> FakeKube:
    k = FakeKube()
    k.put(SERVICE)
    return k


def _trace(trace: dict[str, Any]) -> dict[str, Any]:
    return _spec(load={"model": "trace", "trace": trace, "workers": 2})


def _plan(kube: FakeKube) -> Any:
    cm = kube.configmap(NS, builders.run_name(NAME, "1"))
    assert cm is not None
    return parse_plan(cm["data"][builders.PLAN_KEY])


def test_a_configmap_curve_needs_the_label_and_lands_in_the_plan(kube: FakeKube) -> None:
    cm = json.loads(json.dumps(CSV))
    kube.put(cm)
    body = _body(_trace({"configMapRef": {"name": "tuesday", "key": "rps.csv"}, "timeScale": 60}))
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed"
    assert "spec.load.trace.configMapRef" in body["status"]["message"]
    assert "surge.dev/usable" in body["status"]["message"]
    cm["metadata"]["labels"] = {"surge.dev/usable": "true"}
    body = _body(_trace({"configMapRef": {"name": "tuesday", "key": "rps.csv"}, "timeScale": 60}))
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Pending", body["status"]["message"]
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    source = "trace from ConfigMap tuesday key rps.csv, 3 points, timeScale 60"
    assert f"load: {source}" in ready["message"]
    assert body["status"]["loadSource"].startswith(source)
    trace = _plan(kube).spec.load.trace
    assert trace.config_map_ref is None and [p.rps for p in trace.points] == [2, 10, 4]
    assert body["status"]["summary"]["targetRps"] == 10.0


def test_a_bad_csv_is_refused_naming_the_line(kube: FakeKube) -> None:
    cm = json.loads(json.dumps(CSV))
    cm["metadata"]["labels"] = {"surge.dev/usable": "true"}
    cm["data"]["rps.csv"] = "0,1\n10,-3\n"
    kube.put(cm)
    body = _body(_trace({"configMapRef": {"name": "tuesday", "key": "rps.csv"}}))
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed"
    assert "spec.load.trace.configMapRef: line 2: rps is negative" in body["status"]["message"]


def test_a_spec_cannot_name_its_own_source(kube: FakeKube) -> None:
    """resolvedFrom is Surge's: a spec that sets it beside inline points would make status
    and results name a source the curve never came from."""
    points = [{"tSeconds": 0, "rps": 1}, {"tSeconds": 10, "rps": 2}]
    forged = "trace from Prometheus up [2026-12-01, 2026-12-02] step 60s"
    body = _body(_trace({"points": points, "resolvedFrom": forged}))
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed"
    assert "spec.load.trace.resolvedFrom" in body["status"]["message"]
    assert "loadSource" not in body["status"] or body["status"]["loadSource"] is None


def _admit(
    body: dict[str, Any], kube: FakeKube, settings: Settings, prometheus: Any = None
) -> admission.Admitted:
    return admission.accepted_spec(body, kube, settings, prometheus=prometheus)  # type: ignore[arg-type]


def _settings(**policy: Any) -> Settings:
    return Settings(
        worker_metrics_port=9464,
        start_delay_s=2.0,
        prometheus_url="http://prom:9",
        policy=ClusterPolicy(prometheus_urls=["http://prom:9"], **policy),
    )


def _prom_body(last: str = "20m") -> dict[str, Any]:
    trace = {"prometheus": {"query": QUERY, "last": last, "step": "1m"}, "timeScale": 10}
    return _body(_trace(trace))


def _matrix(now: datetime) -> FakeQuerier:
    end = now.timestamp() // 60 * 60
    values = [[end - 1200 + 60 * i, str(5 + i)] for i in range(21)]
    return FakeQuerier([{"metric": {}, "values": values}])


def test_a_query_needs_the_admins_leave_for_custom_promql(kube: FakeKube) -> None:
    q = _matrix(T0)
    with pytest.raises(PolicyViolation, match="allowCustomQueries"):
        _admit(_prom_body(), kube, _settings(), prometheus=lambda *a, **k: q)
    assert q.calls == []  # refused before a query is sent


def test_a_query_is_resolved_and_the_caps_see_its_peak(kube: FakeKube) -> None:
    q = _matrix(datetime.now(UTC))
    settings = _settings(allow_custom_queries=True)
    got = _admit(_prom_body(), kube, settings, prometheus=lambda *a, **k: q)
    trace = got.spec.load.trace
    assert trace is not None and trace.points is not None and len(trace.points) == 21
    assert trace.source.startswith(f"trace from Prometheus {QUERY} [")
    assert "step 1m, 21 points, timeScale 10" in trace.source
    assert got.spec.load.duration_s == 120.0 and got.spec.load.peak == 25.0
    capped = _settings(allow_custom_queries=True, caps=Caps(max_rate=20))
    with pytest.raises(PolicyViolation, match=r"spec\.load\.trace.*peak 25 req/s is above the cap"):
        _admit(_prom_body(), kube, capped, prometheus=lambda *a, **k: q)


def test_a_prometheus_outage_is_retried_not_an_invalid_spec(kube: FakeKube) -> None:
    """No answer from Prometheus at admission is a transient error (the lifecycle retries it
    with backoff, in the Retrying condition), not InvalidSpec for a spec that is fine."""
    q = FakeQuerier(requests.ConnectionError("connection refused"))
    settings = _settings(allow_custom_queries=True)
    with pytest.raises(KubeError) as err:
        _admit(_prom_body(), kube, settings, prometheus=lambda *a, **k: q)
    assert not err.value.permanent and "connection refused" in str(err.value)
    assert "spec.load.trace.prometheus" in str(err.value)


def test_no_prometheus_is_refused_naming_the_field(kube: FakeKube) -> None:
    settings = Settings(
        worker_metrics_port=9464,
        start_delay_s=2.0,
        policy=ClusterPolicy(allow_custom_queries=True),
    )
    with pytest.raises(ManifestError, match=r"spec\.load\.trace\.prometheus: no Prom"):
        _admit(_prom_body(), kube, settings)


def _experiment(load: dict[str, Any]) -> Any:
    doc = yaml.safe_load(EXPERIMENT.read_text())
    doc["spec"]["loadTest"]["load"] = load
    return ScalingExperimentSpec.model_validate(doc["spec"]), doc


def test_every_variant_of_an_experiment_replays_one_window() -> None:
    """`last` ends when each run is admitted, so the children carry the window it meant when
    the experiment was created: every variant and repetition queries the same range."""
    load = {
        "model": "trace",
        "trace": {"prometheus": {"query": QUERY, "last": "1h", "step": "1m"}, "timeScale": 6},
    }
    spec, _ = _experiment(load)
    owner = {
        "metadata": {
            "name": "exp",
            "namespace": NS,
            "uid": "u-9",
            "creationTimestamp": "2026-12-06T01:00:30Z",
        }
    }
    windows = set()
    for variant, rep in runs_of(spec):
        child = child_loadtest(owner, spec, variant, rep)
        query = child["spec"]["load"]["trace"]["prometheus"]
        assert "last" not in query
        windows.add((query["start"], query["end"]))
    assert windows == {("2026-12-06T00:00:00Z", "2026-12-06T01:00:00Z")}
    points = [{"tSeconds": 0, "rps": 1}, {"tSeconds": 60, "rps": 3}]
    inline = {"model": "trace", "trace": {"points": points}}
    spec, _ = _experiment(inline)
    child = child_loadtest(owner, spec, spec.variants[0], 0)
    assert child["spec"]["load"]["trace"]["points"][1] == {"tSeconds": 60.0, "rps": 3.0}
