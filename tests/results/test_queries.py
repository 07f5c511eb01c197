"""Query templating: defaults render, overrides win, bad placeholders are named."""

from __future__ import annotations

import pytest

from surge.results.queries import (
    DEFAULT_QUERIES,
    PLACEHOLDERS,
    QueryTemplateError,
    QueryVars,
    check_templates,
    default_pod_regex,
    merge_templates,
    placeholders,
    promql_duration,
    render_queries,
    render_template,
)

VARS = QueryVars(
    namespace="shop",
    loadtest="peak",
    run="7",
    window="60s",
    step="15s",
    deployment="alice",
    pod_regex=default_pod_regex("alice"),
)


@pytest.mark.parametrize("name", sorted(DEFAULT_QUERIES))
def test_every_default_renders_without_leftover_placeholders(name: str) -> None:
    promql = render_template(name, DEFAULT_QUERIES[name], VARS.as_dict())
    assert placeholders(promql) == set()
    assert promql.count("(") == promql.count(")")
    assert promql.count("{") == promql.count("}")
    # Each default is scoped: target queries to the namespace, loadgen ones to the LoadTest.
    assert 'namespace="shop"' in promql
    if name.startswith("loadgen_"):
        assert 'loadtest="peak"' in promql
    else:
        assert "alice" in promql


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("replicas", 'max(kube_deployment_status_replicas{namespace="shop", deployment="alice"})'),
        (
            "cpu",
            'sum(rate(container_cpu_usage_seconds_total{namespace="shop", '
            'pod=~"alice-[a-z0-9]+-[a-z0-9]+", container!="", container!="POD"}[60s]))',
        ),
        (
            "gpu_util",
            'avg(DCGM_FI_DEV_GPU_UTIL{namespace="shop", pod=~"alice-[a-z0-9]+-[a-z0-9]+"})',
        ),
        ("loadgen_in_flight", 'sum(surge_in_flight{namespace="shop", loadtest="peak"})'),
    ],
)
def test_default_query_text(name: str, expected: str) -> None:
    assert render_template(name, DEFAULT_QUERIES[name], VARS.as_dict()) == expected


def test_defaults_cover_the_issue_metrics() -> None:
    text = " ".join(DEFAULT_QUERIES.values())
    for metric in (
        "kube_deployment_status_replicas",
        "kube_horizontalpodautoscaler_status_current_replicas",
        "kube_horizontalpodautoscaler_status_desired_replicas",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "surge_requests_total",
        "surge_in_flight",
        "surge_request_latency_seconds_bucket",
    ):
        assert metric in text


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        # spec (last) beats settings beats defaults
        (({"cpu": "a"}, {"cpu": "b"}, {"cpu": "c"}), {"cpu": "c"}),
        (({"cpu": "a"}, {"cpu": "b"}, {}), {"cpu": "b"}),
        (({"cpu": "a"}, {}, {}), {"cpu": "a"}),
        # "" switches a query off; new names are extra queries
        (({"cpu": "a", "gpu_util": "g"}, {}, {"gpu_util": " "}), {"cpu": "a"}),
        (({"cpu": "a"}, {}, {"queue": "q"}), {"cpu": "a", "queue": "q"}),
    ],
)
def test_merge_templates(layers: tuple[dict[str, str], ...], expected: dict[str, str]) -> None:
    assert merge_templates(*layers) == expected


def test_override_wins_in_rendering() -> None:
    templates = merge_templates(
        DEFAULT_QUERIES, {}, {"replicas": 'max(my_replicas{ns="{namespace}", run="{run}"})'}
    )
    rendered = render_queries(templates, VARS)
    assert rendered.queries["replicas"] == 'max(my_replicas{ns="shop", run="7"})'
    assert rendered.errors == {} and rendered.skipped == {}
    assert set(rendered.queries) == set(DEFAULT_QUERIES)


def test_unknown_placeholder_names_the_query() -> None:
    with pytest.raises(QueryTemplateError) as err:
        render_template("queue", 'sum(q{ns="{namespce}"})', VARS.as_dict())
    assert "'queue'" in str(err.value) and "{namespce}" in str(err.value)
    rendered = render_queries({"queue": 'sum(q{ns="{namespce}"})', "cpu": "up"}, VARS)
    assert rendered.queries == {"cpu": "up"}
    assert "'queue'" in rendered.errors["queue"]
    with pytest.raises(QueryTemplateError, match="'queue'"):
        check_templates({"cpu": "up", "queue": "{nope}"})
    check_templates(DEFAULT_QUERIES)  # the defaults pass admission


def test_promql_matchers_are_not_placeholders() -> None:
    assert placeholders('sum(x{namespace="{namespace}"}) by (le)') == {"namespace"}
    assert placeholders('x{a="b"}') == set()


def test_without_deployment_target_queries_are_skipped_with_reason() -> None:
    no_target = QueryVars("shop", "peak", "7", "60s", "15s")
    rendered = render_queries(DEFAULT_QUERIES, no_target)
    assert sorted(rendered.queries) == sorted(n for n in DEFAULT_QUERIES if "loadgen" in n)
    assert "deploymentRef" in rendered.skipped["replicas"]
    assert set(rendered.skipped) | set(rendered.queries) == set(DEFAULT_QUERIES)


@pytest.mark.parametrize(
    ("deployment", "regex"),
    [("alice", "alice-[a-z0-9]+-[a-z0-9]+"), ("a.b", r"a\\.b-[a-z0-9]+-[a-z0-9]+")],
)
def test_default_pod_regex(deployment: str, regex: str) -> None:
    assert default_pod_regex(deployment) == regex


@pytest.mark.parametrize(
    ("seconds", "text"), [(60.0, "60s"), (15, "15s"), (0.5, "500ms"), (1.25, "1250ms")]
)
def test_promql_duration(seconds: float, text: str) -> None:
    assert promql_duration(seconds) == text


def test_promql_duration_refuses_zero() -> None:
    with pytest.raises(ValueError, match="positive"):
        promql_duration(0)


def test_placeholder_list_matches_the_api_doc() -> None:
    from surge.api.loadtest import Prometheus

    # What users read: the field descriptions the CRD schema and docs carry.
    doc = " ".join(
        [Prometheus.__doc__ or "", *(f.description or "" for f in Prometheus.model_fields.values())]
    )
    for p in PLACEHOLDERS:
        assert "{" + p + "}" in doc, p


def test_public_surface() -> None:
    import surge.results as results

    assert set(results.__all__) == {
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
    }
    for name in results.__all__:
        assert getattr(results, name) is not None
