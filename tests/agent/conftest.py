"""Helpers for running Alice in the test's own event loop, on loopback only."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp

from surge.agent.config import AgentConfig
from surge.agent.latency import parse_latency
from surge.agent.pipeline import AgentState, agent_state
from surge.agent.server import build_app, running_app


def quiet_config(**overrides: object) -> AgentConfig:
    """No CPU, latency, TTFT or TPOT unless a test asks: each test sets what it checks."""
    base: dict[str, object] = {
        "cpu_ms": 0.0,
        "latency": parse_latency("none"),
        "ttft": parse_latency("none"),
        "tpot_s": 0.0,
        "seed": 1234,
    }
    base.update(overrides)
    return AgentConfig(**base)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def alice(
    config: AgentConfig,
) -> AsyncIterator[tuple[str, AgentState, aiohttp.ClientSession]]:
    """Serve `config` on 127.0.0.1:<ephemeral>; yield (base_url, state, session)."""
    app = build_app(config)
    async with running_app(app) as url, aiohttp.ClientSession() as session:
        yield url, agent_state(app), session
