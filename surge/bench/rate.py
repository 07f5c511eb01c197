"""CPU per request at a fixed rate: Surge, vegeta, bombardier (standing in for k6, which
is not allowed here: AGPL) and Locust against the same target in the same run (http,
RATE req/s; bombardier against a `fast` target of its own that counts its answers,
surge.bench.bombardier), then Surge and Locust over https (TLS_RATE req/s; a
self-signed certificate made for the run).

Every client runs pinned to the client core, the target to the target core, for
RATE_SECS s; CPU seconds of the client process (/proc/PID/stat, sampled) and the
requests it completed are both counted in the same steady window, from 1 s after the
load starts to its end: CPU per request = CPU seconds ÷ completed requests. Goals
(printed, not asserted; issue #29): Surge ≤ 0.7× vegeta's CPU per request on http at
5,000 req/s; Surge ≥ 3× Locust's requests per CPU second on https.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from surge.bench.bombardier import bombardier_path, bombardier_rate
from surge.bench.cpu import CLIENT_CORE, TARGET_CORE, CpuSampler, Rate, pin_prefix, settle
from surge.bench.peers import go_tool, locust_speed
from surge.bench.targets import start, stop
from surge.bench.worker import run_worker
from surge.loadgen.aggregate import compute_results

RATE, RATE_SECS, WARMUP_S = 5000, 8, 1.0
TLS_RATE = 2000
"""https runs at this rate: Locust's whole core does ~4,000 https requests a second here."""
TLS_TICK = "2ms"
"""https is also run with this load.sendTick: fewer wake-ups a request for up to a tick
of schedule lag (the default, 1 ms, is the run the goal judges)."""
BATCH_TICK = "10ms"
"""http is also run with this load.sendTick beside bombardier, whose rate limiter releases
its requests in batches every 10 ms (v1.2.6): the two then wake about as often."""
VEGETA_GOAL = 0.7
"""Surge's CPU per request at RATE over vegeta's, at most (issue #29)."""
LOCUST_USERS = 50
VEGETA_ENV = "SURGE_BENCH_VEGETA"
"""Path of the vegeta binary (`make bench` builds it into .venv/gobin)."""


def vegeta_path() -> str | None:
    return go_tool("vegeta", VEGETA_ENV)


def self_signed(tmp: Path) -> tuple[str, str] | None:
    """(certificate, key) for 127.0.0.1, made with openssl; None without openssl."""
    if shutil.which("openssl") is None:
        return None
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1"]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=30)
    return str(cert), str(key)


@contextlib.contextmanager
def trusting(cert: str | None) -> Iterator[None]:
    """Worker processes spawned inside trust `cert` (SSL_CERT_FILE: the default context
    that aiohttp builds reads it), as a cluster's workers would trust a mounted CA."""
    old = os.environ.get("SSL_CERT_FILE")
    if cert is not None:
        os.environ["SSL_CERT_FILE"] = cert
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old


def surge_rate(tmp: Path, url: str, name: str, rate: int = RATE, tick: str | None = None) -> Rate:
    spec = {
        "target": {"url": url},
        "scenario": {"method": "GET", "path": "/", "timeout": "5s"},
        "load": {"model": "constant", "warmup": f"{WARMUP_S}s",
                 "stages": [{"duration": f"{RATE_SECS}s", "target": rate}],
                 **({"sendTick": tick} if tick else {})},
        "safety": {"maxRate": rate},
    }  # fmt: skip
    run = run_worker(tmp, name, spec)
    a, b = run.start_at + WARMUP_S, run.start_at + RATE_SECS
    c = run.summary.counts
    done = c["ok"] + sum(c[k] for k in ("connect", "timeout", "protocol", "http_4xx", "http_5xx"))
    lag = compute_results(run.summary).metrics["schedule_lag.p99"]
    return Rate(done, b - a, run.sampler.cpu_between(a, b), lag)


