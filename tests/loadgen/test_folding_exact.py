"""Differential tests of the worker's folding (surge.loadgen.folding, Recorder.fold_some,
PromMetrics.observe) against brute-force references: prometheus_client's own per-value
observe() and the pre-slicing bucketing (np.unique), per-value HDR recording, and each
request's second computed by hand. fold_and_report runs on a fake clock (its module's
`time` and `asyncio.sleep` replaced), driven step by step, so every schedule is exact
and repeatable: quiet seconds, bursts, a second that ends mid-slice, a stop mid-fold."""

from __future__ import annotations

import asyncio
import math
import random
import types
from collections.abc import Generator
from typing import Any

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from surge.loadgen import folding
from surge.loadgen.goodput import slo_bounds
from surge.loadgen.outcome import Outcome
from surge.loadgen.recorder import PromMetrics, Recorder
from surge.loadgen.summary import WorkerSummary, encode_histogram, new_histogram, record_seconds

LABELS = {"loadtest": "lt", "variant": "", "worker": "0"}
T0 = 1000.0  # the load's start on the fake monotonic clock


def _buckets(hist: Any) -> list[float]:
    """A histogram child's per-bucket (non-cumulative) counts, +Inf last."""
    return [b.get() for b in hist._buckets]


def _old_bucketing(bounds: np.ndarray, values: list[float]) -> list[int]:
    """main's _observe_many (before bincount): np.unique over searchsorted(side=left)."""
    out = [0] * (len(bounds) + 1)
    where, counts = np.unique(
        np.searchsorted(bounds, np.asarray(values, dtype=np.float64), side="left"),
        return_counts=True,
    )
    for i, n in zip(where.tolist(), counts.tolist(), strict=True):
        out[i] += n
    return out


def _edge_values(rng: random.Random) -> list[float]:
    values = [rng.lognormvariate(-3, 2) for _ in range(20_000)]
    for b in PromMetrics.BUCKETS:  # each bound, and the floats either side of it
        values += [float(b), math.nextafter(float(b), 0.0), math.nextafter(float(b), math.inf)]
    values += [0.0, -0.0, -1e-9, -5.0, 1e300, math.inf, 5e-324]
    rng.shuffle(values)
    return values


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_prometheus_bucketing_equals_observe_and_the_old_bucketing(seed: int) -> None:
    """le is inclusive (a value equal to a bound goes in that bound's bucket), values past
    the last bound and +inf go in +Inf, negatives in the first: per-value observe(), the
    old np.unique bucketing and the new bincount one agree bucket for bucket, whatever
    the slice sizes (including slices holding no value of one kind)."""
    rng = random.Random(seed)
    lat, ttft = _edge_values(rng), _edge_values(rng)[:3000]
    one, many = PromMetrics(LABELS, lambda: 0), PromMetrics(LABELS, lambda: 0)
    for v in lat:
        one.latency.observe(v)
    for v in ttft:
        one.ttft.observe(v)
    i = j = 0
    while i < len(lat) or j < len(ttft):
        n, m = rng.randint(0, 3000), rng.choice([0, 1, 7, 500])
        many.observe(lat[i : i + n], ttft[j : j + m])
        i, j = i + n, j + m
    bounds = np.asarray(PromMetrics.BUCKETS, dtype=np.float64)
    for a, b, values in ((one.latency, many.latency, lat), (one.ttft, many.ttft, ttft)):
        assert _buckets(b) == _buckets(a) == _old_bucketing(bounds, values)
        assert sum(_buckets(b)) == len(values)


class _FakeTime:
    """A monotonic clock under the test's control, with the requests due to finish by
    now recorded as it moves (the event loop's other tasks, in a real run)."""

    def __init__(self, rec: Recorder, due: list[tuple[float, float, Outcome]]) -> None:
        self.now = T0 - 0.3  # the reporter starts before the load does
        self.rec = rec
        self.due = due  # (done_at, intended, outcome), sorted by done_at
        self.k = 0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def advance(self, d: float) -> None:
        self.now += d
        while self.k < len(self.due) and self.due[self.k][0] <= self.now:
            _, intended, out = self.due[self.k]
            self.rec.record(intended, out)
            self.k += 1

    @types.coroutine
    def sleep(self, d: float) -> Generator[None, None, None]:
        self.sleeps.append(d)
        # sleep(0) between slices: time still passes while a slice is folded.
        self.advance(max(d, 0.0) or 0.0007)
        yield


