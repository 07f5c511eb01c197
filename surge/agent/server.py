"""Alice's HTTP server (aiohttp): a support agent with known, tunable behaviour.

Endpoints: POST /respond, POST /v1/chat/completions (OpenAI-compatible, streaming
or not), GET /healthz, /readyz, /metrics. Every work request goes through the same
pipeline, timed from its arrival at the handler:

    stall hold -> admission (concurrency limit + queue, else 503)
      -> CPU burn (cpu_ms of this thread's CPU, on the event loop)
      -> endpoint work (/respond: latency sleep; chat: TTFT + TPOT schedule)
      -> HTTP 500 instead of the answer for an error_rate fraction.

The CPU burn runs on the event loop on purpose. Python CPU work holds the GIL,
so a thread pool would add no parallelism, only thread switches; blocking the
loop is what a CPU-bound Python agent really does, and it caps one process at
one core, which is what makes CPU utilisation a truthful HPA signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import Any

import numpy as np
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from surge.agent import stream
from surge.agent.config import AgentConfig
from surge.agent.faq import FaqModel, build_model
from surge.agent.latency import sample_latency_s, sample_tokens, stall_wait_s

log = logging.getLogger("surge.agent")

LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
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


class _ProcessCpu(Collector):
    """alice_cpu_seconds_total: process CPU (user+system, all threads), read at scrape."""

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "alice_cpu_seconds", "CPU time used by the Alice process (user+system)."
        )
        family.add_metric([], time.process_time())
        yield family


class AgentMetrics:
    """Alice's Prometheus metrics, on a registry of their own (never the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            "alice_request_duration_seconds",
            "Time from arrival at the handler to the last byte, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.requests = Counter(
            "alice_requests", "Requests by endpoint and HTTP status.", ["endpoint", "status"],
            registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "alice_requests_in_flight", "Requests inside the server, queued ones included.",
            registry=r,
        )  # fmt: skip
        self.queued = Gauge(
            "alice_requests_queued", "Requests waiting for a concurrency slot.", registry=r
        )
        self.busy_cpu = Counter(
            "alice_busy_cpu_seconds", "CPU time burnt by the configured per-request work.",
            registry=r,
        )  # fmt: skip
        self.output_tokens = Counter(
            "alice_output_tokens", "Completion tokens sent by /v1/chat/completions.", registry=r
        )
        r.register(_ProcessCpu())
        ProcessCollector(registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Limiter:
    """At most `limit` requests at once (0 = unlimited) and `queue_size` waiting, FIFO.

    A released slot is handed straight to the oldest waiter, so a new arrival can
    never overtake the queue.
    """

    def __init__(self, limit: int, queue_size: int) -> None:
        self.limit = limit
        self.queue_size = queue_size
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> bool:
        """Take a slot, waiting in line if needed; False at once when the queue is full."""
        if self.limit == 0 or (self.active < self.limit and not self._waiters):
            self.active += 1
            return True
        if len(self._waiters) >= self.queue_size:
            return False
        slot = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self.release()  # the slot arrived as we were cancelled: pass it on
            elif slot in self._waiters:
                self._waiters.remove(slot)
            raise
        return True

    def release(self) -> None:
        while self._waiters:
            slot = self._waiters.popleft()
            if not slot.done():
                slot.set_result(None)  # the slot moves to the waiter; active is unchanged
                return
        self.active -= 1


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


def _json_error(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status)


@dataclass
class _Ticket:
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
async def _pipeline(state: AgentState, endpoint: str) -> AsyncIterator[_Ticket | None]:
    """Stall, admit, burn CPU; yields None when the queue is full (caller answers 503)."""
    loop = asyncio.get_running_loop()
    cfg = state.config
    m = state.metrics
    ticket = _Ticket(endpoint, loop.time())
    m.in_flight.inc()
    admitted = False
    try:
        hold = stall_wait_s(ticket.arrived_s - state.started_s, cfg.stall_every_s, cfg.stall_for_s)
        if hold > 0:
            ticket.stall_s = hold
            await asyncio.sleep(hold)
        limiter = state.limiter
        assert limiter is not None, "the app was not started by a runner"
        m.queued.inc()
        try:
            admitted = await limiter.acquire()
        finally:
            m.queued.dec()
        if not admitted:
            yield None
            return
        ticket.admitted_s = loop.time()
        ticket.cpu_s = burn_cpu(cfg.cpu_ms / 1000.0)
        m.busy_cpu.inc(ticket.cpu_s)
        ticket.fail = cfg.error_rate > 0 and float(state.rngs["error"].random()) < cfg.error_rate
        yield ticket
    finally:
        if admitted and state.limiter is not None:
            state.limiter.release()
        m.in_flight.dec()


def _finish(state: AgentState, ticket: _Ticket, status: int) -> None:
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


async def _sleep_until(deadline_s: float) -> None:
    """Sleep to an absolute loop-clock deadline (no drift from cumulative sleeps)."""
    delay = deadline_s - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _read_json(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


async def handle_respond(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await _read_json(request)
    query = body.get("query") if body else None
    if not isinstance(query, str):
        state.metrics.requests.labels("respond", "400").inc()
        return _json_error(400, 'body must be JSON {"query": "..."}', "invalid_request_error")
    async with _pipeline(state, "respond") as ticket:
        if ticket is None:
            state.metrics.requests.labels("respond", "503").inc()
            return _json_error(503, "queue full", "overloaded")
        answer = state.model.answer(query)
        ticket.delay_s = sample_latency_s(state.config.latency, state.rngs["latency"])
        await asyncio.sleep(ticket.delay_s)
        headers = {"X-Alice-Delay-Ms": f"{ticket.delay_s * 1000:.3f}"}
        if ticket.fail:
            _finish(state, ticket, 500)
            return web.json_response(
                {"error": {"message": "injected error", "type": "server_error", "code": 500}},
                status=500,
                headers=headers,
            )
        _finish(state, ticket, 200)
        return web.json_response(
            {
                "answer": answer.answer,
                "faq_id": answer.id,
                "score": round(answer.score, 4),
                "delay_ms": round(ticket.delay_s * 1000, 3),
                "cpu_ms": round(ticket.cpu_s * 1000, 3),
            },
            headers=headers,
        )


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


async def handle_chat(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await _read_json(request)
    messages = body.get("messages") if body else None
    max_tokens = _max_tokens(body) if body else None
    if (
        body is None
        or not isinstance(messages, list)
        or not all(isinstance(m, dict) for m in messages)
        or (max_tokens is not None and max_tokens < 1)
    ):
        state.metrics.requests.labels("chat", "400").inc()
        return _json_error(
            400,
            "need messages: a list of {role, content}; max_tokens >= 1",
            "invalid_request_error",
        )
    streaming = bool(body.get("stream", False))
    options = body.get("stream_options")
    with_usage = streaming and isinstance(options, dict) and bool(options.get("include_usage"))
    model_name = str(body.get("model") or "alice")
    async with _pipeline(state, "chat") as ticket:
        if ticket is None:
            state.metrics.requests.labels("chat", "503").inc()
            return _json_error(503, "queue full", "overloaded")
        return await _complete(
            request, state, ticket, messages, max_tokens, streaming, with_usage, model_name
        )


async def _complete(
    request: web.Request,
    state: AgentState,
    ticket: _Ticket,
    messages: Sequence[dict[str, Any]],
    max_tokens: int | None,
    streaming: bool,
    with_usage: bool,
    model_name: str,
) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    cfg = state.config
    t0 = loop.time()  # generation starts once admitted and the CPU work is done
    planned = sample_tokens(cfg.output_tokens, state.rngs["tokens"])
    n = min(planned, max_tokens) if max_tokens is not None else planned
    finish_reason = "length" if n < planned else "stop"
    ttft_s = sample_latency_s(cfg.ttft, state.rngs["ttft"])
    ticket.delay_s = ttft_s
    answer = state.model.answer(stream.last_user_text(messages))
    tokens = stream.output_tokens(answer.answer, n)
    prompt_tokens = stream.count_prompt_tokens(messages)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    headers = {"X-Alice-Ttft-Ms": f"{ttft_s * 1000:.3f}", "X-Alice-Faq-Id": answer.id}

    if ticket.fail:
        await _sleep_until(t0 + ttft_s)
        _finish(state, ticket, 500)
        return _json_error(500, "injected error", "server_error")

    if not streaming:
        # The whole answer is ready when its last token would have been streamed.
        await _sleep_until(t0 + ttft_s + (n - 1) * cfg.tpot_s)
        ticket.output_tokens = n
        state.metrics.output_tokens.inc(n)
        _finish(state, ticket, 200)
        text = "".join(tokens).lstrip()
        completion = stream.completion_body(
            completion_id, created, model_name, text, finish_reason, prompt_tokens, n
        )
        return web.json_response(completion, headers=headers)

    response = web.StreamResponse(
        headers={
            **headers,
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await response.write(
            stream.sse(stream.role_chunk(completion_id, created, model_name, with_usage=with_usage))
        )
        for i, token in enumerate(tokens):
            # Absolute deadlines: a late token does not push the later ones back.
            await _sleep_until(t0 + ttft_s + i * cfg.tpot_s)
            chunk = stream.content_chunk(
                completion_id, created, model_name, token, with_usage=with_usage
            )
            await response.write(stream.sse(chunk))
            ticket.output_tokens += 1
        await response.write(
            stream.sse(
                stream.finish_chunk(
                    completion_id, created, model_name, finish_reason, with_usage=with_usage
                )
            )
        )
        if with_usage:
            await response.write(
                stream.sse(stream.usage_chunk(completion_id, created, model_name, prompt_tokens, n))
            )
        await response.write(stream.DONE)
        await response.write_eof()
    except ConnectionResetError:
        # The client went away mid-stream; 499 is nginx's name for that.
        state.metrics.output_tokens.inc(ticket.output_tokens)
        _finish(state, ticket, 499)
        return response
    state.metrics.output_tokens.inc(ticket.output_tokens)
    _finish(state, ticket, 200)
    return response


async def handle_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def handle_readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    elapsed = asyncio.get_running_loop().time() - state.started_s
    remaining = state.config.ready_delay_s - elapsed
    if remaining > 0:
        return web.json_response(
            {"status": "warming up", "ready_in_s": round(remaining, 3)}, status=503
        )
    return web.json_response({"status": "ready"})


async def handle_metrics(request: web.Request) -> web.Response:
    body = request.app[STATE].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _on_startup(app: web.Application) -> None:
    state = app[STATE]
    state.started_s = asyncio.get_running_loop().time()
    state.limiter = Limiter(state.config.max_concurrency, state.config.queue_size)


def build_app(config: AgentConfig, *, model: FaqModel | None = None) -> web.Application:
    """A ready-to-run Alice app. The FAQ model trains here (milliseconds for "faq").

    Stall windows and the readiness delay count from the app's start-up (when a
    runner starts it), not from this call. Raises RuntimeError when
    `config.model == "transformer"` and sentence-transformers is missing.
    """
    seed = config.seed if config.seed is not None else secrets.randbits(63)
    state = AgentState(
        config=config,
        model=model or build_model(config.model, config.transformer_model),
        seed=seed,
    )
    app = web.Application(client_max_size=1024**2)
    app[STATE] = state
    app.on_startup.append(_on_startup)
    app.router.add_post("/respond", handle_respond)
    app.router.add_post("/v1/chat/completions", handle_chat)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)
    app.router.add_get("/metrics", handle_metrics)
    return app


def _url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def running_app(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    shutdown_timeout_s: float = 2.0,
) -> AsyncIterator[str]:
    """Serve `app` on host:port (0 = an ephemeral port) and yield its base URL.

    On exit, in-flight requests get `shutdown_timeout_s` to finish.
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        yield _url(host, bound_port)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_agent(
    config: AgentConfig, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Run Alice in this event loop on an ephemeral loopback port; yield its base URL."""
    async with running_app(build_app(config), host, port) as url:
        yield url


async def serve(config: AgentConfig) -> None:
    """Run until SIGINT/SIGTERM: the body of `surge demo-agent`.

    Prints one JSON line to stdout, {"event": "listening", "url": ...}, once bound
    (start_agent_process reads it); everything else goes to the log (stderr).
    """
    import signal

    app = build_app(config)
    state = app[STATE]
    log.info(json.dumps({"event": "config", "seed": state.seed, **config.summary()}, default=str))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_app(app, config.host, config.port, shutdown_timeout_s=10.0) as url:
        print(json.dumps({"event": "listening", "url": url}), flush=True)
        log.info(json.dumps({"event": "listening", "url": url}))
        await stop.wait()
        log.info(json.dumps({"event": "stopping"}))


def _wait_healthy(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1.0) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    return False


def start_agent_process(
    args: Sequence[str] = (),
    *,
    timeout_s: float = 20.0,
    stderr: int | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m surge.agent ARGS` and return (process, base_url) once /healthz is 200.

    `args` are demo-agent flags; without --port the agent binds an ephemeral port.
    stderr (the agent's log) is inherited unless given (e.g. subprocess.DEVNULL).
    Raises RuntimeError (after killing the process) when it is not healthy in time.
    Stop it with stop_agent_process.
    """
    argv = list(args)
    if not any(a == "--port" or a.startswith("--port=") for a in argv):
        argv += ["--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "surge.agent", *argv],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    lines: Queue[str] = Queue()

    def pump() -> None:
        # Reads the one "listening" line, then keeps the pipe drained.
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    url = ""
    while not url and time.monotonic() < deadline and proc.poll() is None:
        try:
            event = json.loads(lines.get(timeout=0.1))
        except Empty:
            continue
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("event") == "listening":
            url = str(event["url"])
    if not url or not _wait_healthy(url, deadline):
        stop_agent_process(proc)
        raise RuntimeError(f"demo agent did not become healthy within {timeout_s}s: {argv}")
    return proc, url


def stop_agent_process(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after timeout_s; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode if proc.returncode is not None else -1
