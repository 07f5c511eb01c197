"""Scenario: dataset rows and body templates turned into concrete requests.

Templates: every string leaf of `scenario.body` may hold `{{field}}` placeholders
filled from the row. A leaf that is exactly "{{field}}" takes the row value as is
(a number, list or object stays one); inside longer strings the value is written
with str() (JSON for lists/objects). An unknown field is left as written and counted
in `Scenario.missing_fields`, so a typo shows without failing the run.

Conversations: a row's `turnsField` list holds the user messages. Each turn's row
gets two extra fields: `turn` (this user message) and `history` (the earlier
messages as [{role, content}]). For streaming openai or anthropic (or a body with
`messages`) the request's `messages` is the template's system messages + history +
this turn, and each assistant reply is appended to the history.

Usage: with streaming openai, a body with "stream": true also asks for the usage chunk
(`stream_options.include_usage`), with streaming tgi a body asks for the final details
(`parameters.details`), unless the body says otherwise or scenario.includeUsage is
false: token counts then come from the server, not from counting chunks (docs/metrics.md).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surge.api.loadtest import Scenario as ScenarioSpec

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")


def render(template: Any, row: dict[str, Any], missing: set[str] | None = None) -> Any:
    """The template with {{field}} placeholders filled from row. Pure."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole and template.strip() == template:
            key = whole.group(1)
            if key in row:
                return row[key]
            if missing is not None:
                missing.add(key)
            return template

        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            if key not in row:
                if missing is not None:
                    missing.add(key)
                return m.group(0)
            v = row[key]
            return v if isinstance(v, str) else json.dumps(v)

        return _PLACEHOLDER.sub(sub, template)
    if isinstance(template, dict):
        return {k: render(v, row, missing) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, row, missing) for v in template]
    return template


def with_usage_request(body: Any) -> Any:
    """An OpenAI streaming body ("stream": true) that also asks for the usage chunk; the
    body as it is when it is not one, or sets stream_options.include_usage itself."""
    if not isinstance(body, dict) or body.get("stream") is not True:
        return body
    options = body.get("stream_options")
    if options is None:
        return {**body, "stream_options": {"include_usage": True}}
    if isinstance(options, dict) and "include_usage" not in options:
        return {**body, "stream_options": {**options, "include_usage": True}}
    return body


def with_details_request(body: Any) -> Any:
    """A TGI /generate_stream body that also asks for the final details (generated_tokens,
    input_length): `parameters.details: true`, unless the body sets details itself."""
    if not isinstance(body, dict):
        return body
    params = body.get("parameters")
    if params is None:
        return {**body, "parameters": {"details": True}}
    if isinstance(params, dict) and "details" not in params:
        return {**body, "parameters": {**params, "details": True}}
    return body


def _has_placeholder(template: Any) -> bool:
    if isinstance(template, str):
        return _PLACEHOLDER.search(template) is not None
    if isinstance(template, dict):
        return any(_has_placeholder(v) for v in template.values())
    if isinstance(template, list):
        return any(_has_placeholder(v) for v in template)
    return False


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file. Raises ValueError naming the line of a bad row."""
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: a row must be a JSON object")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: holds no rows")
    return rows


@dataclass(frozen=True, slots=True)
class Prepared:
    """One concrete request: method, path, encoded body and content type."""

    method: str
    path: str
    body: bytes | None
    content_type: str | None


class RowSource:
    """Rows in dataset order: sequential (worker i starts at row i, steps N) or seeded random."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        order: str,
        *,
        index: int = 0,
        workers: int = 1,
        seed: int | None = None,
    ) -> None:
        self._rows = rows or [{}]
        self._order = order
        self._next = index
        self._step = workers
        self._rng = random.Random(None if seed is None else seed * 31 + index)

    @property
    def size(self) -> int:
        return len(self._rows)

    def next(self) -> dict[str, Any]:
        if self._order == "random":
            return self._rng.choice(self._rows)
        row = self._rows[self._next % len(self._rows)]
        self._next += self._step
        return row


class Scenario:
    """Builds requests for one worker; `conversation()` yields the turns of one conversation."""

    def __init__(
        self,
        spec: ScenarioSpec,
        *,
        index: int = 0,
        workers: int = 1,
        seed: int | None = None,
    ) -> None:
        self.spec = spec
        rows = spec.dataset.inline if spec.dataset is not None else None
        order = spec.dataset.order if spec.dataset is not None else "sequential"
        self.rows = RowSource(rows or [{}], order, index=index, workers=workers, seed=seed)
        self.missing_fields: set[str] = set()
        self.body = spec.body
        if spec.streaming == "openai" and spec.include_usage:
            self.body = with_usage_request(spec.body)
        elif spec.streaming == "tgi" and spec.include_usage:
            self.body = with_details_request(spec.body)
        self.openai = spec.streaming in ("openai", "anthropic") or (
            isinstance(spec.body, dict) and "messages" in spec.body
        )
        # A body without placeholders is the same for every row: encode it once.
        self._static = None if _has_placeholder(self.body) else self._encode(self.body)

    def _encode(self, body: Any) -> Prepared:
        if body is None:
            return Prepared(self.spec.method, self.spec.path, None, None)
        if isinstance(body, str):
            return Prepared(self.spec.method, self.spec.path, body.encode(), "text/plain")
        return Prepared(
            self.spec.method,
            self.spec.path,
            json.dumps(body, separators=(",", ":")).encode(),
            "application/json",
        )

    def single(self, row: dict[str, Any] | None = None) -> Prepared:
        """A single-turn request from the next row (or the given one)."""
        if self._static is not None:
            return self._static
        row = self.rows.next() if row is None else row
        return self._encode(render(self.body, row, self.missing_fields))

    def turn_request(
        self, row: dict[str, Any], turn: str, history: list[dict[str, str]]
    ) -> Prepared:
        """The request for one turn of a conversation, with the history carried."""
        fields = {**row, "turn": turn, "history": history}
        body = render(self.body, fields, self.missing_fields)
        if self.openai:
            body = dict(body) if isinstance(body, dict) else {}
            template_msgs = body.get("messages") if isinstance(body.get("messages"), list) else []
            system = [
                m for m in template_msgs or [] if isinstance(m, dict) and m.get("role") == "system"
            ]
            body["messages"] = [*system, *history, {"role": "user", "content": turn}]
        return self._encode(body)

    def conversation_turns(self, row: dict[str, Any]) -> list[str]:
        conv = self.spec.conversation
        assert conv is not None
        raw = row.get(conv.turns_field)
        turns = [str(t) for t in raw] if isinstance(raw, list) else []
        if conv.max_turns is not None:
            turns = turns[: conv.max_turns]
        return turns

    def next_conversation(self) -> tuple[dict[str, Any], list[str]] | None:
        """The next row holding turns and its turns; None when no row has any."""
        for _ in range(self.rows.size):
            row = self.rows.next()
            turns = self.conversation_turns(row)
            if turns:
                return row, turns
        return None
