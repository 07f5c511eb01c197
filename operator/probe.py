"""Is the target ready? Deployment availability (from a dict) and an HTTP health check."""

from __future__ import annotations

from typing import Any

import httpx


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


def http_ready(
    url: str,
    expect_status: int,
    timeout_s: float = 2.0,
    transport: httpx.BaseTransport | None = None,
) -> tuple[bool, str]:
    """One bounded GET; never raises."""
    try:
        with httpx.Client(timeout=timeout_s, transport=transport) as c:
            r = c.get(url)
    except httpx.HTTPError as exc:
        return False, f"GET {url}: {type(exc).__name__}"
    if r.status_code == expect_status:
        return True, f"GET {url}: {r.status_code}"
    return False, f"GET {url}: {r.status_code}, want {expect_status}"
