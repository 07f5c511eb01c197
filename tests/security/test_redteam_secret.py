"""Red team: a labelled Prometheus auth Secret that is not UTF-8 crashes the reconcile."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from surge.api.loadtest import LoadTestSpec
from surge.operator.kube.client import Kube
from surge.operator.kube.errors import KubeError
from surge.operator.loadtest.prometheus_access import prometheus_headers


class OneSecret(Kube):
    """The real Kube, its reads answered by one Secret (no API server)."""

    def __init__(self, data: bytes | None) -> None:
        super().__init__()
        self.data = data

    def _read(self, action: str, read: Any, *args: Any) -> dict[str, Any] | None:
        if self.data is None:
            return None  # 404
        return {"data": {"token": base64.b64encode(self.data).decode()}}


def _spec(auth: dict[str, Any]) -> LoadTestSpec:
    return LoadTestSpec.model_validate(
        {
            "target": {"url": "http://alice:8080"},
            "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
            "prometheus": {"auth": auth},
        }
    )


@pytest.mark.parametrize("data", [None, b""])
@pytest.mark.parametrize("kind", ["bearerTokenSecretRef", "basicAuthSecretRef"])
def test_a_missing_or_empty_auth_secret_is_named_not_dropped(kind: str, data: bytes | None) -> None:
    """A Secret that is missing (or whose key is empty) sent the queries with no
    Authorization header at all, silently; now it is a permanent error naming the Secret."""
    with pytest.raises(KubeError) as err:
        prometheus_headers(
            _spec({kind: {"name": "tok", "key": "token"}}), "team-a", OneSecret(data)
        )
    assert err.value.permanent
    assert "tok" in str(err.value) and "token" in str(err.value)


def test_basic_auth_is_encoded() -> None:
    spec = _spec({"basicAuthSecretRef": {"name": "tok", "key": "token"}})
    headers = prometheus_headers(spec, "team-a", OneSecret(b"u:p"))
    assert headers == {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}


def test_a_secret_that_is_not_utf8_is_an_unusable_secret_not_a_crash() -> None:
    """Attack: the tenant's own labelled Secret holds bytes 0xff 0xfe as its bearer token;
    spec.prometheus.auth names it, and every reconcile of the run raises."""
    spec = LoadTestSpec.model_validate(
        {
            "target": {"url": "http://alice:8080"},
            "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
            "prometheus": {"auth": {"bearerTokenSecretRef": {"name": "tok", "key": "token"}}},
        }
    )
    with pytest.raises(KubeError) as err:
        prometheus_headers(spec, "team-a", OneSecret(b"\xff\xfe"))
    assert err.value.permanent
