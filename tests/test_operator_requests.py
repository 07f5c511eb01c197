"""The requests the operator makes itself (#25): the readiness probe and Prometheus queries
go to the address checked, follow no redirect, and put at most a short, clean reason into
status. Real sockets: a server on 127.0.0.1 that answers every request with a redirect to a
listener on 127.0.0.9, which stands for a host outside the policy and must get nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from surge.api.loadtest import LoadTestSpec
from surge.readiness import probe
from surge.results.prometheus import collect_cluster_metrics, connect, fetch_range
from surge.results.timeline import Window

OUTSIDE = "127.0.0.9"


@dataclass
class Seen:
    outside: int = 0
    hosts: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)


@pytest.fixture
def servers() -> Iterator[tuple[str, Seen]]:
    """(base URL of the redirecting server, what each side saw)."""
    seen = Seen()
    outside = socket.socket()
    outside.bind((OUTSIDE, 0))
    outside.listen(8)
    outside.settimeout(0.2)
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            try:
                conn, _ = outside.accept()
            except OSError:
                continue
            seen.outside += 1
            conn.close()

    mode = {"status": 302}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.hosts.append(self.headers.get("Host", ""))
            seen.auth.append(self.headers.get("Authorization", ""))
            body = b"<secret>" + b"x" * 10_000 + b"\n\x1b[31m"
            self.send_response(mode["status"])
            self.send_header("Location", f"http://{OUTSIDE}:{outside.getsockname()[1]}/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threads = [threading.Thread(target=count), threading.Thread(target=http.serve_forever)]
    for t in threads:
        t.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}", seen
        mode["status"] = 500
    finally:
        http.shutdown()
        stop.set()
        for t in threads:
            t.join(timeout=5)
        http.server_close()
        outside.close()


def test_the_probe_follows_no_redirect(servers: tuple[str, Seen]) -> None:
    url, seen = servers
    assert probe(url + "/readyz", 200) == (False, f"GET {url}/readyz: 302, want 200")
    assert len(seen.hosts) == 1 and seen.outside == 0


def test_the_probe_connects_to_the_address_checked_not_to_the_name(
    servers: tuple[str, Seen],
) -> None:
    url, seen = servers
    port = url.rsplit(":", 1)[1]
    # The name does not resolve here at all: only the checked address is connected to.
    name = f"http://alice.rebind.invalid:{port}/readyz"
    ready, note = probe(name, 302, connect_to="127.0.0.1")
    assert ready, note
    assert seen.hosts == [f"alice.rebind.invalid:{port}"] and seen.outside == 0
    assert probe(name, 302)[0] is False  # by the name: it does not resolve


def test_prometheus_follows_no_redirect_and_keeps_the_token_home(
    servers: tuple[str, Seen],
) -> None:
    url, seen = servers
    querier = connect(url, headers={"Authorization": "Bearer admin-token"}, timeout_s=2)
    out = fetch_range(querier, "cpu", "up", Window(1000.0, 1060.0), 15.0)
    assert out.reason == "query failed: PrometheusApiClientException: HTTP 302"
    assert seen.auth == ["Bearer admin-token"] and seen.outside == 0


def test_a_replys_body_never_lands_in_status(servers: tuple[str, Seen]) -> None:
    url, _ = servers
    bad = connect(url + "/x", timeout_s=2)
    out = fetch_range(bad, "cpu", "up", Window(1000.0, 1060.0), 15.0)
    assert out.reason is not None and "secret" not in out.reason and len(out.reason) <= 160


def test_a_url_clients_read_differently_is_never_connected_to() -> None:
    with pytest.raises(ValueError, match="backslash"):
        connect(f"http://{OUTSIDE}:9\\@127.0.0.1:9090")
    ready, note = probe(f"http://{OUTSIDE}:9\\@127.0.0.1:9090/", 200)
    assert not ready and "backslash" in note


def test_an_unusable_prometheus_url_becomes_a_reason_not_a_crash(
    servers: tuple[str, Seen],
) -> None:
    _, seen = servers
    spec = LoadTestSpec.model_validate(
        {
            "target": {"url": "http://127.0.0.1:8080"},
            "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
        }
    )
    out = collect_cluster_metrics(
        spec,
        namespace="ns",
        loadtest="lt",
        run_id="1",
        window_start=1000.0,
        window_end=1060.0,
        prometheus_url=f"http://{OUTSIDE}:9\\@127.0.0.1:9090",  # e.g. the operator's flag
    )
    assert out.no_data and all("backslash" in r for r in out.no_data.values())
    assert seen.outside == 0 and seen.hosts == []
