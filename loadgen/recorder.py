"""Recording one worker's requests: HDR histograms, counts, per-second series, Prometheus.

Which requests count: those whose intended send time (open loop) or actual send time
(closed loop) falls in the measured window [warmup, end). Warm-up requests are sent
and show in Prometheus, but not in any result.
"""

from __future__ import annotations

import itertools
from typing import Any

from hdrh.histogram import HdrHistogram

from surge.loadgen.goodput import SloBounds
from surge.loadgen.outcome import Outcome, reason_key, tally_reason
from surge.loadgen.prom import OUTCOMES
from surge.loadgen.prom import PromMetrics as PromMetrics
from surge.loadgen.summary import (
    WorkerSummary,
    encode_histogram,
    new_histogram,
    record_many_seconds,
)


class Interval:
    __slots__ = ("dropped", "errors", "hist", "latencies", "ok", "sent")

    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.dropped = 0
        self.sent = 0  # by the second the request left, not the one its reply finished in
        self.latencies: list[float] = []  # not yet in hist (fold_some folds them in slices)
        self.hist: HdrHistogram | None = None


class Recorder:
    """Collects one worker's results. Times are monotonic seconds; t0 is the load start.

    Per request it only counts and appends floats to lists; `flush()` folds the lists
    into the HDR histograms (exactly: `record_many_seconds`) and into Prometheus. The
    engine flushes once a second and at the end; `take_intervals` flushes first, so
    the summary and the progress records are always complete when read.
    """

    def __init__(
        self,
        summary: WorkerSummary,
        *,
        t0: float,
        window_start_s: float,
        window_end_s: float,
        open_loop: bool,
        slo: SloBounds,
        prom: PromMetrics | None = None,
    ) -> None:
        self.summary = summary
        self.t0 = t0
        self.window_start_s = window_start_s
        self.window_end_s = window_end_s
        self._win0 = t0 + window_start_s  # the window in monotonic time
        self._win1 = t0 + window_end_s
        self.open_loop = open_loop
        self.slo = slo
        self._slo_empty = slo.empty
        self.prom = prom
        self.counts = summary.counts
        self._pending: dict[str, list[float]] = {n: [] for n in summary.hists}
        p = self._pending
        self._latency, self._service, self._lag = p["latency"], p["service"], p["schedule_lag"]
        self._ttft, self._tpot, self._itl = p["ttft"], p["tpot"], p["itl"]
        self._ttfc, self._ntpot = p["ttft_content"], p["ntpot"]
        self.lag_min: float | None = None  # exact and signed (summary.lag_min_s)
        self._prom_outcomes = dict.fromkeys(OUTCOMES, 0)
        self._prom_dropped = 0
        self._prom_latency: list[float] = []
        self._prom_ttft: list[float] = []
        self.intervals: dict[int, Interval] = {}
        # Latest actual send (or drop) of a window request, monotonic: where the real
        # span of the window ends when the generator fell behind (docs/metrics.md).
        self.last_attempt = 0.0

    def _interval(self, t: float) -> Interval:
        sec = int(t - self.t0)
        if sec < 0:
            sec = 0
        iv = self.intervals.get(sec)
        if iv is None:
            iv = self.intervals[sec] = Interval()
        return iv

    def in_window(self, rel_s: float) -> bool:
        return self.window_start_s <= rel_s < self.window_end_s

    def drop(self, intended_rel_s: float, now: float) -> None:
        self.counts["dropped_total"] += 1
        if self.prom is not None:
            self._prom_dropped += 1
        if self.in_window(intended_rel_s):
            self.counts["dropped"] += 1
            self._interval(now).dropped += 1
            self._attempted(now)

    def _attempted(self, at: float) -> None:
        """A window request left (or was dropped) at `at`; after the window's end it is late."""
        if at > self.last_attempt:
            self.last_attempt = at
        if at >= self._win1:
            self.counts["late"] += 1
            past = at - self._win1
            if past > self.summary.late_max_s:
                self.summary.late_max_s = past

    def record(self, intended_at: float, out: Outcome, scheduled: bool = True) -> None:
        """One finished request; intended_at is its due time (monotonic; = sent_at closed).
        scheduled=False: an open-loop conversation's later turn, which follows its reply and
        think time, not the schedule: no schedule-lag sample (a 0 would pull the p99 the
        GeneratorSaturated gate reads down) and not an attempt of the schedule."""
        c = self.counts
        c["sent_total"] += 1
        sent = out.sent_at
        done = out.done_at
        start = intended_at if self.open_loop else sent
        latency = done - start
        error = out.error
        times = out.chunk_times
        if self.prom is not None:
            self._prom_outcomes[error or "ok"] += 1
            if error is None:
                self._prom_latency.append(latency)
                if times:
                    self._prom_ttft.append(times[0] - sent)
        if not self._win0 <= start < self._win1:
            return
        c["sent"] += 1
        self._interval(sent).sent += 1
        iv = self._interval(done)
        if self.open_loop and scheduled:
            lag = sent - intended_at
            self._lag.append(lag)
            if self.lag_min is None or lag < self.lag_min:
                self.lag_min = lag
            if lag < 0.0:  # never, by the scheduler's design; counted so that shows
                c["early"] += 1
            self._attempted(sent)
        if error is not None:
            c[error] += 1
            tally_reason(self.summary.reasons, reason_key(error, out.detail))
            iv.errors += 1
            return
        c["ok"] += 1
        iv.ok += 1
        self._latency.append(latency)
        self._service.append(done - sent)
        iv.latencies.append(latency)
        ttft = tpot = ttfc = ntpot = None
        if times:
            c["streamed"] += 1
            tokens = out.output_tokens
            c["tokens"] += tokens
            if out.input_tokens is not None:
                c["tokens_input"] += out.input_tokens
            c["tokens_from_usage" if out.usage_tokens is not None else "tokens_from_chunks"] += 1
            if out.first_content_at is not None:
                ttfc = out.first_content_at - sent
                self._ttfc.append(ttfc)
            seqs = out.sequences
            if seqs is None:
                ttft, tpot = self._timeline(times, sent, tokens)
            else:
                # n > 1: each sequence its own samples, with its share of the tokens by its
                # chunks; the request's SLO is judged on its slowest sequence.
                for seq in seqs:
                    first, per = self._timeline(seq, sent, tokens * len(seq) / len(times))
                    ttft = first if ttft is None else max(ttft, first)
                    if per is not None:
                        tpot = per if tpot is None else max(tpot, per)
            if tokens > 0:
                ntpot = latency / tokens
                self._ntpot.append(ntpot)
        if self._slo_empty or self.slo.met(latency, ttft, tpot, ttfc, ntpot):
            c["good"] += 1

    def _timeline(
        self, times: list[float], sent: float, tokens: float
    ) -> tuple[float, float | None]:
        """One sequence's samples: TTFT, every ITL, and TPOT = (t_last − t_first) / (N − 1),
        the definition of vLLM's benchmarks, AIPerf and GuideLLM (docs/metrics.md), when it
        has 2 or more chunks and tokens. Returns (ttft, tpot or None)."""
        first = times[0]
        ttft = first - sent
        self._ttft.append(ttft)
        itl = self._itl
        prev = first
        for t in itertools.islice(times, 1, None):
            itl.append(t - prev)
            prev = t
        if len(times) < 2 or tokens < 2:
            return ttft, None
        tpot = (prev - first) / (tokens - 1)
        self._tpot.append(tpot)
        return ttft, tpot

    def fold_some(self, limit: int) -> bool:
        """Fold at most `limit` pending values of each timing into its histogram, the
        oldest first; True when some are still pending. The engine calls it between
        event-loop turns before each flush, so the ~250,000 ITL samples of streams that
        ended together never hold the loop for tens of milliseconds at once (the streams
        still running would show that stall in their ITL)."""
        hists, more = self.summary.hists, False
        for name, values in self._pending.items():
            if len(values) > limit:
                record_many_seconds(hists[name], values[:limit])
                del values[:limit]
                more = True
        for iv in self.intervals.values():  # each second's own latency histogram, too
            lat = iv.latencies
            if len(lat) > limit:
                if iv.hist is None:
                    iv.hist = new_histogram()
                record_many_seconds(iv.hist, lat[:limit])
                del lat[:limit]
                more = True
        prom = self.prom
        if prom is not None:  # and Prometheus's (at 35,000 req/s, ~2 ms folded at once)
            lat, ttft = self._prom_latency, self._prom_ttft
            if len(lat) > limit or len(ttft) > limit:
                prom.observe(lat[:limit], ttft[:limit])
                del lat[:limit], ttft[:limit]
                more = True
        return more

    def flush(self) -> None:
        """Fold the pending values into the summary's histograms and into Prometheus."""
        if self.last_attempt:
            self.summary.last_attempt_s = self.last_attempt - self.t0
        self.summary.lag_min_s = self.lag_min
        hists = self.summary.hists
        for name, values in self._pending.items():
            if values:
                record_many_seconds(hists[name], values)
                values.clear()
        if self.prom is not None:
            self.prom.add(
                self._prom_outcomes, self._prom_dropped, self._prom_latency, self._prom_ttft
            )
            for k in self._prom_outcomes:
                self._prom_outcomes[k] = 0
            self._prom_dropped = 0
            self._prom_latency.clear()
            self._prom_ttft.clear()

    def take_intervals(self, before_sec: int) -> list[dict[str, Any]]:
        """Progress records for every finished second < before_sec (removed once taken).
        Flushes first."""
        self.flush()
        out = []
        series = self.summary.series
        for sec in sorted(s for s in self.intervals if s < before_sec):
            iv = self.intervals.pop(sec)
            counts = (("ok", iv.ok), ("errors", iv.errors), ("dropped", iv.dropped))
            for key, val in (*counts, ("sent", iv.sent)):
                seq = series.setdefault(key, [])
                if len(seq) <= sec:
                    seq.extend([0] * (sec + 1 - len(seq)))
                seq[sec] += val
            hist = iv.hist
            if iv.latencies:
                if hist is None:
                    hist = new_histogram()
                record_many_seconds(hist, iv.latencies)
            out.append(
                {
                    "s": sec,
                    "ok": iv.ok,
                    "err": iv.errors,
                    "drop": iv.dropped,
                    "h": encode_histogram(hist) if hist is not None else None,
                }
            )
        return out
