"""bombardier in the fixed-rate bench: its JSON totals, the steady window read off the
target's response counter, the report's Surge/bombardier line, and the counting target."""

from __future__ import annotations

import http.client
import itertools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from surge.bench.bombardier import (
    BOMBARDIER_ENV,
    bombardier_path,
    bombardier_rate,
    parse_result,
    read_samples,
    steady_window,
    wait_for_sample_after,
)
from surge.bench.cpu import Rate
from surge.bench.rate import RATE
from surge.bench.report import bombardier_line, rate_report
from surge.bench.targets import start, stop

# What bombardier v1.2.6 printed (`-c 50 -r 1000 -d 1s -t 5s -p result -o json`).
REAL = (
    '{"spec":{"numberOfConnections":50,"testType":"timed","testDurationSeconds":1,'
    '"method":"GET","url":"http://127.0.0.1:45159/","body":"","stream":false,'
    '"timeoutSeconds":5,"client":"fasthttp","rate":1000},"result":{"bytesRead":66660,'
    '"bytesWritten":63630,"timeTakenSeconds":1.000597977,"req1xx":0,"req2xx":1010,'
    '"req3xx":0,"req4xx":0,"req5xx":0,"others":0,"latency":{"mean":142.82277227722773,'
    '"stddev":77.80170428454971,"max":697},"rps":{"mean":1008.873492173325,'
    '"stddev":82.39431910622011,"max":1433.950586923145,"percentiles":{"50":999.496254,'
    '"75":1004.083003,"90":1035.670941,"95":1059.665303,"99":1433.950587}}}}'
)


def test_its_json_totals() -> None:
    t = parse_result(REAL)
    assert (t.completed, t.errors, t.secs) == (1010, 0, 1.000597977)


def test_non_2xx_and_errors_count_as_completed_and_as_errors() -> None:
    text = REAL.replace('"req2xx":1010', '"req2xx":1000').replace('"req5xx":0', '"req5xx":7')
    text = text.replace('"others":0', '"others":3')
    t = parse_result(text)
    assert (t.completed, t.errors) == (1010, 10)


def test_output_that_is_not_its_result_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="bombardier's JSON result is not as expected"):
        parse_result("dial tcp 127.0.0.1:1: connect: connection refused")
    with pytest.raises(ValueError, match="req2xx"):
        parse_result('{"result": {"req1xx": 0}}')


def _samples(start_i: int, end_i: int, per_step: int, last_i: int) -> list[tuple[float, float]]:
    """A counter sampled every 10 ms (t = i/100): 0 up to start_i, then per_step more at
    each sample up to end_i, then flat up to last_i."""
    out, n = [], 0
    for i in range(last_i + 1):
        if start_i < i <= end_i:
            n += per_step
        out.append((i / 100, float(n)))
    return out


def test_the_window_starts_a_warmup_after_the_load_and_ends_inside_it() -> None:
    # 5,000 req/s (50 a 10 ms step) from t = 10.00 to 18.00, the counter read to 18.50.
    samples = _samples(1000, 1800, 50, 1850)
    a, b, n = steady_window(samples, 8.0, 1.0) or (0.0, 0.0, 0.0)
    # The last sample below the final count is 17.99: the window stops there, inside.
    assert (a, b) == (11.0, 17.99)
    assert n == 50 * 699
    assert n / (b - a) == pytest.approx(5000)


def test_a_run_that_ended_early_is_cut_at_its_end() -> None:
    # The load stopped at 15.00 of the 8 s asked: the window ends at 14.99, not 18.00.
    samples = _samples(1000, 1500, 50, 1600)
    a, b, n = steady_window(samples, 8.0, 1.0) or (0.0, 0.0, 0.0)
    assert (a, b, n) == (11.0, 14.99, 50 * 399)


def test_no_window_without_answers_or_without_steady_time() -> None:
    assert steady_window([], 8.0, 1.0) is None
    assert steady_window([(1.0, 0.0), (2.0, 0.0)], 8.0, 1.0) is None
    # Answers for 0.5 s only: nothing after the 1 s warm-up.
    assert steady_window(_samples(100, 150, 50, 200), 8.0, 1.0) is None


def _kept(us_per_request: float, secs: float = 7.0) -> Rate:
    n = RATE * secs
    return Rate(requests=n, wall_s=secs, cpu_s=n * us_per_request / 1e6)


def test_the_ratio_is_printed_with_k6_named_and_no_goal_judged() -> None:
    line = bombardier_line(_kept(20.0), _kept(40.0))
    assert line.startswith("Surge/bombardier CPU per request (http): 0.50× (printed, not a goal")
    assert "stands in for k6 (AGPL, not allowed here)" in line
    assert "met" not in line


def test_a_missing_or_short_bombardier_is_not_compared() -> None:
    assert "not compared: bombardier has no run" in bombardier_line(_kept(25.0), None)
    short = Rate(requests=4000 * 7, wall_s=7.0, cpu_s=4000 * 7 * 20e-6)
    assert "not compared: bombardier completed 4,000 of 5,000 req/s" in bombardier_line(
        _kept(25.0), short
    )


