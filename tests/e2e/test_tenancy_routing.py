"""URLs and headers that would route a run's requests past the policy (#25), on the real
control plane, as a tenant bound only to the chart's edit role.

The admin allows Prometheus at http://127.0.0.1:* and targets at 127.0.0.2 only. A listener
on 127.0.0.9 stands for every host outside the policy (another team's service, the attacker's
server): each attack is refused (at apply, or Failed naming the field) and that listener gets
no connection at all, neither a Prometheus query with the admin's token nor a probe.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.operator_support import Operator, condition, wait_phase
from tests.e2e.test_tenancy import (  # noqa: F401  (fixtures)
    ALICE_HOST,
    POLICY,
    _create,
    _lt,
    _nothing_created,
    admin_objects,
    alice_at,
    tenant,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

OUTSIDE = "127.0.0.9"


@pytest.fixture
def outside() -> Iterator[tuple[int, list[str]]]:
    """(port, peers that connected) of a listener on 127.0.0.9."""
    sock = socket.socket()
    sock.bind((OUTSIDE, 0))
    sock.listen(16)
    sock.settimeout(0.2)
    peers: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = sock.accept()
            except OSError:
                continue
            peers.append(str(peer))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1], peers
    stop.set()
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def routing_operator(namespace: str, tmp_path: Path) -> Iterator[Operator]:
    path = tmp_path / "policy.yaml"
    caps = {**POLICY["caps"], "maxConcurrentRunsPerNamespace": 10}  # the attacks run at once
    policy = {**POLICY, "caps": caps, "prometheusUrls": ["http://127.0.0.1:*"]}
    path.write_text(yaml.safe_dump(policy))
    op = Operator(namespace, tmp_path / "operator.log", env={"SURGE_POLICY_FILE": str(path)})
    op.start()
    yield op
    op.stop()


def _refused_status(api: client.ApiClient, ns: str, obj: dict[str, Any]) -> int | None:
    """None when created, else the API server's status for refusing it at apply."""
    try:
        _create(api, ns, obj)
    except ApiException as exc:
        return int(exc.status or 0)
    return None


def test_urls_and_headers_that_route_elsewhere_reach_nothing_outside_the_policy(
    api_client: client.ApiClient,
    namespace: str,
    tenant: client.ApiClient,  # noqa: F811
    routing_operator: Operator,
    alice_at: str,  # noqa: F811
    outside: tuple[int, list[str]],
) -> None:
    ns, op = namespace, routing_operator
    lport, peers = outside
    port = alice_at.rsplit(":", 1)[1]
    core: Any = client.CoreV1Api(api_client)
    core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": "prom", "labels": {"surge.dev/usable": "true"}},
            "stringData": {"token": "admin-token"},
        },
    )
    auth = {"bearerTokenSecretRef": {"name": "prom", "key": "token"}}
    elsewhere = f"{OUTSIDE}:{lport}"
    attacks: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
        (
            "prom-backslash",
            {"prometheus": {"url": f"http://{elsewhere}\\@127.0.0.1:9090/", "auth": auth}},
            ("spec.prometheus.url", "backslash"),
        ),
        (
            "prom-userinfo",
            {"prometheus": {"url": f"http://{elsewhere}@127.0.0.1:9090/", "auth": auth}},
            ("spec.prometheus.url", "user info"),
        ),
        (
            "probe-backslash",
            {
                "target.readiness": {
                    "http": {"url": f"http://{elsewhere}\\@{ALICE_HOST}:{port}/readyz"}
                }
            },
            ("spec.target.readiness.http", "backslash"),
        ),
        ("host", {"scenario.headers": {"Host": elsewhere}}, ("spec.scenario.headers.Host",)),
        (
            "xfh",
            {"target.headers": [{"name": "x-forwarded-host", "value": elsewhere}]},
            ("spec.target.headers[0]", "x-forwarded-host"),
        ),
    ]
    created = []
    for name, over, needles in attacks:
        refused = _refused_status(tenant, ns, _lt(name, alice_at, **over))
        assert refused in (None, 400, 403, 422), refused  # refused at apply, or created
        if refused is None:
            created.append((name, needles))
    ended = {
        name: wait_phase(api_client, ns, name, {"Failed", "Succeeded"}, op, timeout_s=120)
        for name, _ in created
    }
    time.sleep(2)  # a request on its way would have connected by now
    assert peers == [], f"{len(peers)} connection(s) reached {OUTSIDE}"
    for name, needles in created:
        obj = ended[name]
        status = obj["status"]
        assert status["phase"] == "Failed", status
        assert condition(obj, "Completed")["reason"] in ("InvalidSpec", "PolicyViolation")
        for needle in needles:
            assert needle in status["message"], (needle, status["message"])
        _nothing_created(api_client, ns, name)
