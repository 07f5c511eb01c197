"""PromQL templates for cluster metrics: the defaults, overrides, and rendering. Pure.

Placeholders and the check of one template live in surge.api.promql, since LoadTest
validation needs them without importing surge.results; they are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from surge.api.promql import (
    PLACEHOLDERS,
    QueryTemplateError,
    UnsetPlaceholder,
    check_templates,
    placeholders,
    render_template,
)

__all__ = [
    "DEFAULT_QUERIES",
    "PLACEHOLDERS",
    "QueryTemplateError",
    "QueryVars",
    "RenderedQueries",
    "UnsetPlaceholder",
    "check_templates",
    "default_pod_regex",
    "merge_templates",
    "placeholders",
    "promql_duration",
    "render_queries",
    "render_template",
]

_CONTAINERS = 'container!="", container!="POD"'  # cAdvisor's pod-level and pause rows


def _hpa(field: str) -> str:
    # The HPA's name is free; kube_horizontalpodautoscaler_info (value 1) ties it to its target.
    return (
        f"max(kube_horizontalpodautoscaler_status_{field}"
        '{namespace="{namespace}"} * on(namespace, horizontalpodautoscaler) group_left() '
        'kube_horizontalpodautoscaler_info{namespace="{namespace}", '
        'scaletargetref_name="{deployment}"})'
    )


DEFAULT_QUERIES: dict[str, str] = {
    # kube-state-metrics
    "replicas": 'max(kube_deployment_status_replicas{namespace="{namespace}", '
    'deployment="{deployment}"})',
    "hpa_current_replicas": _hpa("current_replicas"),
    "hpa_desired_replicas": _hpa("desired_replicas"),
    # cAdvisor
    "cpu": "sum(rate(container_cpu_usage_seconds_total"
    '{namespace="{namespace}", pod=~"{pod_regex}", ' + _CONTAINERS + "}[{window}]))",
    "memory": "sum(container_memory_working_set_bytes"
    '{namespace="{namespace}", pod=~"{pod_regex}", ' + _CONTAINERS + "})",
    # dcgm-exporter (with its Kubernetes pod mapping on)
    "gpu_util": 'avg(DCGM_FI_DEV_GPU_UTIL{namespace="{namespace}", pod=~"{pod_regex}"})',
    "gpu_memory": 'sum(DCGM_FI_DEV_FB_USED{namespace="{namespace}", pod=~"{pod_regex}"})',
    # the loadgen workers' own series (surge/loadgen/recorder.py)
    "loadgen_rps": 'sum(rate(surge_requests_total{namespace="{namespace}", loadtest="{loadtest}"}'
    "[{window}]))",
    "loadgen_errors_rps": "sum(rate(surge_requests_total"
    '{namespace="{namespace}", loadtest="{loadtest}", outcome!="ok"}[{window}]))',
    "loadgen_in_flight": 'sum(surge_in_flight{namespace="{namespace}", loadtest="{loadtest}"})',
    "loadgen_latency_p95": "histogram_quantile(0.95, sum by (le) (rate("
    'surge_request_latency_seconds_bucket{namespace="{namespace}", loadtest="{loadtest}"}'
    "[{window}])))",
}
"""Query name -> template. Units: replicas (count), cpu (cores), memory (bytes),
gpu_util (percent), gpu_memory (MiB), loadgen_* (per second, count, seconds)."""


@dataclass(frozen=True, slots=True)
class QueryVars:
    """What a template may refer to. `window` and `step` are PromQL durations ("60s")."""

    namespace: str
    loadtest: str
    run: str
    window: str
    step: str
    deployment: str | None = None
    pod_regex: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in PLACEHOLDERS}


def default_pod_regex(deployment: str) -> str:
    """Pods of a Deployment are named <deployment>-<replicaset hash>-<pod suffix>.

    The dots a Deployment name may hold are escaped for the regex and again for the
    PromQL string literal the regex sits in."""
    return deployment.replace(".", r"\\.") + "-[a-z0-9]+-[a-z0-9]+"


def promql_duration(seconds: float) -> str:
    """60.0 -> '60s', 0.5 -> '500ms': PromQL durations take integers only."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ValueError(f"a PromQL duration must be positive, not {seconds!r}s")
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def merge_templates(*layers: Mapping[str, str]) -> dict[str, str]:
    """Defaults, then the operator's settings, then the LoadTest's spec: the last layer
    wins per name. An empty template switches a query off (e.g. gpu_util without GPUs);
    names beyond the defaults are extra queries, kept as series."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    return {name: t for name, t in merged.items() if t.strip()}


@dataclass(frozen=True, slots=True)
class RenderedQueries:
    queries: dict[str, str]
    """Name -> PromQL ready to send."""
    skipped: dict[str, str]
    """Name -> why it was not sent (e.g. no deploymentRef to fill {deployment})."""
    errors: dict[str, str]
    """Name -> the template error (unknown placeholder)."""


def render_queries(templates: Mapping[str, str], qvars: QueryVars) -> RenderedQueries:
    """Render every template; never raises. Target queries are skipped, with the reason,
    when the LoadTest names no Deployment; bad templates land in `errors`."""
    values = qvars.as_dict()
    queries: dict[str, str] = {}
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name, template in templates.items():
        try:
            queries[name] = render_template(name, template, values)
        except UnsetPlaceholder as exc:
            skipped[name] = str(exc)
        except QueryTemplateError as exc:
            errors[name] = str(exc)
    return RenderedQueries(queries, skipped, errors)
