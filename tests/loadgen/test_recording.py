"""Batched recording gives exactly what per-value recording gives (HDR and Prometheus),
and the SSE reader copes with lines split across network reads."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest
from prometheus_client import generate_latest

from surge.loadgen.client import execute, make_session
from surge.loadgen.goodput import slo_bounds
from surge.loadgen.outcome import Outcome
from surge.loadgen.recorder import PromMetrics, Recorder
from surge.loadgen.scenario import Prepared
from surge.loadgen.summary import (
    WorkerSummary,
    encode_histogram,
    new_histogram,
    record_many_seconds,
    record_seconds,
)
from tests.loadgen.conftest import ThreadServer


def test_record_many_seconds_is_exact() -> None:
    rng = random.Random(5)
    values = [rng.lognormvariate(-3, 2) for _ in range(50_000)]
    # Edges: negative and zero (clamped to 1 µs), the rounding half-way, beyond 1 h.
    values += [-1.0, -1e-7, 0.0, 4e-7, 5e-7, 1.5e-6, 0.0015, 0.001234567, 3600.0, 1e9]
    one = new_histogram()
    for v in values:
        record_seconds(one, v)
    many = new_histogram()
    for i in range(0, len(values), 997):  # batches of odd sizes
        record_many_seconds(many, values[i : i + 997])
    record_many_seconds(many, [])
    assert np.array_equal(np.ctypeslib.as_array(one.counts), np.ctypeslib.as_array(many.counts))
    assert (one.total_count, one.min_value, one.max_value) == (
        many.total_count,
        many.min_value,
        many.max_value,
    )
    assert encode_histogram(one) == encode_histogram(many)
    for p in (50, 90, 99, 99.9, 100):
        assert one.get_value_at_percentile(p) == many.get_value_at_percentile(p)


def _exposition(prom: PromMetrics) -> list[str]:
    text = generate_latest(prom.registry).decode()
    # _created samples hold creation times, which differ between two registries.
    return sorted(ln for ln in text.splitlines() if "_created" not in ln and ln[:1] != "#")


def test_prometheus_batch_equals_per_request_updates() -> None:
    labels = {"loadtest": "lt", "variant": "", "worker": "0"}
    one = PromMetrics(labels, lambda: 3)
    many = PromMetrics(labels, lambda: 3)
    rng = random.Random(9)
    # Bucket bounds themselves are included: observe() puts a value equal to a bound in
    # that bound's bucket, and so must the batch.
    latencies = [rng.expovariate(5) for _ in range(5000)] + [0.005, 0.1, 1.0, 60.0, 100.0]
    ttfts = [rng.expovariate(20) for _ in range(300)]
    outcomes = {"ok": 5005, "timeout": 7, "http_5xx": 2}
    for name, n in outcomes.items():
        for _ in range(n):
            one.outcome[name].inc()
    for _ in range(4):
        one.dropped.inc()
    for v in latencies:
        one.latency.observe(v)
    for v in ttfts:
        one.ttft.observe(v)
    half = len(latencies) // 2
    many.add({"ok": 3000, "timeout": 7}, 1, latencies[:half], ttfts)
    many.add({"ok": 2005, "http_5xx": 2, "connect": 0}, 3, latencies[half:], [])
    got, want = _exposition(many), _exposition(one)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        name_a, value_a = a.rsplit(" ", 1)
        name_b, value_b = b.rsplit(" ", 1)
        assert name_a == name_b
        # Bucket counts and counters are exact; a _sum adds the same floats in another
        # order, so it may differ in the last bits.
        tolerance = 1e-9 * max(1.0, abs(float(value_b))) if "_sum" in name_a else 0.0
        assert abs(float(value_a) - float(value_b)) <= tolerance, (a, b)
    timeouts = [ln for ln in got if "surge_requests_total" in ln and 'outcome="timeout"' in ln]
    assert timeouts and timeouts[0].endswith(" 7.0")


async def test_sse_lines_split_across_reads(thread_server: ThreadServer) -> None:
    from aiohttp import web

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        # One chunk cut inside its JSON and inside "\r\n", then two events in one write,
        # then a last line with no newline at all.
        await resp.write(b'data: {"choices":[{"delta":{"cont')
        await asyncio.sleep(0.05)
        await resp.write(b'ent":"a"}}]}\r')
        await asyncio.sleep(0.05)
        await resp.write(b"\n\n")
        await resp.write(
            b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n'
            b'data: {"choices":[{"delta":{"content":"c"}}]}\n\n'
        )
        await asyncio.sleep(0.05)
        await resp.write(b"data: [DONE]")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/", stream)
    url = thread_server.serve_app(app)
    async with make_session(2, 5) as session:
        out = await execute(
            session, url + "/", Prepared("GET", "/", None, None), {}, streaming="openai",
            keep_text=True,
        )  # fmt: skip
    assert out.ok, out.detail
    assert out.text == "abc"
    assert len(out.chunk_times) == 3
    # "a" is complete only when its newline arrives, 100 ms after its first bytes.
    assert out.chunk_times[0] - out.sent_at >= 0.09
    assert out.chunk_times[1] == out.chunk_times[2]  # one read, one arrival time


def test_an_open_loop_conversations_later_turns_add_no_schedule_lag() -> None:
    """Only a conversation's first turn follows the schedule: its later turns (sent after
    the reply and think time) are timed from their actual send and add no lag sample, so
    they cannot pull down the p99 that the GeneratorSaturated gate reads."""
    summary = WorkerSummary(load_model="constant")
    rec = Recorder(
        summary, t0=0.0, window_start_s=0.0, window_end_s=100.0, open_loop=True,
        slo=slo_bounds([]),
    )  # fmt: skip
    rec.record(1.0, Outcome(sent_at=1.5, done_at=2.0, status=200))  # first turn, 0.5 s late
    rec.record(3.0, Outcome(sent_at=3.0, done_at=3.2, status=200), scheduled=False)
    assert rec._lag == [0.5]
    assert rec._latency == [pytest.approx(1.0), pytest.approx(0.2)]
    assert summary.counts["sent"] == 2


def test_folding_in_slices_is_exact() -> None:
    """Recorder.fold_some (the engine folds a burst of stream samples over several loop
    turns) leaves the same histograms as one flush."""
    rng = random.Random(8)
    summaries = [WorkerSummary(), WorkerSummary()]
    recs = [
        Recorder(
            s, t0=0.0, window_start_s=0.0, window_end_s=1e9, open_loop=False, slo=slo_bounds([])
        )
        for s in summaries
    ]
    for _ in range(300):
        out = Outcome(sent_at=1.0, done_at=2.0 + rng.random())
        out.chunk_times = sorted(1.1 + rng.random() for _ in range(40))
        for rec in recs:
            rec.record(out.sent_at, out)
    slices = 0
    while recs[1].fold_some(1000):
        slices += 1
    assert slices == 11  # 300 × 39 ITL samples, 1,000 at a time; 700 left for flush
    for rec in recs:
        rec.flush()
    for name in ("itl", "ttft", "latency"):
        a, b = (s.hists[name] for s in summaries)
        assert a.get_total_count() > 0
        assert encode_histogram(a) == encode_histogram(b)


def test_each_seconds_latency_histogram_folded_in_slices_is_exact() -> None:
    """The progress record's per-second latency histogram is folded in slices as well
    (a second at 30,000 req/s held the loop for ~3 ms folded at once) and is the same."""
    rng = random.Random(9)
    summaries = [WorkerSummary(), WorkerSummary()]
    recs = [
        Recorder(
            s, t0=0.0, window_start_s=0.0, window_end_s=1e9, open_loop=True, slo=slo_bounds([])
        )
        for s in summaries
    ]
    for i in range(5000):
        due = i / 2500  # two seconds of arrivals
        out = Outcome(sent_at=due + 0.001, done_at=due + 0.002 + rng.random() / 100, status=200)
        for rec in recs:
            rec.record(due, out)
    while recs[1].fold_some(700):
        pass
    assert all(len(iv.latencies) <= 700 for iv in recs[1].intervals.values())
    a, b = (rec.take_intervals(10) for rec in recs)
    assert [r["s"] for r in a] == [r["s"] for r in b] == [0, 1, 2]
    assert [r["ok"] for r in a] == [r["ok"] for r in b]
    assert sum(r["ok"] for r in a) == 5000
    assert [r["h"] for r in a] == [r["h"] for r in b]


def test_prometheus_folded_in_slices_equals_one_flush() -> None:
    """fold_some folds Prometheus's latencies and TTFTs in slices too (at 35,000 req/s a
    second's batch held the loop for ~2 ms); the page is the same as after one flush."""
    labels = {"loadtest": "lt", "variant": "", "worker": "0"}
    proms = [PromMetrics(labels, lambda: 0), PromMetrics(labels, lambda: 0)]
    recs = [
        Recorder(
            WorkerSummary(),
            t0=0.0,
            window_start_s=0.0,
            window_end_s=1e9,
            open_loop=True,
            slo=slo_bounds([]),
            prom=p,
        )
        for p in proms
    ]
    rng = random.Random(10)
    for i in range(3000):
        due = i / 1000
        out = Outcome(sent_at=due, done_at=due + rng.expovariate(20), status=200)
        out.chunk_times = [due + 0.01] if i % 3 == 0 else []
        for rec in recs:
            rec.record(due, out)
    slices = 0
    while recs[1].fold_some(400):
        slices += 1
    assert slices >= 3000 // 400  # the 3,000 latencies went 400 at a time
    assert len(recs[1]._prom_latency) <= 400
    for rec in recs:
        rec.flush()
    a, b = (_exposition(p) for p in proms)
    assert any(ln.startswith("surge_request_latency_seconds_count") for ln in a)
    # Counts and buckets exact; a _sum adds the same floats in another grouping.
    assert [ln for ln in a if "_sum{" not in ln] == [ln for ln in b if "_sum{" not in ln]
    sums = [[float(ln.rsplit(" ", 1)[1]) for ln in x if "_sum{" in ln] for x in (a, b)]
    assert sums[0] == pytest.approx(sums[1], rel=1e-12)
