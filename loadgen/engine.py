"""Running one worker's share of the load: the open-loop scheduler and the closed-loop users.

Open loop: the scheduler sleeps until each arrival is due and hands it to a new
task; it never awaits a response, so a slow or dead target cannot delay the
schedule. When maxInFlight requests (this worker's share) are outstanding, a due
arrival is dropped and counted instead. Latency is measured from the due time.

Closed loop: a controller keeps users(t) user tasks alive; each sends, waits for its
reply, thinks, and goes again. A user above the current count exits after its
request. Latency is measured from the actual send.

Conversations: each arrival (open) or iteration (closed) is one conversation; its
turns go one after another with conversation.thinkTime between them. In the open
loop the first turn is due at the arrival; the others are timed from their send.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import time
from typing import Any, TextIO

import aiohttp

from surge.loadgen import http1, schedule
from surge.loadgen.client import execute, make_session
from surge.loadgen.plan import WorkerPlan, resolve_headers
from surge.loadgen.recorder import PromMetrics, Recorder, slo_bounds
from surge.loadgen.scenario import Scenario
from surge.loadgen.summary import PROGRESS_PREFIX, WorkerSummary

_YIELD_EVERY = 64  # sends in a row without sleeping before the scheduler yields


class Engine:
    """One worker's run. Build it, then `await run(t0)`; `stop()` ends it early."""

    def __init__(
        self,
        plan: WorkerPlan,
        *,
        headers: dict[str, str] | None = None,
        progress: TextIO | None = None,
        prom: bool = False,
        url_override: str | None = None,
        connections: int | None = None,
    ) -> None:
        """connections: cap on requests on the wire at once (like wrk2's -c); arrivals
        beyond it wait for a slot and their latency, counted from the due time, shows
        the wait. None: no cap besides maxInFlight (the default everywhere)."""
        self.plan = plan
        spec = plan.spec
        self.headers = resolve_headers(plan) if headers is None else headers
        self.url = (url_override or spec.target.url).rstrip("/") + spec.scenario.path
        self.open_loop = spec.load.model != "closed"
        self.segs = plan.segments
        self.duration_s = spec.load.duration_s
        self.scenario = Scenario(
            spec.scenario, index=plan.index, workers=plan.workers, seed=spec.load.seed
        )
        self.progress = progress
        self.in_flight = 0
        self.sending = False  # the scheduler still has arrivals to send (progress: "late")
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.summary = WorkerSummary(
            loadtest=plan.name,
            namespace=plan.namespace,
            run_id=plan.run_id,
            variant=plan.variant,
            model=spec.load.model,
            workers=[plan.index],
            worker_count=plan.workers,
            window_start_s=spec.load.warmup,
        )
        self.prom = PromMetrics(plan.labels, lambda: self.in_flight) if prom else None
        self.recorder: Recorder | None = None
        self.connections = connections
        self._slots: asyncio.Semaphore | None = None
        self.stopped_at_s: float | None = None
        self._hdr_cache: dict[str, dict[str, str]] = {}
        self._lean: http1.Http1Client | None = None

    def _headers(self, content_type: str | None) -> dict[str, str]:
        """The request headers with this Content-Type, merged once per type."""
        if content_type is None:
            return self.headers
        hdrs = self._hdr_cache.get(content_type)
        if hdrs is None:
            hdrs = {**self.headers, "Content-Type": content_type}
            self._hdr_cache[content_type] = hdrs
        return hdrs

    def stop(self) -> None:
        """Stop sending (SIGTERM); in-flight requests get a short grace, then the summary."""
        self._stop.set()

    async def run(self, t0: float | None = None) -> WorkerSummary:
        """Run until the stages end (or stop()); t0 is the monotonic start (default: now)."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        t0 = now if t0 is None else t0
        self.summary.start_epoch = time.time() + (t0 - now)
        load = self.plan.spec.load
        self.recorder = Recorder(
            self.summary,
            t0=t0,
            window_start_s=load.warmup,
            window_end_s=self.duration_s,
            open_loop=self.open_loop,
            slo=slo_bounds(self.plan.spec.parsed_thresholds()),
            prom=self.prom,
        )
        limit = self.plan.max_in_flight if self.open_loop else int(load.peak) + 1
        if self.connections is not None:
            limit = min(limit, self.connections)
            self._slots = asyncio.Semaphore(self.connections)
        timeout_s = self.plan.spec.scenario.timeout
        session = make_session(limit, timeout_s)
        if os.environ.get("SURGE_HTTP_CLIENT", "lean") != "aiohttp" and http1.usable(
            self.url, self.headers
        ):
            # http:// targets: the lean client (several times less CPU a request than
            # aiohttp's session; surge.loadgen.http1). https stays on aiohttp.
            self._lean = http1.Http1Client(self.url)
        # Also without progress output: it flushes the recorder (Prometheus) every second.
        reporter: asyncio.Task[None] | None = loop.create_task(self._report(t0))
        # Everything alive before the load (imports, the plan, the app around the engine)
        # leaves the cyclic GC's view: a full collection mid-run then scans only what the
        # run allocated, instead of stalling the loop for milliseconds (seen as p99 TTFT).
        gc.freeze()
        try:
            delay = t0 - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
            if not self._stop.is_set():
                self.sending = True
                try:
                    if self.open_loop:
                        await self._open_loop(session, t0)
                    else:
                        await self._closed_loop(session, t0)
                finally:
                    self.sending = False
            end = time.monotonic()
            self.stopped_at_s = min(end - t0, self.duration_s)
            # In-flight requests finish (each is bounded by the request timeout).
            if self._tasks:
                grace = 2.0 if self._stop.is_set() else timeout_s + 1.0
                _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=1.0)
        finally:
            gc.unfreeze()  # back to normal for whatever the process does next
            if self._lean is not None:
                self._lean.close()
            await session.close()
            if reporter is not None:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
        self._finish(t0)
        return self.summary

    def _finish(self, t0: float) -> None:
        load = self.plan.spec.load
        stopped = self.stopped_at_s if self.stopped_at_s is not None else 0.0
        interrupted = self._stop.is_set() and stopped < self.duration_s - 1e-3
        end_s = stopped if interrupted else self.duration_s
        self.summary.interrupted = interrupted
        self.summary.measured_s = max(end_s - load.warmup, 0.0)
        if self.open_loop:
            total = schedule.expected_arrivals(self.segs, load.warmup, max(end_s, load.warmup))
            self.summary.expected = total / self.plan.workers
        assert self.recorder is not None
        lines = self.recorder.take_intervals(10**9)
        self._emit(lines, final=True)

    # -- open loop ---------------------------------------------------------------------

    async def _open_loop(self, session: aiohttp.ClientSession, t0: float) -> None:
        load = self.plan.spec.load
        assert load.model != "closed"
        rec = self.recorder
        assert rec is not None
        cap = self.plan.max_in_flight
        loop = asyncio.get_running_loop()
        stop = self._stop
        streak = 0
        conversational = self.plan.spec.scenario.conversation is not None
        for due_rel in schedule.arrival_times(
            self.segs,
            load.model,
            index=self.plan.index,
            workers=self.plan.workers,
            seed=load.seed,
        ):
            if stop.is_set():
                return
            due = t0 + due_rel
            wait = due - time.monotonic()
            if wait > 0.0005:
                streak = 0
                if wait > 0.2:  # long gaps: wake at once on stop()
                    await self._sleep(wait)
                else:
                    await asyncio.sleep(wait)
                if stop.is_set():
                    return
            else:
                streak += 1
                if streak >= _YIELD_EVERY:
                    streak = 0
                    await asyncio.sleep(0)
            if self.in_flight >= cap:
                rec.drop(due_rel, time.monotonic())
                continue
            self.in_flight += 1
            coro = self._conversation(session, due) if conversational else self._one(session, due)
            task = loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Sleep out the rest of the timeline (a stage may target 0 at the end).
        rest = t0 + self.duration_s - time.monotonic()
        if rest > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rest)

    async def _one(self, session: aiohttp.ClientSession, due: float) -> None:
        try:
            if self._slots is not None:
                async with self._slots:
                    await self._send_one(session, due)
            else:
                await self._send_one(session, due)
        finally:
            self.in_flight -= 1

    async def _send_one(self, session: aiohttp.ClientSession, due: float) -> None:
        req = self.scenario.single()
        out = await execute(
            session,
            self.url,
            req,
            self._headers(req.content_type),
            streaming=self.plan.spec.scenario.streaming,
            timeout_s=self.plan.spec.scenario.timeout,
            lean=self._lean,
        )
        assert self.recorder is not None
        self.recorder.record(due, out)

    async def _conversation(self, session: aiohttp.ClientSession, due: float | None) -> None:
        """One conversation; `due` is the first turn's due time (None: closed loop)."""
        try:
            await self._run_conversation(session, due)
        finally:
            if due is not None:
                self.in_flight -= 1

    async def _run_conversation(self, session: aiohttp.ClientSession, due: float | None) -> None:
        sc = self.plan.spec.scenario
        conv = sc.conversation
        assert conv is not None
        assert self.recorder is not None
        picked = self.scenario.next_conversation()
        if picked is None:
            return
        row, turns = picked
        history: list[dict[str, str]] = []
        for i, turn in enumerate(turns):
            if i and conv.think_time:
                await self._sleep(conv.think_time)
            if self._stop.is_set():
                return
            req = self.scenario.turn_request(row, turn, history)
            out = await execute(
                session,
                self.url,
                req,
                self._headers(req.content_type),
                streaming=sc.streaming,
                timeout_s=sc.timeout,
                keep_text=True,
                lean=self._lean,
            )
            self.recorder.record(due if (i == 0 and due is not None) else out.sent_at, out)
            if not out.ok:
                return  # a broken conversation ends; its later turns make no sense
            history.append({"role": "user", "content": turn})
            history.append({"role": "assistant", "content": out.text})

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # -- closed loop -------------------------------------------------------------------

    async def _closed_loop(self, session: aiohttp.ClientSession, t0: float) -> None:
        users: dict[int, asyncio.Task[None]] = {}
        target = [0]
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            rel = time.monotonic() - t0
            if rel >= self.duration_s:
                break
            target[0] = schedule.users_at(
                self.segs, rel, index=self.plan.index, workers=self.plan.workers
            )
            for uid in range(target[0]):
                task = users.get(uid)
                if task is None or task.done():
                    users[uid] = loop.create_task(self._user(session, uid, target, t0))
                    self._tasks.add(users[uid])
                    users[uid].add_done_callback(self._tasks.discard)
            await self._sleep(0.05)
        target[0] = 0

    async def _user(
        self, session: aiohttp.ClientSession, uid: int, target: list[int], t0: float
    ) -> None:
        sc = self.plan.spec.scenario
        think = self.plan.spec.load.think_time
        assert self.recorder is not None
        while uid < target[0] and not self._stop.is_set():
            if time.monotonic() - t0 >= self.duration_s:
                return
            self.in_flight += 1
            try:
                if sc.conversation is not None:
                    await self._run_conversation(session, None)
                else:
                    req = self.scenario.single()
                    out = await execute(
                        session,
                        self.url,
                        req,
                        self._headers(req.content_type),
                        streaming=sc.streaming,
                        timeout_s=sc.timeout,
                        lean=self._lean,
                    )
                    self.recorder.record(out.sent_at, out)
            finally:
                self.in_flight -= 1
            if think:
                await self._sleep(think)

    # -- progress ----------------------------------------------------------------------

    async def _report(self, t0: float) -> None:
        while True:
            now = time.monotonic()
            sec = int(now - t0)
            await asyncio.sleep(max(t0 + sec + 1 - time.monotonic(), 0.01) + 0.02)
            if self.recorder is not None and time.monotonic() >= t0:
                self._emit(self.recorder.take_intervals(int(time.monotonic() - t0)))

    def _emit(self, intervals: list[dict[str, Any]], final: bool = False) -> None:
        if self.progress is None:
            return
        for iv in intervals:
            iv["w"] = self.plan.index
            iv["inflight"] = self.in_flight
            iv["sending"] = self.sending
            self.progress.write(PROGRESS_PREFIX + json.dumps(iv, separators=(",", ":")) + "\n")
        if intervals or final:
            self.progress.flush()
