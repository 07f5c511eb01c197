"""`surge demo-agent`: run Alice. Every flag also reads an ALICE_* env var."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Annotated

import typer

from surge.agent.config import (
    DEFAULT_CPU_MS,
    DEFAULT_LATENCY,
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_TPOT_S,
    DEFAULT_TRANSFORMER_MODEL,
    DEFAULT_TTFT,
    AgentConfig,
    ModelKind,
    default_cpu_ms,
)
from surge.agent.latency import parse_latency, parse_tokens
from surge.api.durations import format_duration, parse_duration


def _duration_s(text: str, flag: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def demo_agent(
    host: Annotated[str, typer.Option(envvar="ALICE_HOST", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="ALICE_PORT", help="Port to bind; 0 picks a free one.")
    ] = 8080,
    cpu_ms: Annotated[
        float | None,
        typer.Option(
            envvar="ALICE_CPU_MS",
            help=f"CPU time burnt per request, in ms [default: {DEFAULT_CPU_MS:g}; 0 with "
            "--gpu-slots].",
            show_default=False,
        ),
    ] = None,
    latency: Annotated[
        str,
        typer.Option(
            envvar="ALICE_LATENCY",
            help="Delay of /respond: none | fixed:50ms | normal:mean=100ms,sd=10ms | "
            "lognormal:median=80ms,sigma=0.5 | pareto:scale=20ms,alpha=1.5[,cap=10s].",
        ),
    ] = DEFAULT_LATENCY,
    stall_every: Annotated[
        str, typer.Option(envvar="ALICE_STALL_EVERY", help="Stall period, e.g. 4s; 0s = off.")
    ] = "0s",
    stall_for: Annotated[
        str, typer.Option(envvar="ALICE_STALL_FOR", help="Stall length, e.g. 1s.")
    ] = "0s",
    max_concurrency: Annotated[
        int,
        typer.Option(envvar="ALICE_MAX_CONCURRENCY", help="Requests served at once; 0 = no limit."),
    ] = 0,
    gpu_slots: Annotated[
        int,
        typer.Option(
            envvar="ALICE_GPU_SLOTS",
            help="GPU-slots mode: N requests at once, each for its latency, with no CPU "
            "(cpu-ms defaults to 0); the rest queue. Replaces --max-concurrency; 0 = off.",
        ),
    ] = 0,
    replicas_file: Annotated[
        str | None,
        typer.Option(
            envvar="ALICE_REPLICAS_FILE",
            help="Test device: stand for a Deployment whose replica count a follower writes "
            "to this file; slots = --gpu-slots × that count (docs/agent.md).",
        ),
    ] = None,
    queue_size: Annotated[
        int,
        typer.Option(envvar="ALICE_QUEUE_SIZE", help="Requests that may wait; more get 503."),
    ] = 128,
    error_rate: Annotated[
        float, typer.Option(envvar="ALICE_ERROR_RATE", help="Fraction answered with HTTP 500.")
    ] = 0.0,
    ready_delay: Annotated[
        str, typer.Option(envvar="ALICE_READY_DELAY", help="/readyz is 503 for this long.")
    ] = "0s",
    ttft: Annotated[
        str,
        typer.Option(envvar="ALICE_TTFT", help="Time to first token (a duration or distribution)."),
    ] = DEFAULT_TTFT,
    tpot: Annotated[
        str, typer.Option(envvar="ALICE_TPOT", help="Time per output token, e.g. 20ms.")
    ] = format_duration(DEFAULT_TPOT_S),
    output_tokens: Annotated[
        str,
        typer.Option(
            envvar="ALICE_OUTPUT_TOKENS", help="fixed:64 | uniform:16-128 (capped by max_tokens)."
        ),
    ] = DEFAULT_OUTPUT_TOKENS,
    seed: Annotated[
        int | None, typer.Option(envvar="ALICE_SEED", help="RNG seed; unset draws and logs one.")
    ] = None,
    model: Annotated[
        str, typer.Option(envvar="ALICE_MODEL", help="faq (TF-IDF) or transformer.")
    ] = "faq",
    transformer_model: Annotated[
        str,
        typer.Option(
            envvar="ALICE_TRANSFORMER_MODEL",
            help="Local sentence-transformers model (name in cache or path).",
        ),
    ] = DEFAULT_TRANSFORMER_MODEL,
) -> None:
    """Run Alice, the demo AI support agent (POST /respond, /v1/chat/completions)."""
    try:
        config = AgentConfig(
            host=host,
            port=port,
            cpu_ms=default_cpu_ms(gpu_slots) if cpu_ms is None else cpu_ms,
            latency=parse_latency(latency),
            stall_every_s=_duration_s(stall_every, "--stall-every"),
            stall_for_s=_duration_s(stall_for, "--stall-for"),
            max_concurrency=max_concurrency,
            gpu_slots=gpu_slots,
            replicas_file=replicas_file,
            queue_size=queue_size,
            error_rate=error_rate,
            ready_delay_s=_duration_s(ready_delay, "--ready-delay"),
            ttft=parse_latency(ttft),
            tpot_s=_duration_s(tpot, "--tpot"),
            output_tokens=parse_tokens(output_tokens),
            seed=seed,
            model=_model_kind(model),
            transformer_model=transformer_model,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    from surge.agent.server import serve  # aiohttp loads only when serving

    asyncio.run(serve(config))


def _model_kind(text: str) -> ModelKind:
    if text == "faq":
        return "faq"
    if text == "transformer":
        return "transformer"
    raise ValueError(f"--model must be faq or transformer, not {text!r}")


def register(app: typer.Typer) -> None:
    """Add `demo-agent` to the surge CLI."""
    app.command("demo-agent")(demo_agent)
