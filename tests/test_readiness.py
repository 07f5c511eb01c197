"""Target readiness, shared by the operator and `surge run`: Deployment availability, the
HTTP probe (one bounded GET, never raising), and `surge run`'s bounded wait."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from surge.api.loadtest import LoadTestSpec
from surge.bench import targets
from surge.readiness import deployment_ready, probe, wait_ready


@pytest.mark.parametrize(
    ("status", "ready"),
    [
        ({"readyReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]}, True),
        ({"readyReplicas": 0, "conditions": [{"type": "Available", "status": "True"}]}, False),
        ({"readyReplicas": 2, "conditions": [{"type": "Available", "status": "False"}]}, False),
    ],
)
def test_deployment_ready(status: dict[str, Any], ready: bool) -> None:
    assert deployment_ready({"status": status}, "alice")[0] is ready
    assert deployment_ready(None, "alice") == (False, "Deployment alice not found")


def test_probe_reads_the_status_and_never_raises() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200 if request.url.path == "/ok" else 503)

    t = httpx.MockTransport(handler)
    assert probe("http://alice/ok", 200, transport=t) == (True, "GET http://alice/ok: 200")
    assert probe("http://alice/busy", 200, transport=t) == (
        False,
        "GET http://alice/busy: 503, want 200",
    )
    assert probe("http://alice/down", 200, transport=t) == (
        False,
        "GET http://alice/down: ConnectError",
    )


def test_probe_on_loopback_reuses_one_client() -> None:
    proc, url = targets.start("fast")
    try:
        assert [probe(url + "/", 200)[0] for _ in range(3)] == [True, True, True]
    finally:
        targets.stop(proc)
    assert probe(url + "/", 200, timeout_s=0.5)[0] is False  # gone: refused, no raise


def test_wait_ready_is_bounded_and_says_why() -> None:
    spec = LoadTestSpec.model_validate(
        {
            "target": {
                "url": "http://alice",
                "readiness": {"http": {"path": "/readyz"}, "timeout": "3s"},
            },
            "load": {"model": "constant", "stages": [{"duration": "1s", "target": 1}]},
        }
    )
    now = [0.0]
    calls: list[str] = []

    def never(url: str, expect: int) -> tuple[bool, str]:
        calls.append(url)
        return False, f"GET {url}: 503, want {expect}"

    def sleep(s: float) -> None:
        now[0] += s

    why = wait_ready(spec, clock=lambda: now[0], sleep=sleep, check=never)
    assert why == "target not ready: GET http://alice/readyz: 503, want 200; not ready within 3s"
    assert len(calls) == 13  # at 0, 0.25, ... 3 s: the last look is at the deadline
    assert wait_ready(spec, clock=lambda: 0.0, sleep=sleep, check=lambda u, e: (True, "")) is None
