"""Is the target ready? Deployment availability (from a dict) and an HTTP health check,
shared by the operator (one check per reconcile) and `surge run` (`wait_ready` polls)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from surge.api.loadtest import LoadTestSpec
from surge.api.urls import UrlError, parse_url


def deployment_ready(deployment: dict[str, Any] | None, name: str) -> tuple[bool, str]:
    """Available=True with at least one ready replica."""
    if deployment is None:
        return False, f"Deployment {name} not found"
    status = deployment.get("status") or {}
    available = any(
        c.get("type") == "Available" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    ready = int(status.get("readyReplicas") or 0)
    if available and ready >= 1:
        return True, f"Deployment {name} available with {ready} ready replicas"
    return False, f"Deployment {name} not available ({ready} ready replicas)"


_clients = threading.local()


def _client() -> httpx.Client:
    """One client per thread, made once: building an httpx.Client (its TLS context) costs
    30-70 ms, far more than the probe, and the operator probes every run in flight every
    tick. No connection is kept between probes (a probe is one fresh GET). No proxy from the
    environment (it would resolve the name itself) and no redirect is followed."""
    client: httpx.Client | None = getattr(_clients, "client", None)
    if client is None:
        client = httpx.Client(
            limits=httpx.Limits(max_keepalive_connections=0),
            trust_env=False,
            follow_redirects=False,
        )
        _clients.client = client
    return client


def probe(
    url: str,
    expect_status: int,
    timeout_s: float = 2.0,
    transport: httpx.BaseTransport | None = None,
    *,
    connect_to: str | None = None,
) -> tuple[bool, str]:
    """One bounded GET, no redirect followed; never raises. `connect_to`: the address to
    connect to (the one the policy checked, so a name that resolves elsewhere by now is not
    asked again), sent with the URL's Host and, for https, its name for SNI and the
    certificate. `transport` (tests) gets a client of its own."""
    try:
        parts = parse_url(url, allow_userinfo=True)
    except UrlError as err:
        return False, f"GET refused: {err}"
    shown = parts.text(with_userinfo=False)
    request_url = parts.with_host(connect_to) if connect_to else shown
    sni = {"sni_hostname": parts.host} if connect_to and parts.scheme == "https" else {}
    headers = {"Host": parts.hostport}
    try:
        if transport is not None:
            with httpx.Client(timeout=timeout_s, transport=transport, trust_env=False) as c:
                r = c.get(request_url, headers=headers, extensions=sni, follow_redirects=False)
        else:
            r = _client().get(request_url, headers=headers, extensions=sni, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return False, f"GET {shown}: {type(exc).__name__}"
    if r.status_code == expect_status:
        return True, f"GET {shown}: {r.status_code}"
    return False, f"GET {shown}: {r.status_code}, want {expect_status}"


def wait_ready(
    spec: LoadTestSpec,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    check: Callable[[str, int], tuple[bool, str]] = probe,
) -> str | None:
    """Poll the target's health URL until it answers (bounded by timeouts.targetReady, else
    readiness.timeout): None when ready or when there is nothing to check, else why not.
    `surge run` calls this; the operator polls `probe` once per reconcile instead."""
    url = spec.target.health_url()
    if url is None:
        return None
    http = spec.target.readiness.http
    expect = http.expect_status if http is not None else 200
    timeout_s = spec.timeouts.target_ready or spec.target.readiness.timeout
    deadline = clock() + timeout_s
    while True:
        ready, note = check(url, expect)
        if ready:
            return None
        if clock() >= deadline:
            return f"target not ready: {note}; not ready within {timeout_s:g}s"
        sleep(0.25)