def test_the_rate_report_has_its_row_and_line_when_it_ran() -> None:
    fr = {"http": {"surge": _kept(20.0), "vegeta": _kept(50.0), "bombardier": _kept(40.0)},
          "https": {}, "notes": []}  # fmt: skip
    out = rate_report(fr)
    assert "  bombardier http" in out and "40.0" in out
    assert "Surge/bombardier CPU per request (http): 0.50×" in out
    without = rate_report({"http": {"surge": _kept(25.0)}, "https": {}, "notes": []})
    assert "bombardier" not in without


def test_the_binary_is_found_from_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = tmp_path / "bombardier"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv(BOMBARDIER_ENV, str(exe))
    assert bombardier_path() == str(exe)


def test_the_fast_target_counts_its_answers(tmp_path: Path) -> None:
    count = tmp_path / "count"
    proc, url = start("fast", count=count)
    try:
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
        for _ in range(20):
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"ok"
        conn.close()
        deadline = time.monotonic() + 10  # bounded: the next sample comes within 10 ms
        while time.monotonic() < deadline:
            samples = read_samples(count)
            if samples and samples[-1][1] == 20:
                break
            time.sleep(0.05)
    finally:
        stop(proc)
    samples = read_samples(count)
    assert samples[0][1] == 0 and samples[-1][1] == 20
    assert all(t0 <= t1 for (t0, _), (t1, _) in itertools.pairwise(samples))
    assert abs(samples[-1][0] - time.time()) < 60  # wall-clock stamps, as the CPU sampler's


def test_surge_at_bombardiers_batching_is_printed_beside_it_with_its_lag() -> None:
    batched = Rate(requests=RATE * 7.0, wall_s=7.0, cpu_s=RATE * 7.0 * 18e-6, lag_p99_s=0.0104)
    runs: dict[str, Rate | None] = {
        "surge": _kept(32.0), "bombardier": _kept(16.0), "surge tick 10ms": batched
    }  # fmt: skip
    fr: dict[str, Any] = {"http": runs, "https": {}, "notes": []}
    out = rate_report(fr)
    assert "Surge/bombardier CPU per request (http): 2.00×" in out
    assert (
        "  with load.sendTick 10ms (bombardier's limiter releases a batch every 10 ms): "
        "1.12×, for schedule lag p99 10.40 ms" in out
    )
    # Without bombardier's run there is nothing to put it beside.
    runs["bombardier"] = None
    assert "with load.sendTick 10ms" not in rate_report(fr)


FAKE = """#!{python}
# A stand-in for bombardier: 20 GETs to the URL (its last argument) within 0.2 s, then
# bombardier's JSON result for them.
import http.client, sys, time
url = sys.argv[-1].removeprefix("http://").rstrip("/")
conn = http.client.HTTPConnection(url, timeout=5)
for _ in range(20):
    conn.request("GET", "/")
    conn.getresponse().read()
    time.sleep(0.01)
print({real!r}.replace('"req2xx":1010', '"req2xx":20'))
"""


def test_a_run_shorter_than_the_warmup_is_not_called_unanswered(tmp_path: Path) -> None:
    exe = tmp_path / "bombardier"
    exe.write_text(FAKE.format(python=sys.executable, real=REAL))
    exe.chmod(0o755)
    notes: list[str] = []
    assert bombardier_rate(tmp_path, str(exe), 100, 0.2, 1.0, notes) is None
    assert notes and "counted no responses" not in notes[0], notes
    assert "20" in notes[0], notes  # the answers it did count, and why there is no window


HUNG = """#!/bin/sh
exec {python} -c "import time; time.sleep(60)"
"""


def test_a_bombardier_that_never_ends_is_killed_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = tmp_path / "bombardier"
    exe.write_text(HUNG.format(python=sys.executable))
    exe.chmod(0o755)
    real = subprocess.Popen.communicate
    calls: list[float | None] = []

    def short(self: subprocess.Popen[str], timeout: float | None = None) -> tuple[str, str]:
        calls.append(timeout)
        # The first wait as bombardier_rate asks it, shortened: 0.5 s instead of secs + 60.
        return real(self, timeout=None if timeout is None else 0.5)

    monkeypatch.setattr(subprocess.Popen, "communicate", short)
    notes: list[str] = []
    assert bombardier_rate(tmp_path, str(exe), 100, 0.2, 1.0, notes) is None
    assert calls[0] == pytest.approx(60.2) and len(calls) == 2, calls
    assert notes == ["bombardier did not end within 60.2 s; killed"]


def test_the_final_count_is_a_sample_taken_after_the_exit(tmp_path: Path) -> None:
    """The wait ends at the first sample timed after bombardier's exit, not after a fixed
    sleep, and gives up at its limit when the target writes none."""
    count = tmp_path / "count"
    count.write_text("100.0 5\n101.0 9\n")
    t = time.monotonic()
    wait_for_sample_after(count, 100.5, limit_s=10)
    assert time.monotonic() - t < 5  # 101.0 is after the exit at 100.5: no wait
    t = time.monotonic()
    wait_for_sample_after(count, 101.0, limit_s=0.2)
    assert time.monotonic() - t >= 0.2  # none after 101.0: waited its whole limit
