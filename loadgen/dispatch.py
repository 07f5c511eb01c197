"""The open loop's plain-request hot path: a request per arrival without a task.

For the commonest open-loop run (plain requests through the lean HTTP/1.1 client: no
stream, no conversation, no connections cap) the scheduler hands each due arrival to
`Dispatch.send`, which writes the request on an idle keep-alive connection at once. The
connection calls back when the response is complete (one `data_received` parses it,
surge.loadgen.http1_conn), and the callback records the outcome: no Task, coroutine
chain, Future or `asyncio.timeout` per request (each cost more CPU than the request's
own parsing; docs/bench.md). An arrival that finds no idle connection waits for the first
free one (latency counts from its due time all the same); a task opens a connection for
each waiting request at most.

Same behaviour as the task path (surge.loadgen.client.execute), checked by the same
tests: latency from the due time, sent_at/done_at read with time.monotonic() at the
write and at the response's end, the same error classes and details, no retry. The
request timeout counts from the arrival's send, as there: since every request of a run
has the same timeout, deadlines come in send order, so one timer at the oldest pending
deadline serves them all (a FIFO of requests in flight). A request that times out has
its connection closed and is recorded as "timeout".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from surge.loadgen.client import classify
from surge.loadgen.http1 import Http1Client
from surge.loadgen.http1_conn import Conn
from surge.loadgen.outcome import Outcome, status_error
from surge.loadgen.recorder import Recorder
from surge.loadgen.scenario import Prepared, Scenario

_monotonic = time.monotonic


class _Req:
    """One request: the connection's Waiter while on the wire, calling the dispatcher back."""

    __slots__ = ("conn", "d", "due", "finished", "sent")

    def __init__(self, d: Dispatch, due: float, sent: float) -> None:
        self.d = d
        self.due = due
        self.sent = sent
        self.conn: Conn | None = None  # set while on the wire (None: waiting for one)
        self.finished = False

    def done(self) -> bool:
        return False  # the connection resolves it once (it drops its waiter first)

    def set_result(self, status: int, /) -> None:
        self.d._finished(self, status, None)

    def set_exception(self, exception: BaseException, /) -> None:
        self.d._finished(self, 0, exception)


