"""What one request is: method, path, body template and dataset, and the shape of the
stream it answers with (how Surge finds tokens in it; docs/metrics.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from surge.api.base import Model
from surge.api.bounds import MAX_COUNT, MAX_ITEMS, MAX_ROWS, Key, Text, Tree, TreeMap
from surge.api.durations import Duration
from surge.api.target import Name

PositiveInt = Annotated[int, Field(ge=1, le=MAX_COUNT)]
EventType = Annotated[str, Field(pattern=r"^\S+$", max_length=256)]
"""An SSE event type as the `event:` field spells it: no spaces, no line breaks."""


class ConfigMapKeyRef(Model):
    name: Name
    key: Key


class Dataset(Model):
    inline: list[TreeMap] | None = Field(None, max_length=MAX_ROWS)
    """Rows given in the manifest."""
    file: Text | None = None
    """A JSONL file (one JSON object a line); local runs only."""
    config_map_ref: ConfigMapKeyRef | None = None
    """A ConfigMap key holding JSONL."""
    order: Literal["sequential", "random"] = "sequential"

    @model_validator(mode="after")
    def _one_source(self) -> Dataset:
        given = [
            n
            for n, v in (
                ("inline", self.inline),
                ("file", self.file),
                ("configMapRef", self.config_map_ref),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "set exactly one of inline, file or configMapRef"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.inline is not None and not self.inline:
            raise ValueError("inline must hold at least one row")
        return self


class Conversation(Model):
    turns_field: Key = "turns"
    """Row field holding the list of user messages of one conversation."""
    max_turns: PositiveInt | None = None
    think_time: Duration = 0.0
    """Pause between a reply and the next turn of the same conversation."""


class Scenario(Model):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: Text = "/"
    headers: dict[Key, Text] = Field(default_factory=dict, max_length=MAX_ITEMS)
    body: Tree = None
    """A JSON template (object, list or string): string leaves may hold {{field}} placeholders
    filled from the dataset row; a leaf that is exactly "{{field}}" takes the row value as is."""
    dataset: Dataset | None = None
    streaming: Literal[
        "none", "sse", "openai", "anthropic", "openai-responses", "ollama", "tgi"
    ] = "none"
    """The stream the target answers with, for TTFT, TPOT, ITL and tokens (docs/metrics.md,
    Stream shapes). openai: OpenAI chat-completions or completions chunks (told apart by
    shape; reasoning included; n > 1 timed per choice), ending with [DONE]. anthropic:
    Anthropic Messages events, ending with message_stop. openai-responses: the OpenAI
    Responses API's events, ending with response.completed. ollama: Ollama's native
    NDJSON (/api/chat, /api/generate), ending with "done": true. tgi: Text Generation
    Inference's native /generate_stream, ending with the generated_text message. sse: any
    text/event-stream (see sseTokenEvents). A stream that ends otherwise is a protocol
    error."""
    include_usage: bool = True
    """streaming openai: add stream_options.include_usage to a body with "stream": true
    (unless it sets it); streaming tgi: add parameters.details: true (unless it sets
    details); so token counts come from the server's usage, not from chunks. false: leave
    the body as written (a server that refuses the field)."""
    sse_token_events: list[EventType] | None = Field(None, max_length=MAX_ITEMS)
    """streaming sse: the event types (the `event:` field) whose data carries tokens;
    default ["message"], the type of events without an `event:` field."""
    conversation: Conversation | None = None
    """Multi-turn: each dataset row is a conversation whose history is carried between turns."""
    timeout: Duration = 30.0
    """Per-request timeout, from the actual send to the last byte."""

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r} must start with '/'")
        return v

    @field_validator("body")
    @classmethod
    def _body(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, dict | list | str):
            raise ValueError(f"{v!r} is not a body; give an object, a list or a string")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> Scenario:
        if self.timeout <= 0:
            raise ValueError("timeout must be more than 0s")
        if self.conversation is not None and self.dataset is None:
            raise ValueError("conversation needs a dataset whose rows hold the turns")
        if self.sse_token_events is not None:
            if self.streaming != "sse":
                raise ValueError(
                    f"sseTokenEvents applies to streaming: sse, not {self.streaming!r}; "
                    "remove it or set streaming: sse"
                )
            if not self.sse_token_events:
                raise ValueError("sseTokenEvents must name at least one event type")
        return self
