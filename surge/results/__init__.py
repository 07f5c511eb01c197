"""Results beyond the load generator: cluster metrics from Prometheus, and reports.

- queries: PromQL templates (defaults, overrides, rendering). Pure.
- timeline: step-function math on sampled series. Pure.
- cluster: samples -> results.cluster and the flat replicas/cpu/gpu metrics. Pure.
- prometheus: the edge; range queries bounded to the measured window, errors as no-data.
- report, plots: results -> Markdown/HTML/JSON and PNG plots (matplotlib, optional).
"""

from surge.results.cluster import (
    CLUSTER_METRICS,
    ClusterMetrics,
    QueryOutcome,
    build_cluster,
    metrics_available_condition,
)
from surge.results.prometheus import collect_cluster_metrics, connect, fetch_range
from surge.results.queries import (
    DEFAULT_QUERIES,
    QueryTemplateError,
    QueryVars,
    check_templates,
    render_queries,
)
from surge.results.report import FORMATS, ReportError, render_report
from surge.results.timeline import Window, measured_window

__all__ = [
    "CLUSTER_METRICS",
    "DEFAULT_QUERIES",
    "FORMATS",
    "ClusterMetrics",
    "QueryOutcome",
    "QueryTemplateError",
    "QueryVars",
    "ReportError",
    "Window",
    "build_cluster",
    "check_templates",
    "collect_cluster_metrics",
    "connect",
    "fetch_range",
    "measured_window",
    "metrics_available_condition",
    "render_queries",
    "render_report",
]