def _requests(rng: random.Random, secs: int) -> list[tuple[float, float, Outcome]]:
    """Seeded arrivals: quiet seconds, steady ones, and bursts; some streamed (ITL)."""
    due: list[tuple[float, float, Outcome]] = []
    for s in range(secs):
        rate = rng.choice([0, 0, 40, 3_000, 9_000])
        n = rate if rng.random() < 0.7 else 0
        times = [s + rng.random() for _ in range(n)]
        if rng.random() < 0.3:  # a burst: many due at one instant
            times += [s + rng.random()] * rng.randint(1, 6000)
        for t in times:
            intended = T0 + t
            sent = intended + rng.expovariate(2000)
            done = sent + rng.lognormvariate(-4, 1)
            out = Outcome(sent_at=sent, done_at=done, status=200)
            if rng.random() < 0.05:
                out.error = "http_5xx"
            elif rng.random() < 0.4:  # a stream ending at done
                k = rng.randint(1, 60)
                out.chunk_times = sorted(rng.uniform(sent, done) for _ in range(k))
            due.append((done, intended, out))
    due.sort(key=lambda r: r[0])
    return due


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_fold_and_report_folds_each_sample_once_in_its_second(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fold_and_report (slices through the second, the end-of-second fold, a stop at a
    random step, mid-fold included) then the engine's final take_intervals: every window
    request in the summary's histograms once, each second's progress record holding
    exactly the requests that finished in it (ok count and latency histogram), every
    request (warm-up too) in Prometheus once, bucket for bucket as observe() would."""
    rng = random.Random(seed)
    secs = 9
    summary = WorkerSummary(load_model="constant")
    prom = PromMetrics(LABELS, lambda: 0)
    rec = Recorder(
        summary, t0=T0, window_start_s=0.5, window_end_s=secs - 0.7, open_loop=True,
        slo=slo_bounds([]), prom=prom,
    )  # fmt: skip
    due = _requests(rng, secs)
    end = T0 + secs - 0.01  # a burst that ends just before the last second does
    due += [(end + 0.005, end, Outcome(sent_at=end, done_at=end + 0.005, status=200))] * 9000
    due.sort(key=lambda r: r[0])
    clock = _FakeTime(rec, due)
    monkeypatch.setattr(folding, "time", clock)
    monkeypatch.setattr(folding, "asyncio", types.SimpleNamespace(sleep=clock.sleep))
    records: list[dict[str, Any]] = []
    coro = folding.fold_and_report(lambda: rec, T0, records.extend)
    # The run ends somewhere in its last second; with an even seed, at the first slice
    # folded at a second's end from then (a stop mid-fold, between two slices).
    stop_at, mid_fold = T0 + secs - 1 + rng.random(), seed % 2 == 0
    while clock.now < stop_at or (mid_fold and clock.sleeps[-1] != 0):
        assert clock.now < T0 + secs + 1
        coro.send(None)
    with pytest.raises(asyncio.CancelledError):  # the engine cancels it wherever it is
        coro.throw(asyncio.CancelledError())
    clock.advance(5.0)  # the in-flight requests finish (drain), then the final record
    records += rec.take_intervals(10**9)

    win = [(i, o) for _, i, o in due if T0 + 0.5 <= i < T0 + secs - 0.7]
    ok = [(i, o) for i, o in win if o.error is None]
    want: dict[str, HdrHistogram] = {n: new_histogram() for n in ("latency", "itl", "ttft")}
    per_sec: dict[int, tuple[int, HdrHistogram]] = {}
    for i, o in ok:
        record_seconds(want["latency"], o.done_at - i)
        if o.chunk_times:
            record_seconds(want["ttft"], o.chunk_times[0] - o.sent_at)
            for a, b in zip(o.chunk_times, o.chunk_times[1:], strict=False):
                record_seconds(want["itl"], b - a)
        n, h = per_sec.setdefault(int(o.done_at - T0), (0, new_histogram()))
        record_seconds(h, o.done_at - i)
        per_sec[int(o.done_at - T0)] = (n + 1, h)
    for name, h in want.items():
        assert encode_histogram(summary.hists[name]) == encode_histogram(h), name
    assert summary.counts["ok"] == len(ok)
    # On this clock no reply is recorded after its second's record was taken, so the
    # replies of a second come in one record (a second still running is never taken
    # early); a later record of it holds only requests sent in it (Interval.sent).
    with_ok = [r["s"] for r in records if r["ok"] or r["err"]]
    assert len(set(with_ok)) == len(with_ok)
    got: dict[int, tuple[int, HdrHistogram]] = {}
    for r in records:
        n, h = got.setdefault(r["s"], (0, new_histogram()))
        if r["h"] is not None:
            h.decode_and_add(r["h"])
        got[r["s"]] = (n + r["ok"], h)
    got = {s: v for s, v in got.items() if v[0]}
    assert sorted(got) == sorted(per_sec)
    for s, (n, h) in per_sec.items():
        assert got[s][0] == n, s
        assert encode_histogram(got[s][1]) == encode_histogram(h), s
    ref = PromMetrics(LABELS, lambda: 0)
    for _, i, o in due:
        if o.error is None:
            ref.latency.observe(o.done_at - i)
            if o.chunk_times:
                ref.ttft.observe(o.chunk_times[0] - o.sent_at)
    assert _buckets(prom.latency) == _buckets(ref.latency)
    assert _buckets(prom.ttft) == _buckets(ref.ttft)
    assert prom.latency._sum.get() == pytest.approx(ref.latency._sum.get(), rel=1e-9)


class _Pending:
    """fold_some's contract on counts alone: each of `kinds` timings gains `rate`
    samples a second; a call folds `limit` of every kind holding more than `limit`."""

    def __init__(self, rate: float, kinds: int = 4) -> None:
        self.rate, self.pending = rate, [0.0] * kinds
        self.folds_at_end = 0  # slices folded between the second's end and its record
        self.wakes = 0  # timed sleeps (sleep(0) aside) in the second

    def fold_some(self, limit: int) -> bool:
        more = False
        for k, n in enumerate(self.pending):
            if n > limit:
                self.pending[k] = n - limit
                more = True
        return more

    def take_intervals(self, before_sec: int) -> list[dict[str, Any]]:
        self.pending = [0.0] * len(self.pending)  # flush folds the rest
        return [{"s": before_sec - 1, "end_slices": self.folds_at_end}]


def _schedule(rate: float, secs: int, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Per second: how many sleep(0)-separated slices fold_and_report folded at the
    second's end, before its record (each ~0.7 ms holding the loop at 35,000 req/s),
    and how many timed sleeps it took in the second."""
    rec = _Pending(rate)
    now = [T0]

    @types.coroutine
    def sleep(d: float) -> Generator[None, None, None]:
        if d <= 0:
            rec.folds_at_end += 1
        else:
            rec.wakes += 1
        step = max(d, 0.0) or 0.0007
        now[0] += step
        rec.pending = [n + rate * step for n in rec.pending]
        yield

    monkeypatch.setattr(folding, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(folding, "asyncio", types.SimpleNamespace(sleep=sleep))
    out: list[tuple[int, int]] = []

    def emit(records: list[dict[str, Any]]) -> None:
        out.append((rec.folds_at_end, rec.wakes))
        rec.folds_at_end = rec.wakes = 0

    coro = folding.fold_and_report(lambda: rec, T0, emit)  # type: ignore[arg-type,return-value]
    while len(out) < secs:
        coro.send(None)
    coro.close()
    return out


def test_a_steady_35000_a_second_is_folded_through_every_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The point of folding through the second: at 35,000 samples a second of each kind,
    once the first second has shown the rate, no second leaves its ~17 slices (the
    ~30 ms stall that sent schedule lag p99 to 4.6-12.6 ms) to its end. A busy second
    that slices well ends with under a slice pending; that must not turn slicing off
    for the next one."""
    ends = [e for e, _ in _schedule(35_000, 12, monkeypatch)]
    assert max(ends[1:]) <= 2, ends  # the first second may learn the rate


def test_a_quiet_run_wakes_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below a slice a second (FOLD_SLICE samples of a kind) nothing is sliced and the
    reporter sleeps once a second (ca7d795: a wake-up costs ~25 µs)."""
    assert _schedule(1_000, 8, monkeypatch) == [(0, 1)] * 8
