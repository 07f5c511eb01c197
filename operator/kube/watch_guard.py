"""The operator survives any object the API server stores: deep nesting, or a line it cannot read.

The API server stores JSON nested up to 10,000 levels (Go's decoder limit) in a free-form
field (spec.scenario.body is x-kubernetes-preserve-unknown-fields: CEL cannot bound its
depth). kopf decodes each watch event and list reply with the json module, deep-copies and
diffs the body; at Python's default recursion limit (1,000) a list nested 1,100 deep raised
RecursionError inside kopf's watcher, which does not catch it, and every resource of that
kind went unwatched. So, at start:

- the recursion limit is raised to RECURSION_LIMIT, which covers 10,000 levels with room
  for the frames each level costs (measured: the C decoder, encoder, repr and deepcopy of
  60,000 levels fit the 8 MiB stacks of the main thread and of worker threads; 25,000 keep
  a wide margin);
- each watch-stream line is decoded by `guarded_loads`: a line that still cannot be decoded
  (too deep even so, not JSON, a number beyond what Python parses) is logged and turned into
  an event type kopf ignores, so one object cannot stop the watch of the others.
The handlers then refuse such an object with a reason (surge.api.bounds caps its depth) and
catch whatever a reconcile raises (surge.operator.handlers).
"""

from __future__ import annotations

import json
import logging
import sys
from types import ModuleType
from typing import Any

RECURSION_LIMIT = 25_000
SKIPPED_EVENT = "SURGE-UNREADABLE"
"""The event type an unreadable line becomes; kopf logs and skips types it does not know."""

log = logging.getLogger("surge.operator")


def guarded_loads(text: str | bytes, **kwargs: Any) -> Any:
    """json.loads that never raises: an unreadable watch line becomes a skipped event."""
    try:
        return json.loads(text, **kwargs)
    except (RecursionError, ValueError, MemoryError) as exc:
        log.error(
            "a watch event could not be decoded (%s: %s); skipped, the watch goes on",
            type(exc).__name__,
            str(exc)[:200],
        )
        return {"type": SKIPPED_EVENT, "object": {}}


class _GuardedJson(ModuleType):
    """The json module as kopf's API client sees it, with `loads` guarded."""

    def __init__(self) -> None:
        super().__init__("json")
        self.loads = guarded_loads

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)


def _client() -> dict[str, Any]:
    """The namespace of kopf's API client module, where watch lines are decoded."""
    from kopf._cogs.clients import api

    return vars(api)


def decoder() -> Any:
    """The json module kopf's API client decodes with (guarded once installed)."""
    return _client()["json"]


def install() -> None:
    """Raise the recursion limit and guard the decoding of kopf's watch streams."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    if not isinstance(decoder(), _GuardedJson):
        _client()["json"] = _GuardedJson()


def installed() -> bool:
    return isinstance(decoder(), _GuardedJson) and sys.getrecursionlimit() >= RECURSION_LIMIT
