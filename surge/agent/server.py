"""Alice's HTTP server (aiohttp): the endpoints, and the app that serves them.

Endpoints: POST /respond, POST /v1/chat/completions (OpenAI-compatible, streaming
or not), GET /healthz, /readyz, /metrics. Every work request goes through the same
pipeline (surge.agent.pipeline), timed from its arrival at the handler:

    stall hold -> admission (concurrency limit + queue, else 503)
      -> CPU burn (cpu_ms of this thread's CPU, on the event loop)
      -> endpoint work (/respond: latency sleep; chat: TTFT + TPOT schedule)
      -> HTTP 500 instead of the answer for an error_rate fraction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from surge.agent import stream
from surge.agent.config import AgentConfig
from surge.agent.faq import FaqModel, build_model
from surge.agent.latency import sample_latency_s, sample_tokens
from surge.agent.limiter import Limiter
from surge.agent.pipeline import STATE, AgentState, Ticket, finish, pipeline
from surge.agent.replicas import following_replicas

log = logging.getLogger("surge.agent")


def _json_error(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status)


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
    async with pipeline(state, "respond") as ticket:
        if ticket is None:
            state.metrics.requests.labels("respond", "503").inc()
            return _json_error(503, "queue full", "overloaded")
        answer = state.model.answer(query)
        ticket.delay_s = sample_latency_s(state.config.latency, state.rngs["latency"])
        await asyncio.sleep(ticket.delay_s)
        headers = {"X-Alice-Delay-Ms": f"{ticket.delay_s * 1000:.3f}"}
        if ticket.fail:
            finish(state, ticket, 500)
            return web.json_response(
                {"error": {"message": "injected error", "type": "server_error", "code": 500}},
                status=500,
                headers=headers,
            )
        finish(state, ticket, 200)
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
    async with pipeline(state, "chat") as ticket:
        if ticket is None:
            state.metrics.requests.labels("chat", "503").inc()
            return _json_error(503, "queue full", "overloaded")
        return await _complete(
            request, state, ticket, messages, max_tokens, streaming, with_usage, model_name
        )


async def _complete(
    request: web.Request,
    state: AgentState,
    ticket: Ticket,
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
        finish(state, ticket, 500)
        return _json_error(500, "injected error", "server_error")

    if not streaming:
        # The whole answer is ready when its last token would have been streamed.
        await _sleep_until(t0 + ttft_s + (n - 1) * cfg.tpot_s)
        ticket.output_tokens = n
        state.metrics.output_tokens.inc(n)
        finish(state, ticket, 200)
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
            state.metrics.output_tokens.inc()  # as sent, so rate() is tokens/s over any window
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
        finish(state, ticket, 499)
        return response
    finish(state, ticket, 200)
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


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Start-up (the clock stalls and readiness count from, the limiter), then, with
    --replicas-file, following the replica count until the app stops."""
    state = app[STATE]
    state.started_s = asyncio.get_running_loop().time()
    state.limiter = Limiter(state.config.slots, state.config.queue_size)
    state.metrics.slots.set(state.config.slots)
    async with following_replicas(state):
        yield


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
    app.cleanup_ctx.append(_lifecycle)
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
