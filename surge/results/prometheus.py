"""The edge to Prometheus: range queries bounded to the measured window.

No exception escapes: a failed or empty query becomes a QueryOutcome with its reason,
which the operator turns into the MetricsAvailable condition. Never a zero, never a pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from surge.api.loadtest import LoadTestSpec
from surge.api.urls import parse_url
from surge.results.cluster import MAX_STORED_POINTS, ClusterMetrics, QueryOutcome, build_cluster
from surge.results.queries import (
    DEFAULT_QUERIES,
    QueryVars,
    default_pod_regex,
    merge_templates,
    promql_duration,
    render_queries,
)
from surge.results.timeline import Sample, Window, query_step

_REASON_MAX = 160


class RangeQuerier(Protocol):
    """What Surge uses of prometheus_api_client.PrometheusConnect (injectable in tests)."""

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]: ...


def connect(
    url: str, *, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0
) -> RangeQuerier:
    """A PrometheusConnect with a request timeout and one retry (bounded: never hangs), built
    from the URL's checked parts (surge.api.urls: what the policy approved is where requests
    connects), with no redirect followed and no proxy or .netrc from the environment: the
    Authorization header goes to that host only."""
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    checked = parse_url(url, allow_userinfo=True).text()  # user info: the admin's own URL
    retry = Retry(total=1, backoff_factor=0.5, status_forcelist=[502, 503, 504], redirect=0)
    client: RangeQuerier = PrometheusConnect(
        url=checked.rstrip("/"),
        headers=dict(headers or {}),
        retry=retry,
        timeout=timeout_s,
        session=_no_redirects_session(),
    )
    return client


def _no_redirects_session() -> Any:
    import requests

    class NoRedirects(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs["allow_redirects"] = False  # a 3xx is an answer, not somewhere else to go
            return super().request(*args, **kwargs)

    session = NoRedirects()
    session.trust_env = False
    return session


_STATUS = re.compile(r"HTTP Status Code (\d{3})")


def failure_reason(exc: BaseException) -> str:
    """A short reason for status: the status code of a refused query (never the reply's
    body, which any server at the URL writes), else the error's type and first line,
    printable ASCII only, at most _REASON_MAX characters."""
    text = str(exc)
    status = _STATUS.search(text)
    if status:
        return f"query failed: {type(exc).__name__}: HTTP {status.group(1)}"
    line = text.splitlines()[0] if text else ""
    clean = "".join(c if " " <= c <= "~" else "?" for c in line)
    return f"query failed: {type(exc).__name__}: {clean}"[:_REASON_MAX]


class _Unusable:
    """A Prometheus no request is sent to: every query fails with the same reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def custom_query_range(self, *_: Any, **__: Any) -> list[dict[str, Any]]:
        raise ValueError(self.reason)


def parse_range_result(result: Any) -> tuple[list[Sample], str | None]:
    """(samples, reason) from a query_range `result`: one series expected. NaN and
    infinite points (e.g. histogram_quantile without traffic) are dropped."""
    if not isinstance(result, list) or not result:
        return [], "no data"
    if len(result) > 1:
        return [], (
            f"returned {len(result)} series, expected one; aggregate it, e.g. sum(...) or max(...)"
        )
    samples: list[Sample] = []
    for point in result[0].get("values", []):
        t, v = float(point[0]), float(point[1])
        if math.isfinite(v):
            samples.append((t, v))
    return (samples, None) if samples else ([], "no data (only NaN points)")


def fetch_range(
    querier: RangeQuerier, name: str, promql: str, window: Window, step_s: float
) -> QueryOutcome:
    """One range query over [window.start, window.end]; errors become the reason."""
    try:
        result = querier.custom_query_range(
            promql,
            start_time=datetime.fromtimestamp(window.start, UTC),
            end_time=datetime.fromtimestamp(window.end, UTC),
            step=f"{step_s:g}",
            # The client rounds start/end to whole seconds; these params win over its own.
            params={"start": f"{window.start:.3f}", "end": f"{window.end:.3f}"},
        )
        samples, reason = parse_range_result(result)
    except Exception as exc:  # the edge: any failure is a no-data reason, never a crash
        return QueryOutcome(name, promql, [], failure_reason(exc))
    return QueryOutcome(name, promql, samples, reason)


def default_rate_window_s(step_s: float) -> float:
    """rate() needs at least two scrapes inside its range: 60 s covers 30 s scrapes."""
    return max(60.0, 4 * step_s)


def collect_cluster_metrics(
    spec: LoadTestSpec,
    *,
    namespace: str,
    loadtest: str,
    run_id: str,
    window_start: float,
    window_end: float,
    prometheus_url: str | None = None,
    headers: Mapping[str, str] | None = None,
    settings_queries: Mapping[str, str] | None = None,
    querier: RangeQuerier | None = None,
    rate_window_s: float | None = None,
    max_points: int = MAX_STORED_POINTS,
) -> ClusterMetrics:
    """Run every cluster query over the measured window (epoch seconds) and build the
    `cluster` section and flat metrics.

    Templates: DEFAULT_QUERIES, then `settings_queries` (the operator's), then
    spec.prometheus.queries; the last wins per name, "" switches one off. Pass either
    `prometheus_url` (+ `headers`, e.g. Authorization) or a `querier`. Never raises
    for Prometheus errors, empty answers or bad templates: each lands in `.no_data`
    with its reason. Raises ValueError only when there is neither a URL nor a querier."""
    window = Window(window_start, window_end)
    step_s = query_step(window, spec.prometheus.step)
    target = spec.target.deployment_ref
    deployment = target.name if target else None
    qvars = QueryVars(
        namespace=(target.namespace if target and target.namespace else namespace),
        loadtest=loadtest,
        run=run_id,
        window=promql_duration(rate_window_s or default_rate_window_s(step_s)),
        step=promql_duration(step_s),
        deployment=deployment,
        pod_regex=default_pod_regex(deployment) if deployment else None,
    )
    templates = merge_templates(DEFAULT_QUERIES, settings_queries or {}, spec.prometheus.queries)
    if querier is None:
        url = prometheus_url or spec.prometheus.url
        if url is None:
            raise ValueError("no Prometheus: pass prometheus_url or set spec.prometheus.url")
        try:
            querier = connect(url, headers=headers)
        except ValueError as exc:  # a URL no client may be trusted to read alike
            querier = _Unusable(f"Prometheus URL unusable: {exc}"[:_REASON_MAX])
    rendered = render_queries(templates, qvars)
    outcomes = [
        QueryOutcome(name, templates[name], [], err) for name, err in rendered.errors.items()
    ]
    outcomes += [
        fetch_range(querier, name, promql, window, step_s)
        for name, promql in rendered.queries.items()
    ]
    return build_cluster(
        outcomes, window, step_s=step_s, skipped=rendered.skipped, max_points=max_points
    )
