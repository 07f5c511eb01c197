"""Bounded specs (#25): every list, string, number and free-form value has a bound, and what
the bound counts is computed, never enumerated (a sweep's steps by formula)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surge.api.bounds import MAX_SWEEP_STEPS, tree_problem, tree_shape
from surge.api.crd import experiment_crd, loadtest_crd
from surge.api.manifests import ManifestError, parse_spec
from surge.api.sweep import Sweep, geometric_steps

LT: dict[str, Any] = {
    "target": {"url": "http://alice:8080"},
    "load": {"model": "constant", "stages": [{"duration": "10s", "target": 5}]},
}


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _refusal(spec: dict[str, Any], kind: str = "LoadTest") -> str:
    with pytest.raises(ManifestError) as err:
        parse_spec(kind, spec)
    return str(err.value)


def _enumerated(start: float, factor: float, max_rate: float) -> int:
    """The old definition: multiply until maxRate (only for small counts)."""
    n, rate = 0, start
    while rate < max_rate * (1 - 1e-9):
        n, rate = n + 1, rate * factor
    return n + 1


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(
    start=st.floats(0.001, 100.0),
    factor=st.floats(1.05, 10.0),
    ratio=st.floats(1.0, 1e5),
)
def test_sweep_steps_by_formula_equal_the_enumeration(
    start: float, factor: float, ratio: float
) -> None:
    max_rate = start * ratio
    formula = geometric_steps(start, factor, max_rate)
    enumerated = _enumerated(start, factor, max_rate)
    assert formula - 1 <= enumerated <= formula  # ulp-level drift at an exact power only
    sweep = Sweep.model_validate(
        {"startRate": start, "factor": factor, "maxRate": max_rate, "stepDuration": "10s"}
    )
    assert len(sweep.geometric_rates) <= sweep.geometric_steps
    assert sweep.geometric_rates[-1] == max_rate


def test_a_sweep_of_billions_of_steps_is_refused_by_formula() -> None:
    # The sweep: 1e-300 is below the schema's minimum, and a factor of 1 + 1e-12
    # would ask for ~10^13 steps; neither is ever enumerated.
    for start in (1e-300, 0.001):
        spec = {
            "target": {"url": "http://alice:8080"},
            "load": {
                "model": "sweep",
                "sweep": {
                    "startRate": start,
                    "factor": 1.000000000001,
                    "maxRate": 1000,
                    "stepDuration": "10s",
                },
            },
            "thresholds": ["latency.p95 < 1s"],
        }
        message = _refusal(spec)
        assert "spec.load.sweep" in message, message
    assert geometric_steps(0.001, 1.000000000001, 1000) > MAX_SWEEP_STEPS
    assert geometric_steps(0.001, 1.0 + 2**-52, 1e7) <= 10**12 + 1


def test_a_deep_body_is_refused_with_the_field_not_a_recursion_error() -> None:
    # 10,000 levels: what the API server's JSON decoder stores at most.
    message = _refusal({**LT, "scenario": {"body": {"messages": _nested(10_000)}}})
    assert "spec.scenario.body" in message and "levels deep" in message, message


@pytest.mark.parametrize(
    ("where", "value", "words"),
    [
        ("body", {"x": float("nan")}, "JSON cannot carry"),
        ("body", ["a" * 1000] * 1100, "bytes as JSON"),
        ("body", list(range(250_000)), "values"),
    ],
)
def test_free_form_values_are_bounded(where: str, value: Any, words: str) -> None:
    message = _refusal({**LT, "scenario": {where: value}})
    assert f"spec.scenario.{where}" in message and words in message, message


def test_tree_shape_stops_at_its_limits() -> None:
    assert tree_shape(_nested(5), 10, 100) == (5, 6)
    depth, nodes = tree_shape(_nested(100_000), 64, 10**9)
    assert depth == 65 and nodes == 66  # stopped early, not walked to the bottom
    assert tree_problem({"a": [1, {"b": 2}]}) is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({**LT, "thresholds": ["errors.rate < 1%"] * 65}, "spec.thresholds"),
        ({**LT, "target": {"url": "http://a/" + "x" * 5000}}, "spec.target.url"),
        (
            {**LT, "load": {"model": "constant", "stages": [{"duration": "10s", "target": 1e12}]}},
            "spec.load.stages[0].target",
        ),
        ({**LT, "timeouts": {"queued": "800h"}}, "spec.timeouts.queued"),
        ({**LT, "timeouts": {"queued": "1s" * 100}}, "spec.timeouts.queued"),
    ],
)
def test_lists_strings_numbers_and_durations_are_bounded(spec: dict[str, Any], field: str) -> None:
    message = _refusal(spec)
    assert field in message, message


def _unbounded(schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of the CRD schema whose size the API server does not bound."""
    out: list[str] = []
    kind = schema.get("type")
    if kind == "string" and not ({"maxLength", "enum"} & set(schema)):
        out.append(path)
    if kind == "array":
        if "maxItems" not in schema:
            out.append(path)
        out += _unbounded(schema.get("items", {}), f"{path}[]")
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            if "maxProperties" not in schema:
                out.append(path)
            out += _unbounded(extra, f"{path}{{}}")
        for name, sub in (schema.get("properties") or {}).items():
            out += _unbounded(sub, f"{path}.{name}")
    if kind in ("number", "integer") and "maximum" not in schema and "enum" not in schema:
        out.append(path)
    return out


@pytest.mark.parametrize("crd", [loadtest_crd(), experiment_crd()], ids=["lt", "sx"])
def test_every_spec_list_string_map_and_number_has_a_bound_in_the_crd(crd: dict[str, Any]) -> None:
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    # Fields whose value the schema bounds otherwise: a pattern of bounded length (names),
    # an int-or-string quantity (checked by the models, at most 1e9).
    loose = [p for p in _unbounded(spec) if not p.endswith(("Name", "name"))]
    assert loose == [], loose


def test_a_trace_csv_beyond_the_bounds_is_a_trace_error_naming_it() -> None:
    from surge.loadgen.trace import TraceError, points_from_csv

    ok = points_from_csv("1765000000,5\n1765000015,6\n", "cm")  # Unix times are fine
    assert len(ok) == 2
    for text, words in (("0,5\n15,1e9\n", "rps 1e+09"), ("0,5\n2e10,6\n", "t_seconds 2e+10")):
        with pytest.raises(TraceError) as err:
            points_from_csv(text, "cm")
        assert words in str(err.value), err.value


def _integer_bounds(schema: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "integer":
            found += [(k, schema[k]) for k in ("minimum", "maximum") if k in schema]
        for value in schema.values():
            found += _integer_bounds(value)
    elif isinstance(schema, list):
        for value in schema:
            found += _integer_bounds(value)
    return found


@pytest.mark.parametrize("crd", [loadtest_crd(), experiment_crd()], ids=["lt", "sx"])
def test_integer_bounds_survive_the_api_servers_float64(crd: dict[str, Any]) -> None:
    """The API server reads schema bounds as float64: 2**63 − 1 rounds to 2**63, which is no
    int64, and every object with that field is then refused ("Maximum boundary value must be
    of type integer"). Integer bounds stay within ±(2**53 − 1), where float64 is exact."""
    bounds = _integer_bounds(crd)
    assert bounds
    assert all(float(v) == v and abs(v) <= 2**53 - 1 for _, v in bounds), bounds