class Dispatch:
    """Sends the scenario's single requests at the arrivals' due times and records them.

    `on_done` is called after each request is recorded (the engine's in-flight count)."""

    def __init__(
        self,
        client: Http1Client,
        scenario: Scenario,
        headers: Callable[[str | None], dict[str, str]],
        recorder: Recorder,
        timeout_s: float,
        on_done: Callable[[], None],
    ) -> None:
        self.client = client
        self.scenario = scenario
        self.headers = headers
        self.recorder = recorder
        self.timeout_s = timeout_s
        self.on_done = on_done
        self._req: Prepared | None = None  # the last request and its bytes
        self._bytes = b""
        self._head_only = False
        self._fifo: deque[_Req] = deque()  # every request not yet finished, in send order
        self._waiting: deque[_Req] = deque()  # sent with no idle connection, oldest first
        self._opening = 0  # connections being opened
        self._timer: asyncio.TimerHandle | None = None
        self.in_flight = 0  # sent, not yet recorded
        self._drained: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()

    def send(self, due: float) -> None:
        """Send one arrival due at `due` (monotonic) now."""
        req = self.scenario.single()
        if req is not self._req:  # a static body: the same object, formatted once
            self._req = req
            self._bytes = self.client.payload(req.method, self.headers(req.content_type), req.body)
            self._head_only = req.method == "HEAD"
        r = _Req(self, due, _monotonic())
        self.in_flight += 1
        fifo = self._fifo
        while fifo and fifo[0].finished:  # finished ones at the head
            fifo.popleft()
        fifo.append(r)
        if self._timer is None:
            self._arm()
        conn = self.client.take()
        if conn is not None:
            self._write(conn, r)
            return
        # No idle connection: the request waits for the first one that is free, a new one
        # or one whose response completes; a connection is opened per waiting request at
        # most. (One connect per arrival would snowball after a stall: at https's
        # handshake cost, each connect delays the next arrivals into needing one too.)
        self._waiting.append(r)
        self._open_for_waiting()

    def _open_for_waiting(self) -> None:
        waiting = self._waiting
        while waiting and waiting[0].finished:  # timed out while waiting (the oldest first)
            waiting.popleft()
        while self._opening < len(waiting):
            self._opening += 1
            task = self._loop.create_task(self._open())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _write(self, conn: Conn, r: _Req) -> None:
        r.conn = conn
        conn.start_with(self._head_only, None, r)
        assert conn.transport is not None
        conn.transport.write(self._bytes)

    def _next_waiting(self) -> _Req | None:
        waiting = self._waiting
        while waiting:
            r = waiting.popleft()
            if not r.finished:  # else it timed out while waiting
                return r
        return None

    async def _open(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = await self.client.connect()
        except asyncio.CancelledError:
            self._opening -= 1
            raise
        except TimeoutError:
            # The connect outlived a request timeout. Its request has timed out on its own
            # deadline (the timer); a later waiting request has time left: no failure to it.
            self._opening -= 1
            self._open_for_waiting()
            return
        except BaseException as exc:
            self._opening -= 1
            r = self._next_waiting()  # the oldest waiting request gets the failure
            if r is not None:
                self._record(r, 0, exc)
            self._open_for_waiting()
            return
        self._opening -= 1
        self._hand(conn)

    def _hand(self, conn: Conn) -> None:
        """A free connection: to the oldest waiting request, else to the idle pool."""
        r = self._next_waiting()
        if r is None:
            self.client.give(conn, True)
        elif conn.closed:  # the server closed it meanwhile
            self._waiting.appendleft(r)
            self._open_for_waiting()
        else:
            self._write(conn, r)

    def _arm(self) -> None:
        fifo = self._fifo
        while fifo and fifo[0].finished:
            fifo.popleft()
        if fifo:
            at = fifo[0].sent + self.timeout_s - _monotonic()
            self._timer = self._loop.call_later(max(at, 0.0), self._expire)
        else:
            self._timer = None

    def _expire(self) -> None:
        """The oldest deadline passed: every request past its own times out."""
        now = _monotonic()
        fifo, limit = self._fifo, self.timeout_s
        while fifo and (fifo[0].finished or fifo[0].sent + limit <= now):
            r = fifo.popleft()
            if not r.finished:
                conn = r.conn
                if conn is not None:
                    r.conn = None
                    conn.close()  # drops its waiter: the response can no longer finish it
                self._record(r, 0, TimeoutError())
        self._arm()

    def _finished(self, r: _Req, status: int, exc: BaseException | None) -> None:
        conn = r.conn
        if conn is None or r.finished:
            return
        r.conn = None
        keep = exc is None and conn.keep and not conn.closed
        if keep and self._waiting:
            # Not from inside the parser's callback: the connection is handed on after it.
            self._loop.call_soon(self._hand, conn)
        else:
            self.client.give(conn, keep)
        self._record(r, status, exc)

    def _record(self, r: _Req, status: int, exc: BaseException | None) -> None:
        r.finished = True
        out = Outcome(r.sent, _monotonic(), status)
        if exc is not None:
            out.error, out.detail = classify(exc)
        else:
            error = status_error(status)
            if error is not None:
                out.error, out.detail = error, f"HTTP {status}"
        self.recorder.record(r.due, out)
        self.on_done()
        self.in_flight -= 1
        if not self.in_flight and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drain(self, grace_s: float) -> None:
        """Wait until every request sent is recorded, `grace_s` at most."""
        if self.in_flight:
            self._drained = self._loop.create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained, grace_s)

    def close(self) -> None:
        """Abandon what is still in flight (not recorded, as a cancelled task's request)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._tasks:
            task.cancel()
        self._waiting.clear()
        while self._fifo:
            r = self._fifo.popleft()
            r.finished = True
            if r.conn is not None:
                r.conn.close()
                r.conn = None
