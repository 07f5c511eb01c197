"""Hard bounds of the API: what no spec may exceed, whatever the cluster policy says.

Every list, string and number of the models has a bound (the CRD carries it as maxItems,
maxLength, maxProperties, maximum, so the API server refuses more at apply). Free-form
values (a request body, dataset rows, the Kubernetes objects a variant passes through) are
x-kubernetes-preserve-unknown-fields in the CRD, where the API server cannot bound nesting
(CEL has no recursion): `check_tree` bounds their depth and size here, walking them without
recursion, so a value nested 10,000 deep is refused with a message, never a RecursionError.
The cluster policy's caps (surge.api.policy.Caps) may only be lower than these.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, JsonValue, WithJsonSchema
from pydantic_core import PydanticCustomError

from surge.api.durations import (
    DURATION_PATTERN,
    DURATION_RE,
    Duration,
    format_duration,
    go_duration_ns,
)

MAX_TREE_DEPTH = 64
"""Nesting levels of a free-form value (a scalar is 0, `[1]` is 1, `{"a": [1]}` is 2)."""
MAX_TREE_NODES = 200_000
"""Scalars, lists and mappings in one free-form value."""
MAX_TREE_BYTES = 1_000_000
"""A free-form value as compact JSON; a ConfigMap (the run's plan) holds 1 MiB in all."""

SEND_TICK_MIN_S, SEND_TICK_MAX_S = 0.001, 0.010
"""load.sendTick's bounds: uvloop's timer resolution, and a lag well below a request."""
SEND_TICK_NS = (round(SEND_TICK_MIN_S * 1e9), round(SEND_TICK_MAX_S * 1e9))
_TICK_LOW, _TICK_HIGH = format_duration(SEND_TICK_MIN_S), format_duration(SEND_TICK_MAX_S)
_TICK_RANGE = f"{_TICK_LOW}-{_TICK_HIGH}"
SEND_TICK_CHARS = 40
"""A tick's spelling, at most (every sane one is far shorter)."""
SEND_TICK_RULE: dict[str, JsonValue] = {
    "rule": f"duration(self) >= duration('{_TICK_LOW}') && "
    f"duration(self) <= duration('{_TICK_HIGH}')",
    "message": f"load.sendTick must be within {_TICK_RANGE}: set e.g. 2ms, or drop it",
}
"""The same bound in the CRD (CEL's duration() is Go's time.ParseDuration): `kubectl apply`
refuses what `_send_tick` refuses, to the nanosecond (tests/e2e/test_send_tick_cel.py)."""


def _send_tick(value: Any) -> Any:
    # Checked on the text, as Go reads it, so the CRD's rule and this one never disagree
    # ("0.9999999999ms" is 999,999 ns to Go, and refused by both); other input is left to
    # Duration's own messages (spaces around the text included). Past SEND_TICK_CHARS the
    # text is refused for its length, unechoed (it may be 1 MB), as the CRD's maxLength does:
    # it also keeps out the 45-character spellings whose parts wrap Go's uint64 sum.
    if isinstance(value, str) and len(value) > SEND_TICK_CHARS:
        raise PydanticCustomError(
            "duration",
            "a sendTick of {n} characters; write it as e.g. 2ms (at most {most})",
            {"n": len(value), "most": SEND_TICK_CHARS},
        )
    if isinstance(value, str) and DURATION_RE.fullmatch(value):
        ns = go_duration_ns(value)
        if ns is None or not SEND_TICK_NS[0] <= ns <= SEND_TICK_NS[1]:
            raise PydanticCustomError(
                "duration",
                "{value} is outside {range}: set e.g. 2ms, or drop it (below {low} the event "
                "loop cannot sleep, above {high} the lag would swamp the latencies)",
                {
                    "value": value,
                    "range": _TICK_RANGE,
                    "low": _TICK_LOW,
                    "high": _TICK_HIGH,
                },
            )
    elif value == 0 and not isinstance(value, bool):
        raise PydanticCustomError(
            "duration", "0 is outside {range}: set e.g. 2ms, or drop it", {"range": _TICK_RANGE}
        )
    return value


SendTick = Annotated[
    Duration,
    BeforeValidator(_send_tick),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": SEND_TICK_CHARS,
            "x-kubernetes-validations": [SEND_TICK_RULE],
        }
    ),
]

