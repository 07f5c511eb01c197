"""Red team: a query in spec.prometheus.url replaces the operator's PromQL with the tenant's."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from surge.api.loadtest import LoadTestSpec
from surge.api.policy import ClusterPolicy
from surge.operator.policy.rules import Allowed, Facts, Service, loadtest_violations
from surge.results.prometheus import connect

NS = "team-a"
PROM = "http://prom.monitoring:9090"
EVIL = "/api/v1/query_range?query=sum(team_b_secret_series)&x="


def _violations(prom_url: str) -> list[str]:
    raw = {
        "target": {"url": "http://alice:8080"},
        "prometheus": {"url": prom_url},
        "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
    }
    spec = LoadTestSpec.model_validate(raw)
    facts = Facts(services={"alice": Service(cluster_ips=("10.96.0.10",))})
    allowed = Allowed(images=("surge:1",), prometheus_urls=(PROM,))
    return [v.field for v in loadtest_violations(spec, NS, ClusterPolicy(), allowed, facts)]


@pytest.mark.parametrize("suffix", [EVIL, "?query=up", "/?query=up&x=", "/api?a=1"])
def test_a_prometheus_url_with_a_query_is_refused(suffix: str) -> None:
    """Attack: `prometheusUrl: <allowed>/api/v1/query_range?query=<team-b series>&x=` passes
    the pattern (the path is under it); the client appends its path and `query=` after it,
    and Prometheus reads the first `query`: any PromQL into status, past allowCustomQueries."""
    assert _violations(PROM + suffix) == ["spec.prometheus.url"]
    assert _violations(PROM) == [] and _violations(PROM + "/") == []


def test_the_first_query_parameter_is_the_urls() -> None:
    """Why the query is refused: what the client sends for such a URL (a loopback server)."""
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}})
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = connect(f"http://127.0.0.1:{server.server_port}{EVIL}", timeout_s=2)
        end = dt.datetime.now(dt.UTC)
        client.custom_query_range(
            "sum(rate(team_a_requests[1m]))",
            start_time=end - dt.timedelta(minutes=5),
            end_time=end,
            step="15",
        )
    finally:
        server.shutdown()
        server.server_close()
    (path,) = paths
    assert parse_qs(urlsplit(path).query)["query"][0] == "sum(team_b_secret_series)"
