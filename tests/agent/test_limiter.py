"""The concurrency limiter: a slot limit, a bounded FIFO queue, clean cancellation."""

from __future__ import annotations

import asyncio

import pytest

from surge.agent.limiter import Limiter


async def test_unlimited() -> None:
    limiter = Limiter(0, 0)
    assert all([await limiter.acquire() for _ in range(100)])
    assert limiter.active == 100


async def test_queue_is_fifo_and_bounded() -> None:
    limiter = Limiter(1, 2)
    assert await limiter.acquire()
    order: list[int] = []

    async def wait(i: int) -> None:
        assert await limiter.acquire()
        order.append(i)

    tasks = [asyncio.create_task(wait(i)) for i in range(2)]
    await asyncio.sleep(0)
    assert limiter.waiting == 2
    assert not await limiter.acquire()  # queue full: refused at once
    limiter.release()
    await asyncio.sleep(0)
    # A newcomer cannot overtake: the freed slot went to waiter 0.
    assert order == [0]
    late = asyncio.create_task(wait(9))
    await asyncio.sleep(0)
    limiter.release()
    await asyncio.sleep(0)
    limiter.release()
    await asyncio.gather(*tasks, late)
    assert order == [0, 1, 9]
    assert limiter.active == 1


async def test_cancelled_waiter_leaves_the_queue() -> None:
    limiter = Limiter(1, 5)
    assert await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert limiter.waiting == 0
    limiter.release()
    assert limiter.active == 0


async def test_more_slots_admit_the_oldest_waiters_at_once() -> None:
    limiter = Limiter(1, 10)
    assert await limiter.acquire()
    order: list[int] = []

    async def wait(i: int) -> None:
        assert await limiter.acquire()
        order.append(i)

    tasks = [asyncio.create_task(wait(i)) for i in range(4)]
    await asyncio.sleep(0)
    limiter.set_limit(3)  # two more slots: waiters 0 and 1, in their order
    await asyncio.sleep(0)
    assert (order, limiter.active, limiter.waiting) == ([0, 1], 3, 2)
    limiter.set_limit(10)
    await asyncio.gather(*tasks)
    assert (order, limiter.active, limiter.waiting) == ([0, 1, 2, 3], 5, 0)


async def test_fewer_slots_take_effect_as_requests_finish() -> None:
    limiter = Limiter(3, 10)
    assert all([await limiter.acquire() for _ in range(3)])
    limiter.set_limit(1)
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert limiter.waiting == 1  # 3 active, limit 1: the newcomer waits
    limiter.release()
    limiter.release()
    await asyncio.sleep(0)
    assert (limiter.active, limiter.waiting) == (1, 1)  # still at the limit
    limiter.release()
    assert await waiter
    assert (limiter.active, limiter.waiting) == (1, 0)


async def test_zero_slots_queue_every_arrival_until_slots_come() -> None:
    limiter = Limiter(2, 5)
    limiter.set_limit(0)
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(5)]
    await asyncio.sleep(0)
    assert (limiter.active, limiter.waiting) == (0, 5)
    assert not await limiter.acquire()  # the queue bound still holds
    limiter.set_limit(5)
    assert all(await asyncio.gather(*waiters))
    assert limiter.active == 5


def test_set_limit_refuses_an_unlimited_limiter_and_negatives() -> None:
    with pytest.raises(ValueError, match="unlimited"):
        Limiter(0, 0).set_limit(3)
    with pytest.raises(ValueError, match=">= 0"):
        Limiter(2, 0).set_limit(-1)
