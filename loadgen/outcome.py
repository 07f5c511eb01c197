"""What one request came to: the Outcome record and its error classes.

Shared by both HTTP paths (surge.loadgen.client, surge.loadgen.http1), the stream
parser (surge.loadgen.streams) and the recorder, so none of them imports another for
these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ErrorClass = Literal["connect", "timeout", "http_3xx", "http_4xx", "http_5xx", "protocol"]
ERROR_CLASSES: tuple[ErrorClass, ...] = (
    "connect",
    "timeout",
    "http_3xx",
    "http_4xx",
    "http_5xx",
    "protocol",
)

KEEPALIVE_IDLE_S = 4.0
"""Both client paths retire a keep-alive connection idle this long. Common server idle
timeouts are 5 s (Node.js, uvicorn) or more; a connection the server is about to close
would otherwise be picked for a request and fail as a spurious connect error."""


MAX_REASONS = 8
"""Distinct error reasons a summary keeps (per worker and merged); the rest are counted
under OTHER_REASON, so a reason that quotes varying data cannot grow the summary."""
REASON_CHARS = 100
OTHER_REASON = "other: (reasons past the first 8)"


def reason_key(error: ErrorClass, detail: str) -> str:
    """The tally key of one failed request: "class: detail" (the detail cut short)."""
    return f"{error}: {detail[:REASON_CHARS]}" if detail else error


def tally_reason(reasons: dict[str, int], key: str, n: int = 1) -> None:
    """Count n requests under `key`, or under OTHER_REASON once MAX_REASONS are kept."""
    if key in reasons or len(reasons) < MAX_REASONS:
        reasons[key] = reasons.get(key, 0) + n
    else:
        reasons[OTHER_REASON] = reasons.get(OTHER_REASON, 0) + n


def merge_reasons(tallies: list[dict[str, int]]) -> dict[str, int]:
    """Tallies summed, the MAX_REASONS most counted kept, the rest under OTHER_REASON."""
    total: dict[str, int] = {}
    for tally in tallies:
        for key, n in tally.items():
            total[key] = total.get(key, 0) + n
    other = total.pop(OTHER_REASON, 0)
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))
    out = dict(ranked[:MAX_REASONS])
    other += sum(n for _, n in ranked[MAX_REASONS:])
    if other:
        out[OTHER_REASON] = other
    return out


class ProtocolError(Exception):
    """The response or stream was not what the scenario said it would be."""


def status_error(status: int) -> ErrorClass | None:
    """The error class of a final HTTP status, the same on both client paths: redirects are
    not followed, so a 3xx is an error (the target answered somewhere else)."""
    if status < 300:
        return None
    if status < 400:
        return "http_3xx"
    return "http_5xx" if status >= 500 else "http_4xx"


@dataclass(slots=True)
class Outcome:
    """What happened to one request. Times are time.monotonic() seconds."""

    sent_at: float
    done_at: float = 0.0
    status: int = 0
    error: ErrorClass | None = None
    detail: str = ""
    first_token_at: float | None = None
    """The first generated token of any kind (reasoning included): TTFT."""
    last_token_at: float | None = None
    first_content_at: float | None = None
    """The first answer token (content, completion text or tool call; not reasoning)."""
    chunk_times: list[float] = field(default_factory=list)
    """Arrival time of every token-bearing chunk, reasoning included (streaming only)."""
    sequences: list[list[float]] | None = None
    """n > 1: chunk_times split by sequence (OpenAI choice index, in index order); None
    when the stream held one sequence."""
    usage_tokens: int | None = None
    """Output tokens from the server's usage (completion_tokens, output_tokens), if sent."""
    input_tokens: int | None = None
    """Input tokens from the server's usage (prompt_tokens, input_tokens), if sent."""
    text: str = ""
    """The reply (answer content), kept for conversation history only."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def output_tokens(self) -> int:
        """The usage's output tokens when present, else the number of token chunks."""
        return self.usage_tokens if self.usage_tokens is not None else len(self.chunk_times)
