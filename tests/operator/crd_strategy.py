"""Hypothesis strategies for the documents a generated CRD schema admits (#25 fuzzing).

`documents(schema)` walks a structural OpenAPI schema (what the API server validates
against): enums, patterns, maxLength, minimum/maximum (exclusive too), maxItems,
maxProperties, required properties, nullable, int-or-string, and free-form values
(x-kubernetes-preserve-unknown-fields) as arbitrary JSON, sometimes nested far deeper than
any cap. Sizes are drawn small (a few items a list) except where a bound is the point.
`HINTS` gives some fields realistic values half of the time (URLs, thresholds), so the
documents also reach the admission steps after the first field check. The CRD's CEL rules
(x-kubernetes-validations) are not evaluated here: `cel_admits` writes them in Python.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from hypothesis import strategies as st

from surge.api.bounds import SEND_TICK_NS
from surge.api.durations import go_duration_ns

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


def _nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf] if depth % 2 else {"k": leaf}
    return leaf


FREE_FORM = st.one_of(
    st.recursive(
        JSON_LEAVES,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=12,
    ),
    # Deeper than the policy's cap (32) and than the models' (64), as a hostile tenant writes.
    st.builds(_nested, st.integers(30, 200), JSON_LEAVES),
)

URLS = st.sampled_from(
    [
        "http://alice:8080",
        "http://alice.team:8080",
        "http://alice.team.svc.cluster.local",
        "https://10.0.0.1/x",
        "http://127.0.0.1:9",
        "http://[::1]:80/",
        "http://attacker.example\\@alice.team:80",
    ]
)
THRESHOLDS = st.sampled_from(
    ["latency.p95 < 800ms", "errors.rate < 1%", "throughput.rps > 10", "ttft.p99 < 2s"]
)
DURATIONS = st.sampled_from(["1s", "10s", "90s", "5m", "1h", "0s", "1h30m", "721h", "500ms"])
HINTS: dict[str, st.SearchStrategy[Any]] = {
    ".target.url": URLS,
    ".target.readiness.http.url": URLS,
    ".prometheus.url": URLS,
    ".thresholds[]": THRESHOLDS,
    ".scenario.path": st.sampled_from(["/", "/v1/chat/completions", "x"]),
}


def documents(schema: dict[str, Any], path: str = "") -> st.SearchStrategy[Any]:
    base = _plain(schema, path)
    hint = HINTS.get(path)
    if hint is not None:
        base = st.one_of(hint, base)
    if schema.get("nullable"):
        return st.one_of(st.none(), base)
    return base


def _plain(schema: dict[str, Any], path: str) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema.get("x-kubernetes-int-or-string"):
        return st.one_of(
            st.integers(0, 10**6), st.sampled_from(["250m", "1", "1.5", "2k", "x", "1e3"])
        )
    kind = schema.get("type")
    if kind is None:
        return FREE_FORM
    if kind == "string":
        return _string(schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        lo, hi = _range(schema, -(2**31), 2**31)
        return st.integers(int(lo), int(hi))
    if kind == "number":
        lo, hi = _range(schema, -1e9, 1e9)
        return st.floats(
            lo,
            hi,
            exclude_min=bool(schema.get("exclusiveMinimum")),
            exclude_max=bool(schema.get("exclusiveMaximum")),
            allow_nan=False,
        )
    if kind == "array":
        most = min(int(schema.get("maxItems", 3)), 3)
        least = min(int(schema.get("minItems", 0)), most)
        items = documents(schema.get("items", {}), f"{path}[]")
        return st.lists(items, min_size=least, max_size=most)
    return _object(schema, path)


def _range(schema: dict[str, Any], lo: float, hi: float) -> tuple[float, float]:
    low = float(schema.get("minimum", lo))
    high = float(schema.get("maximum", hi))
    whole = schema.get("type") == "integer"
    if schema.get("exclusiveMinimum") and whole:
        low += 1
    if schema.get("exclusiveMaximum") and whole:
        high -= 1
    return low, high


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    most = int(schema.get("maxLength", 64))
    least = int(schema.get("minLength", 0))
    if "pattern" in schema:
        # re.ASCII: the API server checks patterns with Go's RE2, whose \d is [0-9].
        return st.from_regex(re.compile(schema["pattern"], re.ASCII), fullmatch=True).filter(
            lambda s: least <= len(s) <= most
        )
    return st.text(min_size=least, max_size=min(most, 40))


def _object(schema: dict[str, Any], path: str) -> st.SearchStrategy[Any]:
    props: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if props:
        required = set(schema.get("required") or [])
        fields = {k: documents(v, f"{path}.{k}") for k, v in props.items()}
        return st.fixed_dictionaries(
            {k: s for k, s in fields.items() if k in required},
            optional={k: s for k, s in fields.items() if k not in required},
        )
    if isinstance(extra, dict):
        most = min(int(schema.get("maxProperties", 3)), 3)
        keys = st.text(min_size=1, max_size=12)
        return st.dictionaries(keys, documents(extra, f"{path}{{}}"), max_size=most)
    return st.dictionaries(st.text(max_size=8), FREE_FORM, max_size=3)


def cel_admits(spec: dict[str, Any]) -> bool:
    """The LoadTest spec's x-kubernetes-validations (surge.api.spec_rules.SPEC_RULES, and
    load.sendTick's SEND_TICK_RULE) in Python."""
    load = spec.get("load") or {}
    safety = spec.get("safety") or {}
    rate_cap = float(safety.get("maxRate", 1000.0))
    user_cap = float(safety.get("maxUsers", 1000))
    stages = load.get("stages") or []
    closed = load.get("model") == "closed"
    if not closed and any(s.get("target", 0) > rate_cap for s in stages):
        return False
    if closed and any(s.get("target", 0) > user_cap for s in stages):
        return False
    sweep = load.get("sweep")
    if sweep is not None and sweep.get("maxRate", 0) > rate_cap:
        return False
    tick = load.get("sendTick")  # the field's own rule: CEL's duration() is Go's parser
    if isinstance(tick, str):
        ns = go_duration_ns(tick)
        if ns is None or not SEND_TICK_NS[0] <= ns <= SEND_TICK_NS[1]:
            return False
    in_flight = load.get("maxInFlight")
    return closed or in_flight is None or in_flight >= load.get("workers", 1)


def _paths(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(dotted path, schema) of every property reachable through objects (not lists)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name, sub in (schema.get("properties") or {}).items():
        here = f"{path}.{name}"
        out.append((here, sub))
        out += _paths(sub, here)
    return out


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    *parents, last = path.strip(".").split(".")
    for p in parents:
        child = node.get(p)
        if not isinstance(child, dict):
            child = node[p] = {}
        node = child
    node[last] = value
    return out


def mutations(base: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid spec with one to three fields replaced by anything the schema admits there:
    these reach the checks after the first field (policy, caps, the plan, the simulation)."""
    paths = _paths(schema)

    def apply(chosen: list[tuple[str, dict[str, Any]]]) -> st.SearchStrategy[dict[str, Any]]:
        values = st.tuples(*(documents(sub, p) for p, sub in chosen))

        def put(vals: tuple[Any, ...]) -> dict[str, Any]:
            doc = base
            for (p, _), v in zip(chosen, vals, strict=True):
                doc = _set(doc, p, v)
            return doc

        return values.map(put)

    picks = st.lists(st.sampled_from(paths), min_size=1, max_size=3, unique_by=lambda x: x[0])
    return picks.flatmap(apply)
