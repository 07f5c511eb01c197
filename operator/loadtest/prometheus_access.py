"""Where a run's cluster metrics come from: the Prometheus URL, auth headers read from Secrets."""

from __future__ import annotations

import base64
from typing import Any

from surge.api.loadtest import LoadTestSpec
from surge.api.results import RunResults
from surge.loadgen.analysis import ClusterReader
from surge.operator.kube.client import Kube, KubeError
from surge.operator.settings import Settings
from surge.results import ClusterMetrics, collect_cluster_metrics
from surge.results.prometheus import RangeQuerier


def cluster_reader(
    spec: LoadTestSpec,
    *,
    namespace: str,
    loadtest: str,
    run_id: str,
    kube: Kube,
    settings: Settings,
) -> ClusterReader | None:
    """Reads Prometheus over the results' window; None when no Prometheus is configured."""
    url = spec.prometheus.url or settings.prometheus_url
    if url is None:
        return None
    querier: RangeQuerier | None = None
    try:
        headers = prometheus_headers(spec, namespace, kube)
    except KubeError as err:
        if not err.permanent:
            raise  # retried with backoff, within timeouts.analysis
        # The auth Secret cannot be read (403 under the chart's default RBAC, 404): the
        # run goes on without cluster metrics, each query naming why (MetricsAvailable).
        headers, querier = {}, _Refused(f"Prometheus auth unusable: {err}")

    def read(results: RunResults) -> ClusterMetrics:
        window = results.window
        return collect_cluster_metrics(
            spec,
            namespace=namespace,
            loadtest=loadtest,
            run_id=run_id,
            window_start=window.start,
            window_end=window.end,
            prometheus_url=url,
            headers=headers,
            settings_queries=settings.queries,
            querier=querier,
        )

    return read


class _Refused:
    """A Prometheus that answers every query with the same reason (no request is sent)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def custom_query_range(self, *_: Any, **__: Any) -> Any:
        raise PermissionError(self.reason)


def prometheus_headers(spec: LoadTestSpec, namespace: str, kube: Kube) -> dict[str, str]:
    """The auth header spec.prometheus.auth names. A Secret or key that is missing or empty
    is a permanent KubeError naming it (the run goes on without cluster metrics and says
    why), never a query sent without the credentials the spec asked for."""
    auth = spec.prometheus.auth
    if auth is None:
        return {}
    ref = auth.bearer_token_secret_ref or auth.basic_auth_secret_ref
    if ref is None:
        return {}
    value = kube.secret_value(namespace, ref.name, ref.key)
    if not value:
        raise KubeError(
            f"read Secret {namespace}/{ref.name}",
            404,
            f"no Secret {ref.name} with a non-empty key {ref.key!r}: create it, or fix "
            "spec.prometheus.auth",
        )
    if auth.bearer_token_secret_ref is not None:
        return {"Authorization": f"Bearer {value}"}
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}
