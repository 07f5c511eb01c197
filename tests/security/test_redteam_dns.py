"""Red team: names that never answer fill the operator's two DNS threads for every tenant."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from surge.operator.policy import facts

RELEASE = threading.Event()


def _getaddrinfo(host: str, *_: Any, **__: Any) -> list[Any]:
    if host.startswith("slow"):
        RELEASE.wait(3)  # bounded: the tenant's DNS server that never answers
        raise socket.gaierror("timed out")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 0))]


def test_a_hung_lookup_does_not_starve_other_tenants_lookups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Attack: with a hosts glob covering a domain the tenant's DNS answers for, LoadTests
    naming slow-1.x, slow-2.x (never answered) hold both resolver threads; every other
    tenant's admission and readiness probe then reads "does not resolve"."""
    monkeypatch.setattr(socket, "getaddrinfo", _getaddrinfo)
    monkeypatch.setattr(facts, "RESOLVE_TIMEOUT_S", 0.2)
    RELEASE.clear()
    try:
        assert facts.resolve("slow-1.tenant.example") is None
        assert facts.resolve("slow-2.tenant.example") is None
        assert facts.resolve("good.other-team.example") == ("10.0.0.1",)
    finally:
        RELEASE.set()
