"""The edge of a trace: read its curve from a ConfigMap or Prometheus into inline points.

Called once per run, by the operator at admission (operator/loadtest/admission.py) and by
`surge run`, `surge simulate` locally, so the plan every worker runs carries the curve
itself. The reading is injected (a ConfigMap reader, a Prometheus client); the checking is
surge.loadgen.trace's. The resolved spec is validated again (its length and peak against
warmup and the safety caps): ManifestError names the field.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from surge.api.loadtest import LoadTestSpec
from surge.api.manifests import FieldError, ManifestError, parse_spec
from surge.loadgen.trace import (
    TraceError,
    points_from_csv,
    points_from_matrix,
    prometheus_origin,
    query_window,
    resolved,
)
from surge.results.prometheus import RangeQuerier, connect

ConfigMapReader = Callable[[str, str], str]
"""(name, key) -> the key's text; raises TraceError (or PolicyViolation) when it cannot."""

FIELD = "spec.load.trace"
QUERY_TIMEOUT_S = 30.0


class TraceUnavailable(TraceError):
    """Prometheus gave no answer (connection refused or reset, timeout, 429 or 5xx): the
    query may work later, so the operator retries it within the phase's deadline instead
    of refusing the spec."""


def _unavailable(exc: Exception) -> bool:
    import requests
    from prometheus_api_client.exceptions import PrometheusApiClientException

    if isinstance(
        exc,
        ConnectionError
        | TimeoutError
        | requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.RetryError,
    ):
        return True
    if isinstance(exc, PrometheusApiClientException):
        # The client's only signal of the status: "HTTP Status Code 503 (b'...')".
        words = str(exc).split()
        code = words[3] if words[:3] == ["HTTP", "Status", "Code"] and len(words) > 3 else ""
        return code == "429" or (len(code) == 3 and code.startswith("5"))
    return False


def resolve_trace(
    spec: LoadTestSpec,
    *,
    read_configmap: ConfigMapReader | None = None,
    querier: RangeQuerier | None = None,
    now: float | None = None,
) -> LoadTestSpec:
    """The spec with its trace's curve inline (unchanged when it has none or it already is).
    Raises TraceError for a source it cannot read or a curve it cannot replay, ManifestError
    when the resolved load breaks the spec's own rules (e.g. it peaks above safety.maxRate)."""
    trace = spec.load.trace
    if trace is None or trace.resolved:
        return spec
    if trace.config_map_ref is not None:
        ref, where = trace.config_map_ref, f"{FIELD}.configMapRef"
        if read_configmap is None:
            raise TraceError(where, "local runs cannot read ConfigMaps; give the points inline")
        points = points_from_csv(read_configmap(ref.name, ref.key), where)
        origin = f"ConfigMap {ref.name} key {ref.key}"
    else:
        q, where = trace.prometheus, f"{FIELD}.prometheus"
        assert q is not None
        if querier is None:
            raise TraceError(where, "no Prometheus: set spec.prometheus.url")
        start, end = query_window(q, time.time() if now is None else now)
        try:
            result = querier.custom_query_range(
                q.query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{q.step:g}",
                params={"start": f"{start:.3f}", "end": f"{end:.3f}"},
            )
        except Exception as exc:  # the edge: any failure is named; only no answer is retried
            kind = TraceUnavailable if _unavailable(exc) else TraceError
            raise kind(where, f"the query failed: {type(exc).__name__}: {exc}") from None
        points = points_from_matrix(result, start, end, q.step, where)
        origin = prometheus_origin(q, start, end)
    load = spec.load.model_copy(update={"trace": resolved(trace, points, origin)})
    return validated(spec.model_copy(update={"load": load}))


def validated(spec: LoadTestSpec) -> LoadTestSpec:
    """The spec checked again from its wire form (raises ManifestError naming the field)."""
    checked: LoadTestSpec = parse_spec("LoadTest", spec.wire())
    return checked


def resolve_locally(spec: LoadTestSpec, source: str = "") -> LoadTestSpec:
    """`surge run` / `surge simulate`: a Prometheus curve read from spec.prometheus.url (no
    auth Secrets locally); a ConfigMap is refused. Raises ManifestError naming the field."""
    trace = spec.load.trace
    if trace is None or trace.resolved:
        return spec
    url = spec.prometheus.url
    querier = connect(url, timeout_s=QUERY_TIMEOUT_S) if url else None
    try:
        return resolve_trace(spec, querier=querier)
    except TraceError as exc:
        raise ManifestError([FieldError(exc.field, exc.message)], source) from None
