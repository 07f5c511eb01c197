"""GPU-slots mode: N slots with a fixed service time queue like D/D/N and M/D/N servers, as the
server's own metrics (what an autoscaler reads) and records show.

Oracle: the FIFO N-server recursion (Kiefer-Wolfowitz): request i, arriving at a_i, starts at
max(a_i, earliest slot free time) and frees that slot s_i later. Real service takes D plus a
little scheduling, which accumulates over a busy period; so the Poisson test checks each service
time against D, and each wait against the recursion fed with the services as measured.
"""

from __future__ import annotations

import asyncio
import heapq

import aiohttp
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from surge.agent.latency import parse_latency
from tests.agent.conftest import alice, quiet_config


def fifo_waits(arrivals_s: list[float], slots: int, services_s: list[float]) -> list[float]:
    """Queue wait of each arrival (sorted) at a FIFO server with `slots` slots."""
    free = [0.0] * slots
    waits = []
    for a, service in zip(arrivals_s, services_s, strict=True):
        start = max(a, heapq.heappop(free))
        heapq.heappush(free, start + service)
        waits.append(start - a)
    return waits


def test_fifo_waits_oracle() -> None:
    # 2 slots, 1 s service, 4 arrivals at 0: waits 0, 0, 1, 1; a late one waits for nothing.
    assert fifo_waits([0, 0, 0, 0, 5], 2, [1.0] * 5) == [0, 0, 1, 1, 0]
    assert fifo_waits([0, 0.5, 0.6], 1, [1.0, 1.0, 1.0]) == [0, 0.5, 1.4]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def _scrape(
    session: aiohttp.ClientSession, url: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with session.get(url + "/metrics") as r:
        return _samples(await r.text())


async def _respond(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url + "/respond", json={"query": "where is my order"}) as r:
        await r.read()
        return r.status


async def test_burst_queues_in_waves_of_n_slots() -> None:
    """D/D/N: 9 requests at once on 3 slots of 300 ms answer in 3 waves: 300, 600, 900 ms."""
    config = quiet_config(gpu_slots=3, latency=parse_latency("fixed:300ms"), queue_size=16)
    async with alice(config) as (url, _state, session):
        tasks = [asyncio.create_task(_respond(session, url)) for _ in range(9)]
        for _ in range(100):  # all 9 inside: nothing can finish before 300 ms
            m = await _scrape(session, url)
            if m[("alice_requests_in_flight", ())] == 9:
                break
            await asyncio.sleep(0.005)
        assert m[("alice_slots", ())] == 3
        assert m[("alice_slots_busy", ())] == 3
        assert m[("alice_requests_queued", ())] == 6
        assert await asyncio.gather(*tasks) == [200] * 9
        m = await _scrape(session, url)
    latency = {
        le: m[("alice_request_duration_seconds_bucket", (("endpoint", "respond"), ("le", le)))]
        for le in ("0.25", "0.5", "0.75", "1.0")
    }
    assert latency == {"0.25": 0, "0.5": 3, "0.75": 6, "1.0": 9}
    waits = ("0.1", "0.5", "0.75")
    wait = {le: m[("alice_queue_wait_seconds_bucket", (("le", le),))] for le in waits}
    assert wait == {"0.1": 3, "0.5": 6, "0.75": 9}
    assert (m[("alice_slots_busy", ())], m[("alice_requests_queued", ())]) == (0, 0)
    # No CPU of its own: a GPU-slot request burns none.
    assert m[("alice_busy_cpu_seconds_total", ())] == 0


async def test_poisson_arrivals_wait_as_m_d_n_predicts() -> None:
    """M/D/4 at load 0.8 (lambda 64/s, D 50 ms): each measured wait follows the recursion."""
    slots, service_s, rate, n = 4, 0.05, 64.0, 120
    gaps = np.random.default_rng(7).exponential(1 / rate, n)
    config = quiet_config(gpu_slots=slots, latency=parse_latency("fixed:50ms"), queue_size=n)
    async with alice(config) as (url, state, session):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tasks = []
        for due in np.cumsum(gaps):
            await asyncio.sleep(max(0.0, t0 + float(due) - loop.time()))
            tasks.append(asyncio.create_task(_respond(session, url)))
        assert await asyncio.gather(*tasks) == [200] * n
        m = await _scrape(session, url)
    records = sorted(state.records, key=lambda r: r.arrived_s)
    assert len(records) == n
    services = [r.finished_s - r.admitted_s for r in records]
    # Never early; late by the event loop's scheduling only (the median, as a loaded CI
    # machine can delay a few by tens of ms).
    assert min(services) >= service_s - 0.001
    assert float(np.median(services)) < service_s + 0.02, services
    ideal = fifo_waits([r.arrived_s for r in records], slots, [service_s] * n)
    assert sum(ideal) > 0.2  # this seed queues even at exactly D: not a check of an idle server
    predicted = fifo_waits([r.arrived_s for r in records], slots, services)
    measured = [r.admitted_s - r.arrived_s for r in records]
    # A freed slot passes to the next in line at the loop's next turn: late by the loop's lag.
    late = [got - want for want, got in zip(predicted, measured, strict=True)]
    assert min(late) >= -0.001, late
    assert max(late) < 0.05 and float(np.mean(late)) < 0.01, late
    # The histogram an autoscaler reads holds the same waits.
    assert m[("alice_queue_wait_seconds_count", ())] == n
    assert abs(m[("alice_queue_wait_seconds_sum", ())] - sum(measured)) < 0.001 * n
