"""The concurrency limiter: a slot limit, a bounded FIFO queue, clean cancellation."""

from __future__ import annotations

import asyncio

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
