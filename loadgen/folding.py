"""The worker's per-second bookkeeping: the recorder's timing samples folded into their
histograms as the second goes, then the finished seconds' progress records handed on.

Requests only append floats (surge.loadgen.recorder); folding them into HDR and
Prometheus histograms is numpy work of ~0.35 µs a request. Left to the second's end,
35,000 req/s of samples held the loop for its first ~30 ms (slices of ~0.7 ms with one
turn between them), and the sends due meanwhile went up to 15 ms late (schedule lag p99
4.6–12.6 ms). So after a second that had more than a slice pending at some fold (at a
slice, or at its end), a slice is folded every FOLD_EVERY_S through the next, each
holding the loop under a millisecond, and what is left at the second's end is small; a
run below that (FOLD_SLICE samples of a kind a second: ~2,000 req/s) wakes once a
second. A burst bigger than that (streams that end together leave ~250,000 ITL samples) is still
folded a slice per loop turn before the record is taken.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from surge.loadgen.recorder import Recorder

FOLD_SLICE = 2_048
"""Timing samples of each kind folded per slice (~0.7 ms for all kinds at 35,000 req/s)."""
FOLD_EVERY_S = 0.05
"""How often a slice is folded between progress records."""
EMIT_LAG_S = 0.02
"""A second's record is taken this long after it ends (its last responses are in)."""


async def fold_and_report(
    recorder: Callable[[], Recorder | None],
    t0: float,
    emit: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Forever (the engine cancels it): fold slices through each second, then pass the
    progress records of the seconds before the current one to `emit`. t0: the load's
    start (monotonic); `recorder()` is None until the engine has made it."""
    # The last second had more than a slice of some kind pending at some fold: at its
    # end, or (slicing) at any slice, since a second that slices well ends with little.
    busy = False
    while True:
        now = time.monotonic()
        sec = int(now - t0)
        emit_at = max(t0 + sec + 1, now + 0.01) + EMIT_LAG_S
        if not busy:  # a quiet run wakes once a second: a wake-up costs ~25 µs here
            await asyncio.sleep(emit_at - now)
        sliced = False
        while busy and (wait := emit_at - time.monotonic()) > 0:
            await asyncio.sleep(min(wait, FOLD_EVERY_S))
            rec = recorder()
            if rec is not None and emit_at > time.monotonic():
                sliced = rec.fold_some(FOLD_SLICE) or sliced
        rec = recorder()
        if rec is not None and time.monotonic() >= t0:
            more = rec.fold_some(FOLD_SLICE)
            busy = more or sliced
            while more:
                await asyncio.sleep(0)  # a turn for the streams between slices
                more = rec.fold_some(FOLD_SLICE)
            emit(rec.take_intervals(int(time.monotonic() - t0)))
