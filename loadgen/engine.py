"""Running one worker's share of the load: the open-loop scheduler and the closed-loop users.

Open loop: the scheduler sleeps until each arrival is due and hands it to a new
task (plain requests: to surge.loadgen.dispatch, no task); it never awaits a
response, so a slow or dead target cannot delay the schedule. When maxInFlight
requests (this worker's share) are outstanding, a due arrival is dropped and counted
instead. Latency is measured from the due time.

Closed loop: a controller keeps users(t) user tasks alive; each sends, waits for its
reply, thinks, and goes again. A user above the current count exits after its
request. Latency is measured from the actual send.

Conversations: each arrival (open) or iteration (closed) is one conversation; its
turns go one after another with conversation.thinkTime between them. In the open
loop the first turn is due at the arrival; the others are timed from their send.

The engine decides when to send; sending and recording is surge.loadgen.sender's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from typing import Any, TextIO

from surge.api.bounds import SEND_TICK_MIN_S
from surge.loadgen import schedule
from surge.loadgen.cpustat import CpuProbe, CpuSample, window_record
from surge.loadgen.dispatch import Dispatch
from surge.loadgen.folding import fold_and_report
from surge.loadgen.goodput import slo_bounds
from surge.loadgen.plan import WorkerPlan, resolve_headers
from surge.loadgen.recorder import PromMetrics, Recorder
from surge.loadgen.scenario import Scenario
from surge.loadgen.sender import Sender, sleep_unless
from surge.loadgen.summary import PROGRESS_PREFIX, WorkerSummary
from surge.loadgen.trace import arrivals_model

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
        progress_offset_s: int = 0,
    ) -> None:
        """connections: cap on requests on the wire at once (like wrk2's -c); arrivals
        beyond it wait for a slot and their latency, counted from the due time, shows
        the wait. None: no cap besides maxInFlight (the default everywhere).
        progress_offset_s: added to each progress record's second (a sweep's later steps)."""
        self.plan = plan
        spec = plan.spec
        self.headers = resolve_headers(plan) if headers is None else headers
        self.url = (url_override or spec.target.url).rstrip("/") + spec.scenario.path
        self.open_loop = spec.load.model != "closed"
        self.segs = plan.segments
        self.duration_s = spec.load.duration_s
        self.scenario = Scenario(
            spec.scenario, index=plan.slot, workers=plan.slots, seed=spec.load.seed
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
            load_model=spec.load.model,
            workers=[plan.index],
            worker_count=plan.workers,
            window_start_s=spec.load.warmup,
        )
        self.prom = PromMetrics(plan.labels, lambda: self.in_flight) if prom else None
        self.recorder: Recorder | None = None
        self.connections = connections
        self._slots: asyncio.Semaphore | None = None
        self.stopped_at_s: float | None = None
        self.progress_offset_s = progress_offset_s
        self._dispatch: Dispatch | None = None

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
        sender = Sender(
            self.plan.spec.scenario,
            self.scenario,
            self.url,
            self.headers,
            self.recorder,
            self._stop,
            limit=limit,
        )
        # CPU counters at the window's start and at the end of sending (validity).
        probe, cpu_start = CpuProbe(), list[CpuSample]()
        at = max(t0 + load.warmup - time.monotonic(), 0.0)
        marker = loop.call_later(at, lambda: cpu_start.append(probe.sample()))
        # Also without progress output: it flushes the recorder (Prometheus) every second.
        reporter: asyncio.Task[None] | None = loop.create_task(
            fold_and_report(lambda: self.recorder, t0, self._emit)
        )
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
                        await self._open_loop(sender, t0)
                    else:
                        await self._closed_loop(sender, t0)
                finally:
                    self.sending = False
            end = time.monotonic()
            self.stopped_at_s = min(end - t0, self.duration_s)
            marker.cancel()
            if cpu_start:
                rec = window_record(self.plan.index, cpu_start[0], probe.sample())
                self.summary.cpu = [rec]
            # In-flight requests finish (each is bounded by the request timeout).
            grace = 2.0 if self._stop.is_set() else timeout_s + 1.0
            if self._dispatch is not None:
                await self._dispatch.drain(grace)
            if self._tasks:
                _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=1.0)
        finally:
            gc.unfreeze()  # back to normal for whatever the process does next
            if self._dispatch is not None:
                self._dispatch.close()
            await sender.close()
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
            self.summary.expected = total / self.plan.slots
        assert self.recorder is not None
        lines = self.recorder.take_intervals(10**9)
        self._emit(lines, final=True)

    # -- open loop ---------------------------------------------------------------------

    async def _open_loop(self, sender: Sender, t0: float) -> None:
        load = self.plan.spec.load
        assert load.model != "closed"  # a sweep runs as constant steps
        rec = self.recorder
        assert rec is not None
        cap = self.plan.max_in_flight
        loop = asyncio.get_running_loop()
        stop = self._stop
        streak = 0
        conversational = self.plan.spec.scenario.conversation is not None
        tick = load.send_tick or SEND_TICK_MIN_S  # 1 ms: uvloop's timer resolution
        # Plain requests without a connections cap: sent without a task each.
        fast = None if self._slots is not None else sender.dispatch(self._dispatched)
        self._dispatch = fast
        for due_rel in schedule.arrival_times(
            self.segs,
            arrivals_model(load),
            index=self.plan.index,
            workers=self.plan.workers,
            seed=load.seed,
            part=self.plan.process,
            parts=self.plan.processes,
        ):
            if stop.is_set():
                return
            due = t0 + due_rel
            # Never before its due instant: a timer may fire up to a tick (~1 ms on
            # uvloop) early, so the clock is read again after every sleep, and a send
            # that is not yet due sleeps again. A wait under a tick sleeps a whole tick:
            # uvloop rounds it to 0, and re-checking would spin the CPU between sends
            # (at 2,000 req/s, all the time). The cost is at most a tick of lag; a longer
            # load.sendTick sends more arrivals per wake-up for more of it.
            wait = due - time.monotonic()
            if wait > 0.0:
                streak = 0
                while wait > 0.0:
                    if wait > 0.2:  # long gaps: wake at once on stop()
                        await self._sleep(wait)
                    else:
                        await asyncio.sleep(max(wait, tick))
                    if stop.is_set():
                        return
                    wait = due - time.monotonic()
            else:
                streak += 1
                if streak >= _YIELD_EVERY:
                    streak = 0
                    await asyncio.sleep(0)
            if self.in_flight >= cap:
                rec.drop(due_rel, time.monotonic())
                continue
            self.in_flight += 1
            if fast is not None:
                fast.send(due)
                continue
            coro = self._conversation(sender, due) if conversational else self._one(sender, due)
            task = loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Sleep out the rest of the timeline (a stage may target 0 at the end).
        rest = t0 + self.duration_s - time.monotonic()
        if rest > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rest)

    def _dispatched(self) -> None:
        self.in_flight -= 1  # a request of the task-free path was recorded

    async def _one(self, sender: Sender, due: float) -> None:
        try:
            if self._slots is not None:
                async with self._slots:
                    await sender.single(due)
            else:
                await sender.single(due)
        finally:
            self.in_flight -= 1

    async def _conversation(self, sender: Sender, due: float) -> None:
        try:
            await sender.conversation(due)
        finally:
            self.in_flight -= 1

    async def _sleep(self, seconds: float) -> None:
        await sleep_unless(self._stop, seconds)

    # -- closed loop -------------------------------------------------------------------

    async def _closed_loop(self, sender: Sender, t0: float) -> None:
        users: dict[int, asyncio.Task[None]] = {}
        target = [0]
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            rel = time.monotonic() - t0
            if rel >= self.duration_s:
                break
            target[0] = schedule.users_at(
                self.segs, rel, index=self.plan.slot, workers=self.plan.slots
            )
            for uid in range(target[0]):
                task = users.get(uid)
                if task is None or task.done():
                    users[uid] = loop.create_task(self._user(sender, uid, target, t0))
                    self._tasks.add(users[uid])
                    users[uid].add_done_callback(self._tasks.discard)
            await self._sleep(0.05)
        target[0] = 0

    async def _user(self, sender: Sender, uid: int, target: list[int], t0: float) -> None:
        conversational = self.plan.spec.scenario.conversation is not None
        think = self.plan.spec.load.think_time
        while uid < target[0] and not self._stop.is_set():
            if time.monotonic() - t0 >= self.duration_s:
                return
            self.in_flight += 1
            try:
                if conversational:
                    await sender.conversation(None)
                else:
                    await sender.single(None)
            finally:
                self.in_flight -= 1
            if think:
                await self._sleep(think)

    # -- progress ----------------------------------------------------------------------

    def _emit(self, intervals: list[dict[str, Any]], final: bool = False) -> None:
        if self.progress is None:
            return
        for iv in intervals:
            iv["s"] += self.progress_offset_s
            iv["w"] = self.plan.index
            if self.plan.processes > 1:
                iv["p"] = self.plan.process
            iv["inflight"] = self.in_flight
            iv["sending"] = self.sending
            self.progress.write(PROGRESS_PREFIX + json.dumps(iv, separators=(",", ":")) + "\n")
        if intervals or final:
            self.progress.flush()