MAX_SWEEP_STEPS = 1000
"""Geometric steps plus bisections of one capacity sweep."""
MAX_VARIANTS = 100
MAX_RUNS = 200
"""Variants × repetitions of one experiment: each run is a row of its status."""
MAX_STAGES = 100
MAX_ITEMS = 64
"""Headers, thresholds, tolerations, metrics: lists a person writes by hand."""
MAX_ROWS = 10_000
"""Inline dataset rows (the plan ConfigMap's 1 MiB bounds them further)."""
MAX_NAME = 253
MAX_TEXT = 4096
"""URLs, paths, header values, queries, strings a person writes by hand."""
MAX_RATE = 1e7
"""Requests per second (or virtual users) anywhere in a spec."""
MAX_COUNT = 1_000_000
"""Replicas, in-flight requests, pods per node, utilization targets."""
MAX_PRICE = 1e6


def tree_shape(value: Any, max_depth: int, max_nodes: int) -> tuple[int, int]:
    """(depth, nodes) of a JSON-like value, walked without recursion; stops counting at
    max_depth + 1 or max_nodes + 1, so a hostile value costs no more than the limits."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    depth = nodes = 0
    while stack:
        node, level = stack.pop()
        nodes += 1
        depth = max(depth, level)
        if depth > max_depth or nodes > max_nodes:
            break
        if isinstance(node, dict):
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list | tuple):
            stack.extend((v, level + 1) for v in node)
    return depth, nodes


def json_size(value: Any) -> int:
    """Bytes of the value as compact JSON (call it on a value whose depth is checked)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@dataclass(frozen=True)
class TreeProblem:
    kind: Literal["depth", "nodes", "number", "bytes"]
    message: str

    def __str__(self) -> str:
        return self.message


def tree_problem(
    value: Any,
    max_depth: int = MAX_TREE_DEPTH,
    max_bytes: int = MAX_TREE_BYTES,
    max_nodes: int = MAX_TREE_NODES,
) -> TreeProblem | None:
    """Why the value is too deep or too large, or None when it fits."""
    depth, nodes = tree_shape(value, max_depth, max_nodes)
    if depth > max_depth:
        return TreeProblem("depth", f"nested more than {max_depth} levels deep; flatten it")
    if nodes > max_nodes:
        return TreeProblem("nodes", f"holds more than {max_nodes:,} values; make it smaller")
    for leaf in _floats(value):
        if not math.isfinite(leaf):
            return TreeProblem("number", f"holds {leaf!r}, which JSON cannot carry")
    size = json_size(value)
    if size > max_bytes:
        return TreeProblem(
            "bytes", f"is {size:,} bytes as JSON, more than {max_bytes:,}; make it smaller"
        )
    return None


def _floats(value: Any) -> list[float]:
    stack, out = [value], []
    while stack:
        node = stack.pop()
        if isinstance(node, float):
            out.append(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return out


def check_tree(value: Any) -> Any:
    """The value itself when it is within the hard bounds; else ValueError (validators)."""
    problem = tree_problem(value)
    if problem is not None:
        raise ValueError(str(problem))
    return value


Tree = Annotated[Any, AfterValidator(check_tree)]
"""A free-form JSON value within MAX_TREE_DEPTH, MAX_TREE_NODES and MAX_TREE_BYTES."""
TreeMap = Annotated[dict[str, Any], AfterValidator(check_tree), Field(max_length=MAX_ITEMS)]
"""A free-form mapping (a Kubernetes object passed through: affinity, behavior, a rule)."""
Text = Annotated[str, Field(max_length=MAX_TEXT)]
ShortText = Annotated[str, Field(max_length=256)]
"""One line a person writes: a threshold, an event type."""
Key = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
"""A map key or a short identifier: a label key, a Secret key, a pool name."""
