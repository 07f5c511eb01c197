"""--replicas-file, the test device by which one Alice stands for a Deployment of simulated pods:
her slots follow gpu_slots × the replica count a follower writes (docs/agent.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from surge.agent.latency import parse_latency
from surge.agent.replicas import REPLICAS_POLL_S, parse_replicas
from surge.agent.server import build_app, running_app
from tests.agent.conftest import alice, quiet_config


async def _gauges(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url + "/metrics") as r:
        text = await r.text()
    return {
        s.name: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name in ("alice_slots", "alice_slots_busy", "alice_requests_queued", "alice_replicas")
    }


async def _until(
    session: aiohttp.ClientSession, url: str, want: Mapping[str, float]
) -> dict[str, float]:
    """Scrape until the gauges in `want` hold those values, for at most 20 file polls."""
    for _ in range(80):
        g = await _gauges(session, url)
        if all(g[k] == v for k, v in want.items()):
            return g
        await asyncio.sleep(REPLICAS_POLL_S / 4)
    return g


async def test_slots_follow_the_replica_count(tmp_path: Path) -> None:
    path = tmp_path / "replicas"
    path.write_text("1\n")
    config = quiet_config(
        gpu_slots=2, latency=parse_latency("fixed:2s"), queue_size=16, replicas_file=str(path)
    )
    async with alice(config) as (url, _state, session):
        assert await _gauges(session, url) == {
            "alice_slots": 2, "alice_slots_busy": 0, "alice_requests_queued": 0,
            "alice_replicas": 1,
        }  # fmt: skip
        body = {"query": "where is my order"}
        tasks = [asyncio.create_task(session.post(url + "/respond", json=body)) for _ in range(7)]
        one = {"alice_slots_busy": 2, "alice_requests_queued": 5}
        assert (await _until(session, url, one)).items() >= one.items()
        # Three replicas: 6 slots, and the queued requests take the new ones at once.
        path.write_text("3")
        three = {"alice_replicas": 3, "alice_slots": 6, "alice_slots_busy": 6}
        assert await _until(session, url, three) == {**three, "alice_requests_queued": 1}
        # Down to none: the 6 admitted finish their work, no one else is admitted.
        path.write_text("0")
        zero = {"alice_replicas": 0, "alice_slots": 0}
        assert await _until(session, url, zero) == {
            **zero, "alice_slots_busy": 6, "alice_requests_queued": 1,
        }  # fmt: skip
        # A half-written file keeps the last count.
        path.write_text("")
        await asyncio.sleep(3 * REPLICAS_POLL_S)
        assert (await _gauges(session, url))["alice_slots"] == 0
        path.write_text("1")
        responses = await asyncio.gather(*tasks)
        assert [r.status for r in responses] == [200] * 7
        for r in responses:
            r.release()


@pytest.mark.parametrize(
    ("text", "error"),
    [("", "expected a replica count"), ("two", "expected a replica count"), ("-1", "outside")],
)
def test_parse_replicas_names_the_file(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error) as info:
        parse_replicas(text, "/tmp/r")
    assert "/tmp/r" in str(info.value)


async def test_missing_file_fails_start_up(tmp_path: Path) -> None:
    config = quiet_config(gpu_slots=2, replicas_file=str(tmp_path / "none"))
    with pytest.raises(RuntimeError, match="--replicas-file"):
        async with running_app(build_app(config)):
            pass


def test_replicas_file_needs_gpu_slots() -> None:
    with pytest.raises(ValueError, match="replicas_file needs gpu_slots"):
        quiet_config(replicas_file="/tmp/r")
