"""Alice's configuration: one frozen value, validated once, logged at start-up.

The CLI (`surge demo-agent`, see command.py) fills it from flags and ALICE_* env
vars; tests and the demo build it directly. Units are in the field names.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from surge.agent.latency import LatencySpec, TokenSpec, parse_latency, parse_tokens

ModelKind = Literal["faq", "transformer"]

# Defaults give `make demo` something that looks like a real agent: a little CPU,
# a right-skewed latency, LLM-like streaming. Tests always set what they check.
DEFAULT_CPU_MS = 10.0
DEFAULT_LATENCY = "lognormal:median=50ms,sigma=0.4"
DEFAULT_TTFT = "fixed:150ms"
DEFAULT_TPOT_S = 0.02
DEFAULT_OUTPUT_TOKENS = "uniform:16-64"
DEFAULT_TRANSFORMER_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Every tunable of the demo agent. Raises ValueError from __post_init__ when invalid.

    - cpu_ms: CPU time burnt per request (process CPU, not wall clock), >= 0.
    - latency: delay added to /respond after the CPU work (asyncio.sleep, so requests overlap).
    - stall_every_s / stall_for_s: stall k covers [k*every, k*every+for) s since start;
      requests arriving inside are held until it ends. 0 disables.
    - max_concurrency: requests served at once (0 = unlimited); queue_size more may
      wait; beyond that the server answers 503 at once.
    - gpu_slots: the "GPU slots" mode: N requests served at once, as with max_concurrency
      (which must then stay 0), each for its latency (or TTFT + TPOT schedule) with no CPU
      of its own: the CLI's --gpu-slots defaults cpu_ms to 0. A model server on a GPU
      queues like this, while its CPU stays near idle (docs/agent.md).
    - replicas_file: a test device (docs/agent.md, "Following a Deployment"): one Alice stands
      for a whole Deployment of simulated pods, so her slots are gpu_slots × the replica count
      that a follower writes to this file (re-read every REPLICAS_POLL_S). None = off.
    - error_rate: fraction of admitted requests answered with HTTP 500 (after their work).
    - ready_delay_s: /readyz answers 503 until this long after start.
    - ttft: delay before the first content token of /v1/chat/completions.
    - tpot_s: gap between content tokens; token i is due at start + ttft + i*tpot_s.
    - output_tokens: completion length, capped by the request's max_tokens.
    - seed: None draws one from the OS (it is logged, so a run can be replayed).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    cpu_ms: float = DEFAULT_CPU_MS
    latency: LatencySpec = field(default_factory=lambda: parse_latency(DEFAULT_LATENCY))
    stall_every_s: float = 0.0
    stall_for_s: float = 0.0
    max_concurrency: int = 0
    gpu_slots: int = 0
    queue_size: int = 128
    replicas_file: str | None = None
    error_rate: float = 0.0
    ready_delay_s: float = 0.0
    ttft: LatencySpec = field(default_factory=lambda: parse_latency(DEFAULT_TTFT))
    tpot_s: float = DEFAULT_TPOT_S
    output_tokens: TokenSpec = field(default_factory=lambda: parse_tokens(DEFAULT_OUTPUT_TOKENS))
    seed: int | None = None
    model: ModelKind = "faq"
    transformer_model: str = DEFAULT_TRANSFORMER_MODEL

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (0 <= self.port <= 65535, "port must be in 0..65535"),
            (math.isfinite(self.cpu_ms) and self.cpu_ms >= 0, "cpu_ms must be >= 0"),
            (self.stall_every_s >= 0 and self.stall_for_s >= 0, "stall times must be >= 0"),
            (
                self.stall_for_s == 0 or self.stall_for_s < self.stall_every_s,
                "stall_for must be shorter than stall_every (else the server never answers)",
            ),
            (self.max_concurrency >= 0, "max_concurrency must be >= 0 (0 = unlimited)"),
            (self.gpu_slots >= 0, "gpu_slots must be >= 0 (0 = off)"),
            (
                self.gpu_slots == 0 or self.max_concurrency == 0,
                "gpu_slots and max_concurrency both limit concurrency: set only one "
                "(--gpu-slots or --max-concurrency)",
            ),
            (
                self.replicas_file is None or self.gpu_slots > 0,
                "replicas_file needs gpu_slots, the slots of one replica "
                "(--replicas-file with --gpu-slots N)",
            ),
            (self.replicas_file != "", "replicas_file must be a path, or unset"),
            (self.queue_size >= 0, "queue_size must be >= 0"),
            (0.0 <= self.error_rate <= 1.0, "error_rate must be in [0, 1]"),
            (self.ready_delay_s >= 0, "ready_delay must be >= 0"),
            (math.isfinite(self.tpot_s) and self.tpot_s >= 0, "tpot must be >= 0"),
            (self.seed is None or self.seed >= 0, "seed must be >= 0"),
            (self.model in ("faq", "transformer"), "model must be faq or transformer"),
        ]
        errors = [msg for ok, msg in checks if not ok]
        if errors:
            raise ValueError("; ".join(errors))

    @property
    def slots(self) -> int:
        """Requests served at once (0 = unlimited): gpu_slots, else max_concurrency."""
        return self.gpu_slots or self.max_concurrency

    def summary(self) -> dict[str, object]:
        """A JSON-able view with distributions in their canonical spelling (for the log)."""
        out = asdict(self)
        out["latency"] = self.latency.describe()
        out["ttft"] = self.ttft.describe()
        out["output_tokens"] = self.output_tokens.describe()
        return out


def default_cpu_ms(gpu_slots: int) -> float:
    """The CLI's cpu_ms when --cpu-ms is not given: none in GPU-slots mode (the work is on
    the GPU), else DEFAULT_CPU_MS."""
    return 0.0 if gpu_slots > 0 else DEFAULT_CPU_MS
