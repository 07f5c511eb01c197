"""Summaries: exact merge, wire forms, the 4 KiB termination message."""

from __future__ import annotations

import random

import pytest

from surge.loadgen.summary import (
    COMPACT_PREFIX,
    TOO_LARGE_MARKER,
    WorkerSummary,
    merge,
    parse_summary,
    record_seconds,
    summary_line,
    termination_message,
)


def _counts(h: object) -> list[tuple[int, int]]:
    return [(v.value_iterated_to, v.count_at_value_iterated_to) for v in h.get_recorded_iterator()]  # type: ignore[attr-defined]


def _worker(index: int, values: list[float]) -> WorkerSummary:
    s = WorkerSummary(loadtest="t", workers=[index], worker_count=2, measured_s=10, expected=500)
    for v in values:
        record_seconds(s.hists["latency"], v)
        s.counts["ok"] += 1
        s.counts["sent"] += 1
    s.series = {"ok": [index + 1] * (3 + index)}
    return s


def test_merge_equals_one_worker_that_saw_everything() -> None:
    rng = random.Random(5)
    a = [rng.lognormvariate(-3, 1) for _ in range(5000)]
    b = [rng.lognormvariate(-2, 0.5) for _ in range(3000)] + [1.5, 3600.0, 7200.0]
    one = _worker(0, a + b)
    # Through the wire form, as the operator and `surge run` receive them.
    wa = parse_summary(summary_line(_worker(0, a)))
    wb = parse_summary(termination_message(_worker(1, b)))
    assert wa is not None
    assert wb is not None
    merged = merge([wa, wb])
    assert _counts(merged.hists["latency"]) == _counts(one.hists["latency"])
    assert merged.hists["latency"].get_total_count() == len(a) + len(b)
    for p in (50, 90, 99, 99.9, 100):
        assert merged.hists["latency"].get_value_at_percentile(p) == one.hists[
            "latency"
        ].get_value_at_percentile(p)
    assert merged.counts["ok"] == len(a) + len(b)
    assert merged.expected == 1000
    assert merged.workers == [0, 1]
    assert merged.series["ok"] == [3, 3, 3, 2]


def test_values_keep_three_significant_digits() -> None:
    s = WorkerSummary()
    for v in (0.000_5, 0.0123, 0.8, 42.0):
        record_seconds(s.hists["latency"], v)
    h = s.hists["latency"]
    for v in (0.000_5, 0.0123, 0.8, 42.0):
        got = h.get_highest_equivalent_value(int(v * 1e6)) / 1e6
        assert got == pytest.approx(v, rel=1e-3, abs=1e-6)


def test_termination_message_fits_or_marks() -> None:
    rng = random.Random(1)
    # A steady service: 50 ms plus about 1 ms of jitter, 20,000 requests.
    s = _worker(0, [0.05 + rng.expovariate(1000) for _ in range(20000)])
    for _ in range(20000):
        record_seconds(s.hists["service"], 0.05 + rng.expovariate(1000))
        record_seconds(s.hists["schedule_lag"], rng.expovariate(2000))
    s.series = {"ok": list(range(300)), "errors": [0] * 300, "dropped": [0] * 300}
    msg = termination_message(s)
    assert msg.startswith(COMPACT_PREFIX)
    assert len(msg.encode()) <= 4096
    back = parse_summary(msg)
    assert back is not None
    assert _counts(back.hists["latency"]) == _counts(s.hists["latency"])
    assert back.counts == s.counts
    # Too wide to fit: the marker, and the reader falls back to the log line.
    assert termination_message(s, limit=1000) == TOO_LARGE_MARKER
    assert parse_summary(TOO_LARGE_MARKER) is None


def test_parse_takes_the_last_summary_in_a_log() -> None:
    s = _worker(3, [0.1, 0.2])
    log = "SURGE-PROGRESS {}\nsome log line\n" + summary_line(s) + "\n"
    got = parse_summary(log)
    assert got is not None
    assert got.workers == [3]
    assert parse_summary("no summary here") is None


def test_other_versions_are_refused() -> None:
    data = _worker(0, [0.1]).to_json()
    data["v"] = 99
    with pytest.raises(ValueError, match="version"):
        WorkerSummary.from_json(data)
    with pytest.raises(ValueError, match="no summaries"):
        merge([])


def test_merge_takes_the_latest_attempt_on_the_earliest_timeline() -> None:
    a, b = _worker(0, [0.01]), _worker(1, [0.01])
    a.start_epoch, b.start_epoch = 1000.0, 1000.5  # b passed the barrier 0.5 s later
    a.last_attempt_s, a.late_max_s, a.counts["late"] = 12.0, 2.0, 7
    b.last_attempt_s, b.late_max_s, b.counts["late"] = 12.0, 2.5, 3
    back = [parse_summary(termination_message(w)) for w in (a, b)]
    assert None not in back
    merged = merge([w for w in back if w is not None])
    assert merged.last_attempt_s == pytest.approx(12.5)
    assert merged.late_max_s == 2.5
    assert merged.counts["late"] == 10
