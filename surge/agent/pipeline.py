"""The admission pipeline every work request goes through, and the state one app keeps.

stall hold -> admission (concurrency limit + queue, else 503) -> CPU burn, then the
endpoint's own work (surge.agent.server), then a RequestRecord and the metrics.

The CPU burn runs on the event loop on purpose. Python CPU work holds the GIL,
so a thread pool would add no parallelism, only thread switches; blocking the
loop is what a CPU-bound Python agent really does, and it caps one process at
one core, which is what makes CPU utilisation a truthful HPA signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

from surge.agent.config import AgentConfig
from surge.agent.faq import FaqModel
from surge.agent.latency import stall_wait_s
from surge.agent.limiter import Limiter
from surge.agent.metrics import AgentMetrics

RECENT_REQUESTS = 100_000  # server-side timing records kept for tests and debugging
CPU_CHUNK_ITERATIONS = 2_000  # ~50-100 us of work between clock reads


def burn_cpu(seconds: float) -> float:
    """Busy-loop until this thread has used `seconds` of CPU time; return what it used.

    Measured with time.thread_time, so time the OS gives to other processes on a
    busy machine does not count: the request really costs `seconds` of CPU.
    """
    if seconds <= 0:
        return 0.0
    start = time.thread_time()
    end = start + seconds
    x = 0
    while True:
        for i in range(CPU_CHUNK_ITERATIONS):
            x ^= i * i
        now = time.thread_time()
        if now >= end:
            return now - start


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the server did with one request, in loop-clock seconds (time.monotonic)."""

    endpoint: str
    status: int
    arrived_s: float
    admitted_s: float  # after stall hold and queue
    stall_s: float  # hold a stall imposed: arrived_s + stall_s is the stall's end
    cpu_s: float  # thread CPU burnt
    delay_s: float  # /respond: sampled latency; chat: sampled TTFT
    output_tokens: int  # chat only
    finished_s: float


@dataclass
class AgentState:
    """Everything one Alice app holds; reach it with `agent_state(app)`."""

    config: AgentConfig
    model: FaqModel
    seed: int
    metrics: AgentMetrics = field(default_factory=AgentMetrics)
    started_s: float = 0.0  # loop time at start-up; stalls and readiness count from here
    records: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=RECENT_REQUESTS))
    limiter: Limiter | None = None
    replicas: int = 1  # the replicas Alice stands for (surge.agent.replicas); 1 unless followed
    rngs: dict[str, np.random.Generator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # One independent stream per purpose: changing error_rate does not shift
        # the latency sequence of a seeded run.
        names = ("latency", "error", "tokens", "ttft")
        children = np.random.SeedSequence(self.seed).spawn(len(names))
        self.rngs = {n: np.random.default_rng(s) for n, s in zip(names, children, strict=True)}


STATE: web.AppKey[AgentState] = web.AppKey("alice_state", AgentState)


def agent_state(app: web.Application) -> AgentState:
    """The state of an app made by build_app (metrics, recent RequestRecords, config)."""
    return app[STATE]


@dataclass
class Ticket:
    """One admitted request's progress through the pipeline."""

    endpoint: str
    arrived_s: float
    admitted_s: float = 0.0
    stall_s: float = 0.0
    cpu_s: float = 0.0
    delay_s: float = 0.0
    output_tokens: int = 0
    fail: bool = False


@contextlib.asynccontextmanager
async def pipeline(state: AgentState, endpoint: str) -> AsyncIterator[Ticket | None]:
    """Stall, admit, burn CPU; yields None when the queue is full (caller answers 503)."""
    loop = asyncio.get_running_loop()
    cfg = state.config
    m = state.metrics
    ticket = Ticket(endpoint, loop.time())
    m.in_flight.inc()
    admitted = False
    try:
        hold = stall_wait_s(ticket.arrived_s - state.started_s, cfg.stall_every_s, cfg.stall_for_s)
        if hold > 0:
            ticket.stall_s = hold
            await asyncio.sleep(hold)
        limiter = state.limiter
        assert limiter is not None, "the app was not started by a runner"
        queued_s = loop.time()
        m.queued.inc()
        try:
            admitted = await limiter.acquire()
        finally:
            m.queued.dec()
        if not admitted:
            yield None
            return
        ticket.admitted_s = loop.time()
        m.slots_busy.inc()
        m.queue_wait_seconds.observe(ticket.admitted_s - queued_s)
        ticket.cpu_s = burn_cpu(cfg.cpu_ms / 1000.0)
        m.busy_cpu.inc(ticket.cpu_s)
        ticket.fail = cfg.error_rate > 0 and float(state.rngs["error"].random()) < cfg.error_rate
        yield ticket
    finally:
        if admitted and state.limiter is not None:
            state.limiter.release()
            m.slots_busy.dec()
        m.in_flight.dec()


def finish(state: AgentState, ticket: Ticket, status: int) -> None:
    """Count the answer in the metrics and keep its RequestRecord."""
    now = asyncio.get_running_loop().time()
    m = state.metrics
    m.requests.labels(ticket.endpoint, str(status)).inc()
    m.request_seconds.labels(ticket.endpoint).observe(now - ticket.arrived_s)
    state.records.append(
        RequestRecord(
            endpoint=ticket.endpoint,
            status=status,
            arrived_s=ticket.arrived_s,
            admitted_s=ticket.admitted_s or now,
            stall_s=ticket.stall_s,
            cpu_s=ticket.cpu_s,
            delay_s=ticket.delay_s,
            output_tokens=ticket.output_tokens,
            finished_s=now,
        )
    )
