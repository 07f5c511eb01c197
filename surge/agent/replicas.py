"""A test device: Alice's slots follow a Deployment's replica count, read from a file.

In the e2e tests the target Deployment's pods are KWOK pods (no process behind them) and the
load goes to one real Alice. For an autoscaler's decisions to change what the load meets,
that Alice stands for the whole Deployment: with `--replicas-file PATH --gpu-slots N` she
serves N × (the count in PATH) requests at once. A follower (tests/support/replica_follower.py)
writes the Deployment's ready replicas there. Off by default (docs/agent.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from surge.agent.pipeline import AgentState

log = logging.getLogger("surge.agent")

REPLICAS_POLL_S = 0.25
"""How often Alice re-reads the replicas file: a quarter of the e2e scrape interval."""
MAX_REPLICAS = 10_000


def parse_replicas(text: str, path: str) -> int:
    """The file's content, one integer in 0..MAX_REPLICAS. Raises ValueError naming the file."""
    try:
        n = int(text.strip())
    except ValueError:
        raise ValueError(
            f"{path}: expected a replica count (one integer), got {text.strip()[:40]!r}"
        ) from None
    if not 0 <= n <= MAX_REPLICAS:
        raise ValueError(f"{path}: replica count {n} is outside 0..{MAX_REPLICAS}")
    return n


def read_replicas(path: str) -> int:
    """Read and parse the file. Raises ValueError (bad content) or OSError (unreadable)."""
    return parse_replicas(Path(path).read_text(), path)


def apply_replicas(state: AgentState, replicas: int) -> None:
    """Set the slots to gpu_slots × replicas (freed slots go to the oldest waiters)."""
    assert state.limiter is not None, "the app was not started by a runner"
    if replicas != state.replicas:
        log.info(json.dumps({"event": "replicas", "replicas": replicas}))
    state.replicas = replicas
    slots = state.config.gpu_slots * replicas
    state.limiter.set_limit(slots)
    state.metrics.slots.set(slots)
    state.metrics.replicas.set(replicas)


async def _follow(state: AgentState, path: str) -> None:
    warned = False
    while True:
        await asyncio.sleep(REPLICAS_POLL_S)
        try:
            replicas = read_replicas(path)
        except (OSError, ValueError) as exc:
            # A half-written or vanished file keeps the last count (logged once a streak).
            if not warned:
                log.warning(json.dumps({"event": "replicas-file", "error": str(exc)}))
                warned = True
            continue
        warned = False
        apply_replicas(state, replicas)


@contextlib.asynccontextmanager
async def following_replicas(state: AgentState) -> AsyncIterator[None]:
    """With config.replicas_file: read it once (start-up fails on a missing or bad file: no
    silent default), then follow it until exit. Without: nothing."""
    path = state.config.replicas_file
    if path is None:
        yield
        return
    try:
        replicas = read_replicas(path)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"--replicas-file {exc}") from None
    apply_replicas(state, replicas)
    task = asyncio.create_task(_follow(state, path))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
