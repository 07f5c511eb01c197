"""Alice's admission control: a concurrency limit with a bounded FIFO queue."""

from __future__ import annotations

import asyncio
from collections import deque


class Limiter:
    """At most `limit` requests at once (0 = unlimited) and `queue_size` waiting, FIFO.

    A freed slot goes straight to the oldest waiter, so a new arrival can never overtake
    the queue. A limited limiter's slot count can change while it serves (`set_limit`:
    Alice following a Deployment's replicas, docs/agent.md).
    """

    def __init__(self, limit: int, queue_size: int) -> None:
        self.unlimited = limit == 0
        self.limit = limit
        self.queue_size = queue_size
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def set_limit(self, limit: int) -> None:
        """Serve `limit` requests at once from now on (0: none, every arrival waits).

        More slots go to the oldest waiters at once; with fewer, requests past the new
        limit finish their work and no one is admitted until `active` is below it."""
        if self.unlimited:
            raise ValueError("an unlimited limiter (limit 0) has no slot count to change")
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        self.limit = limit
        self._admit()

    async def acquire(self) -> bool:
        """Take a slot, waiting in line if needed; False at once when the queue is full."""
        if self.unlimited or (self.active < self.limit and not self._waiters):
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
        self.active -= 1
        self._admit()

    def _admit(self) -> None:
        while self._waiters and (self.unlimited or self.active < self.limit):
            slot = self._waiters.popleft()
            if not slot.done():
                self.active += 1  # the slot is the waiter's from now, before it wakes
                slot.set_result(None)
