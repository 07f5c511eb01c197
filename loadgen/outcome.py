"""What one request came to: the Outcome record and its error classes.

Shared by both HTTP paths (surge.loadgen.client, surge.loadgen.http1) and the recorder,
so none of them imports another for these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ErrorClass = Literal["connect", "timeout", "http_4xx", "http_5xx", "protocol"]
ERROR_CLASSES: tuple[ErrorClass, ...] = ("connect", "timeout", "http_4xx", "http_5xx", "protocol")


class ProtocolError(Exception):
    """The response or stream was not what the scenario said it would be."""


@dataclass(slots=True)
class Outcome:
    """What happened to one request. Times are time.monotonic() seconds."""

    sent_at: float
    done_at: float = 0.0
    status: int = 0
    error: ErrorClass | None = None
    detail: str = ""
    first_token_at: float | None = None
    last_token_at: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    """Arrival time of every content-bearing chunk (streaming only)."""
    usage_tokens: int | None = None
    """completion_tokens from the server's usage, when it sent one."""
    text: str = ""
    """The reply (assistant content), kept for conversation history only."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def output_tokens(self) -> int:
        """usage.completion_tokens when present, else the number of content chunks."""
        return self.usage_tokens if self.usage_tokens is not None else len(self.chunk_times)
