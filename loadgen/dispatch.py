"""The open loop's plain-request hot path: a request per arrival without a task.

For the commonest open-loop run (plain requests through the lean HTTP/1.1 client: no
stream, no conversation, no connections cap) the scheduler hands each due arrival to
`Dispatch.send`, which writes the request on an idle keep-alive connection at once. The
connection calls back when the response is complete (one `data_received` parses it,
surge.loadgen.http1_conn), and the callback records the outcome: no Task, coroutine
chain, Future or `asyncio.timeout` per request (each cost more CPU than the request's
own parsing; docs/bench.md). Only an arrival that finds no idle connection runs a task,
to connect.

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
    """One request in flight: the connection's Waiter, calling the dispatcher back."""

    __slots__ = ("conn", "d", "due", "sent")

    def __init__(self, d: Dispatch, due: float, sent: float) -> None:
        self.d = d
        self.due = due
        self.sent = sent
        self.conn: Conn | None = None  # None once finished (or while connecting)

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
        self._fifo: deque[_Req] = deque()  # sent, in send order (= deadline order)
        self._timer: asyncio.TimerHandle | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()

    def send(self, due: float) -> None:
        """Send one arrival due at `due` (monotonic) now."""
        req = self.scenario.single()
        if req is not self._req:  # a static body: the same object, formatted once
            self._req = req
            self._bytes = self.client.payload(req.method, self.headers(req.content_type), req.body)
            self._head_only = req.method == "HEAD"
        conn = self.client.take()
        r = _Req(self, due, _monotonic())
        if conn is None:
            task = self._loop.create_task(self._connect_then_write(r, self._bytes))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
        else:
            self._write(conn, r, self._bytes)

    def _write(self, conn: Conn, r: _Req, data: bytes) -> None:
        r.conn = conn
        conn.start_with(self._head_only, None, r)
        assert conn.transport is not None
        conn.transport.write(data)
        fifo = self._fifo
        while fifo and fifo[0].conn is None:  # finished ones at the head
            fifo.popleft()
        fifo.append(r)
        if self._timer is None:
            self._arm()

    async def _connect_then_write(self, r: _Req, data: bytes) -> None:
        try:
            async with asyncio.timeout(r.sent + self.timeout_s - _monotonic()):
                conn = await self.client.connect()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._record(r, 0, exc)
            return
        self._write(conn, r, data)

    def _arm(self) -> None:
        fifo = self._fifo
        while fifo and fifo[0].conn is None:
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
        while fifo and (fifo[0].conn is None or fifo[0].sent + limit <= now):
            r = fifo.popleft()
            conn = r.conn
            if conn is not None:
                r.conn = None
                conn.close()  # drops its waiter: the response can no longer finish it
                self._record(r, 0, TimeoutError())
        self._arm()

    def _finished(self, r: _Req, status: int, exc: BaseException | None) -> None:
        conn = r.conn
        if conn is None:
            return
        r.conn = None
        self.client.give(conn, exc is None and conn.keep)
        self._record(r, status, exc)

    def _record(self, r: _Req, status: int, exc: BaseException | None) -> None:
        out = Outcome(r.sent, _monotonic(), status)
        if exc is not None:
            out.error, out.detail = classify(exc)
        else:
            error = status_error(status)
            if error is not None:
                out.error, out.detail = error, f"HTTP {status}"
        self.recorder.record(r.due, out)
        self.on_done()

    def close(self) -> None:
        """Abandon what is still in flight (not recorded, as a cancelled task's request)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._connecting:
            task.cancel()
        while self._fifo:
            r = self._fifo.popleft()
            if r.conn is not None:
                r.conn.close()
                r.conn = None
