"""PromQL templates for cluster metrics: the defaults, overrides, and rendering. Pure.

A template is PromQL with placeholders `{namespace}`, `{deployment}`, `{pod_regex}`,
`{loadtest}`, `{run}`, `{window}`, `{step}`. A placeholder is a brace pair around a
bare identifier; PromQL's own braces always hold a matcher (`{pod=~"..."}`), so the
two never collide and templates need no escaping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

PLACEHOLDERS: tuple[str, ...] = (
    "namespace",
    "deployment",
    "pod_regex",
    "loadtest",
    "run",
    "window",
    "step",
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Queries that describe the target Deployment; without a deploymentRef they are skipped.
_TARGET_VARS = frozenset({"deployment", "pod_regex"})
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


class QueryTemplateError(ValueError):
    """A template names a placeholder Surge does not fill."""


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


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def merge_templates(*layers: Mapping[str, str]) -> dict[str, str]:
    """Defaults, then the operator's settings, then the LoadTest's spec: the last layer
    wins per name. An empty template switches a query off (e.g. gpu_util without GPUs);
    names beyond the defaults are extra queries, kept as series."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    return {name: t for name, t in merged.items() if t.strip()}


class UnsetPlaceholder(QueryTemplateError):
    """A template needs a value this run does not have (no deploymentRef)."""


@dataclass(frozen=True, slots=True)
class RenderedQueries:
    queries: dict[str, str]
    """Name -> PromQL ready to send."""
    skipped: dict[str, str]
    """Name -> why it was not sent (e.g. no deploymentRef to fill {deployment})."""
    errors: dict[str, str]
    """Name -> the template error (unknown placeholder)."""


def render_template(name: str, template: str, values: Mapping[str, str | None]) -> str:
    """Fill one template. Raises QueryTemplateError naming the query and the placeholder
    (UnsetPlaceholder when a known placeholder has no value)."""
    unknown = sorted(placeholders(template) - set(PLACEHOLDERS))
    if unknown:
        raise QueryTemplateError(
            f"query {name!r} uses unknown placeholder(s) "
            + ", ".join("{" + u + "}" for u in unknown)
            + "; known: "
            + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        )

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None:
            raise UnsetPlaceholder(
                f"query {name!r} needs {{{match.group(1)}}}, which is unset"
                + (" (no target.deploymentRef)" if match.group(1) in _TARGET_VARS else "")
            )
        return value

    return _PLACEHOLDER.sub(fill, template)


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


def check_templates(templates: Mapping[str, str]) -> None:
    """For validation at admission: raises QueryTemplateError for the first template
    with an unknown placeholder."""
    for name, template in templates.items():
        render_template(name, template, dict.fromkeys(PLACEHOLDERS, "x"))