def vegeta_attack(
    tmp: Path, exe: str, url: str, rate: int, secs: float, name: str
) -> tuple[list[list[str]], CpuSampler]:
    """`vegeta attack` pinned to the client core at `rate` for `secs` (keep-alive, 5 s
    timeout): its results as `vegeta encode --to csv` rows, and its CPU sampler."""
    out = tmp / f"{name}.bin"
    argv = [exe, "attack", f"-rate={rate}/s", f"-duration={secs:g}s", "-keepalive=true",
            "-timeout=5s", f"-output={out}"]  # fmt: skip
    proc = subprocess.Popen(
        [*pin_prefix(CLIENT_CORE), *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sampler = CpuSampler(proc.pid)
    assert proc.stdin is not None
    proc.stdin.write(f"GET {url}/\n".encode())
    proc.stdin.close()
    try:
        proc.wait(timeout=secs + 60)
    except subprocess.TimeoutExpired:
        proc.kill()  # a hung run must not outlive the bench; its results so far still count
        proc.wait()
    enc = subprocess.run(
        [exe, "encode", "--to", "csv", str(out)], capture_output=True, text=True, timeout=120
    )
    out.unlink(missing_ok=True)
    return list(csv.reader(enc.stdout.splitlines())), sampler


def vegeta_rate(tmp: Path, exe: str, url: str) -> Rate | None:
    """vegeta attack at RATE for RATE_SECS, then the completions in the steady window
    counted from its results (send time + latency)."""
    results, sampler = vegeta_attack(tmp, exe, url, RATE, RATE_SECS, "vegeta")
    rows = [r for r in results if len(r) > 2]
    if not rows:
        return None
    first = min(int(r[0]) for r in rows) / 1e9  # the first send: the load's start
    a, b = first + WARMUP_S, first + RATE_SECS
    n = sum(1 for r in rows if a <= (int(r[0]) + int(r[2])) / 1e9 <= b)  # completions
    return Rate(n, b - a, sampler.cpu_between(a, b))


def fixed_rate(tmp: Path) -> dict[str, Any]:
    """{"http": {tool: Rate | None}, "https": {tool: Rate | None}, "notes": [...]}."""
    out: dict[str, Any] = {"http": {}, "https": {}, "notes": []}
    # Each tool starts with the loopback's ports free (a collapsed run before, e.g. the
    # ladder's vegeta, leaves tens of thousands in TIME_WAIT).
    settle()
    proc, url = start("fast", core=TARGET_CORE)
    try:
        out["http"]["surge"] = surge_rate(tmp, url, "rate-http")
        exe = vegeta_path()
        settle()
        out["http"]["vegeta"] = vegeta_rate(tmp, exe, url) if exe else None
        if exe is None:
            out["notes"].append("vegeta not built (make bench builds it with go)")
        bomb = bombardier_path()
        if bomb is None:
            out["http"]["bombardier"] = None
            out["notes"].append("bombardier not built (make bench builds it with go)")
        else:
            settle()
            out["http"]["bombardier"] = bombardier_rate(
                tmp, bomb, RATE, RATE_SECS, WARMUP_S, out["notes"]
            )
            settle()  # Surge batched as bombardier's limiter batches (BATCH_TICK)
            out["http"][f"surge tick {BATCH_TICK}"] = surge_rate(
                tmp, url, "rate-http-tick", RATE, tick=BATCH_TICK
            )
        settle()
        out["http"]["locust"] = locust_speed(
            tmp, url, users=LOCUST_USERS, secs=RATE_SECS, rate=RATE
        )
    finally:
        stop(proc)
    tls = self_signed(tmp)
    if tls is None:
        out["notes"].append("https skipped: no openssl")
        return out
    settle()
    proc, url = start("fast", core=TARGET_CORE, tls=tls)
    try:
        with trusting(tls[0]):
            out["https"]["surge"] = surge_rate(tmp, url, "rate-https", TLS_RATE)
            settle()
            out["https"][f"surge tick {TLS_TICK}"] = surge_rate(
                tmp, url, "rate-https-tick", TLS_RATE, tick=TLS_TICK
            )
        settle()
        out["https"]["locust"] = locust_speed(
            tmp, url, users=LOCUST_USERS, secs=RATE_SECS, rate=TLS_RATE
        )
    finally:
        stop(proc)
    return out
