"""Alice's admission control: a concurrency limit with a bounded FIFO queue."""

from __future__ import annotations

import asyncio
from collections import deque


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
