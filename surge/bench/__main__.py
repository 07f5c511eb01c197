"""`make bench`: how fast and how exact one Surge worker is, on this machine, on loopback.

1. Speed: the worker (closed loop, 50 users, recording everything: HDR histograms,
   counters, per-second progress lines, a Prometheus endpoint that is scraped) against
   Locust FastHttpUser (50 users), each pinned to core 0 with taskset, the same raw
   target pinned to core 1. Rounds alternate; each tool's best round counts.
   "Per core" is requests per CPU second of the client process over its steady state
   (sampled from /proc/PID/stat), because on a shared machine a pinned process gets
   a varying share of its core; the wall-clock rate is printed beside it.
2. Open-loop accuracy: 2,000 req/s for 10 s (after 1 s warm-up) against a target that
   answers in 200 ms: achieved rate, dropped, schedule lag p99, latency p50/p99.
3. In-flight: concurrent 5 s streams (TTFT 100 ms, TPOT 50 ms, 100 tokens) one worker
   holds: levels 250 to 6,000 users (surge.bench.measure.STREAM_LEVELS), each stream held
   once; a level holds when every stream completes without error, ITL p99 < 75 ms and
   TTFT p99 < 200 ms (a level that misses is run once more); the ladder stops at the
   first miss, and says whose core was saturated (client, target) when it missed.

4. CPU per request at a fixed 5,000 req/s (open loop; https 2,000): Surge, vegeta,
   bombardier (standing in for k6, not allowed here: AGPL) and Locust on the same target
   kind in the same run; then Surge and Locust over https (a self-signed certificate made
   for the run). Goals printed: Surge ≤ 0.7× vegeta's CPU per request on http, ≥ 3×
   Locust per core on https (surge.bench.rate); Surge/bombardier printed, no goal.

5. `python -m surge.bench ladder` (`make bench-ladder`; not in the default run): the
   highest fixed rate one core sustains with delivered ≥ 99 % and schedule lag p99 ≤ 5 ms,
   Surge and vegeta (surge.bench.ladder).

Everything stays on 127.0.0.1 and is bounded in time (about 2.5 minutes in all).
Method and latest figures: docs/bench.md. The parts: surge.bench.measure (the three
measurements), .worker (Surge's worker under the shared supervisor, as `surge run` runs
it), .peers (Locust), .cpu (pinning, CPU accounting), .report (the printed report).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from surge.bench.ladder import ladder, ladder_report
from surge.bench.measure import in_flight, open_loop, speed
from surge.bench.rate import fixed_rate
from surge.bench.report import rate_report, report, stream_lines


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    only = set(sys.argv[1:])  # e.g. `python -m surge.bench speed`
    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sp = speed(tmp) if not only or "speed" in only else {"surge": [], "locust": []}
        ol = open_loop(tmp) if not only or "open" in only else None
        fl = in_flight(tmp) if not only or "streams" in only else []
        if "streams2" in only:  # not in `make bench`: the same ladder at 2 processes
            fl += in_flight(tmp, processes=2)
        fr = fixed_rate(tmp) if not only or "rate" in only else None
        # Not in the default run: a full climb costs 1.5-2 minutes (`make bench-ladder`).
        lad = ladder(tmp) if "ladder" in only else None
    sp["load"] = f"{load0:.2f}/{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    if sp["surge"] and ol is not None:
        print(report(sp, ol, fl))
    else:
        if sp["surge"] or ol is not None:
            print(json.dumps({"speed": [vars(r) for r in sp["surge"]],
                              "locust": [vars(r) for r in sp["locust"]],
                              "open": ol}, indent=1))  # fmt: skip
        if fl:
            print("\n".join(stream_lines(fl)))
    if fr is not None:
        print(rate_report(fr))
    if lad is not None:
        print(ladder_report(lad))
    print(f"\n(bench took {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
