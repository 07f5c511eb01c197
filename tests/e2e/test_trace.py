"""A LoadTest replays a traffic curve recorded in Prometheus at 10× speed: the operator reads
the curve at admission (status names the query and window), the worker follows it, and the
achieved count of each second matches the curve's integral within Poisson noise.

The curve is recorded by backfilling a request counter hours in the past (promtool), so the
test needs no minutes of live traffic: 300 s of history replay in 30 s.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from kubernetes import client

from tests.e2e.operator_support import (
    POLICY,
    Operator,
    alice,
    create,
    events,
    loadtest,
    wait_phase,
)
from tests.support import cluster as support
from tests.support.podrunner import PodRunner
from tests.support.prometheus import backfill, prometheus_missing_reason, running_prometheus

__all__ = ["alice"]

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

QUERY = 'sum(rate(http_requests_total{service="alice"}[1m]))'
WINDOW_S, STEP_S, SPEED = 300, 10, 10
WARMUP_S = 2
"""The worker's first second can stall on a busy machine (process start): left out."""


def recorded_rate(dt: float) -> float:
    """The traffic recorded before the window's start (dt = 0): a morning ramp and decline."""
    if dt < 120:
        return 10.0
    if dt < 240:
        return 10.0 + 30.0 * (dt - 120) / 120
    if dt < 360:
        return 40.0 - 25.0 * (dt - 240) / 120
    return 15.0


def counter(dt: int) -> float:
    """Requests counted by dt (seconds after the window's start), from 60 s before it."""
    return sum(recorded_rate(s + 0.5) for s in range(-60, dt))


def _openmetrics(t0: int) -> str:
    lines = ["# TYPE http_requests counter"]
    lines += [
        f'http_requests_total{{service="alice"}} {counter(dt)} {t0 + dt}'
        for dt in range(-60, WINDOW_S + 61, 5)
    ]
    return "\n".join([*lines, "# EOF"]) + "\n"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def chi2_critical(df: int, z: float = 3.09) -> float:
    """The chi-square quantile at p = 0.999 (z = 3.09), Wilson–Hilferty's approximation."""
    k = 2.0 / (9.0 * df)
    return df * (1.0 - k + z * math.sqrt(k)) ** 3


def test_a_recorded_curve_replays_at_10x_and_the_rate_follows_it(
    api_client: client.ApiClient, namespace: str, alice: str, pod_runner: PodRunner, tmp_path: Path
) -> None:
    missing = prometheus_missing_reason()
    if missing:
        pytest.skip(missing)
    # 3 h back, minute-aligned: clear of Prometheus' head block, on the 5 s sample grid.
    t0 = (int(time.time()) - 3 * 3600) // 60 * 60
    backfill(_openmetrics(t0), tmp_path / "prom" / "data")
    # A trace's PromQL reads any series into the plan: the admin's leave is needed.
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.read_text() + "allowCustomQueries: true\n")
    op = Operator(namespace, tmp_path / "operator.log", env={"SURGE_POLICY_FILE": str(policy)})
    op.start()
    try:
        with running_prometheus(tmp_path / "prom") as prom:
            trace = {
                "prometheus": {
                    "query": QUERY,
                    "start": _iso(t0),
                    "end": _iso(t0 + WINDOW_S),
                    "step": f"{STEP_S}s",
                },
                "timeScale": SPEED,
                "arrivals": "poisson",
            }
            lt = loadtest(
                "replay",
                alice,
                load={
                    "model": "trace",
                    "trace": trace,
                    "warmup": f"{WARMUP_S}s",
                    "workers": 1,
                    "seed": 11,
                },
            )
            del lt["spec"]["load"]["stages"]
            lt["spec"]["prometheus"] = {"url": prom.url}
            lt["spec"]["thresholds"] = ["errors.rate < 5%"]  # the curve is the subject here
            # The CRDs again, just before use: on a control plane shared with other test
            # sessions, one that started later may have applied an older schema, which would
            # prune the trace's fields.
            support.apply_crds(api_client, sorted((support.REPO_ROOT / "crds").glob("*.yaml")))
            create(api_client, namespace, lt)
            obj = wait_phase(api_client, namespace, "replay", {"Succeeded", "Failed"}, op, 180)
    finally:
        op.stop()
    status = obj["status"]
    assert status["phase"] == "Succeeded", (status.get("message"), op.tail())
    n_points = WINDOW_S // STEP_S + 1
    source = (
        f"trace from Prometheus {QUERY} [{_iso(t0)}, {_iso(t0 + WINDOW_S)}] step {STEP_S}s, "
        f"{n_points} points, timeScale {SPEED}"
    )
    started = [e for e in events(api_client, namespace, "replay") if e["reason"] == "RunStarted"]
    assert source in started[0]["message"]
    result = status["results"]["trace"]
    assert result["source"].startswith(source)
    # The curve is the recorded one: each point the mean rate of the minute before it. The
    # samples lie on the step grid, so Debian's Prometheus (2.42: the range [t − 1m, t] holds
    # 13 samples 60 s apart end to end) computes rate()[1m] exactly; results round to 1e-6.
    points = result["points"]
    assert len(points) == n_points
    for i, (t, rps) in enumerate(points):
        assert t == pytest.approx(i * STEP_S / SPEED)
        dt = i * STEP_S
        assert rps == pytest.approx((counter(dt) - counter(dt - 60)) / 60, abs=1e-6), i
    # The achieved count of each measured second (requests that left in it) against the
    # curve's integral over it (Poisson: variance = mean); the warm-up's are not counted.
    expected = result["expectedPerSecond"]
    achieved = result["achievedPerSecond"]
    assert len(expected) == WINDOW_S // SPEED
    achieved += [0] * (len(expected) - len(achieved))  # seconds that sent nothing at the end
    assert sum(achieved[:WARMUP_S]) == 0
    # Sends after the load's end are the late ones (an arrival due at 29.999 s that left
    # at 30.001 s), counted apart in results.requests.late.
    assert sum(achieved[len(expected) :]) == status["results"]["requests"]["late"]
    seconds = range(WARMUP_S, len(expected))
    chi2 = sum((achieved[s] - expected[s]) ** 2 / expected[s] for s in seconds)
    assert chi2 < chi2_critical(len(seconds)), list(zip(expected, achieved, strict=False))
    for s in seconds:  # and no single second far off: 4 σ (p ≈ 6e-5 each, 28 seconds)
        assert abs(achieved[s] - expected[s]) < 4 * math.sqrt(expected[s]), (s, expected, achieved)
    total, sent = sum(expected[WARMUP_S:]), status["results"]["requests"]["sent"]
    assert abs(sent - total) < 3 * math.sqrt(total), (sent, total)
    # Last: on a control plane shared with other sessions, another one's older CRD applied
    # meanwhile prunes this status field (the event and results above are not pruned).
    assert status["loadSource"].startswith(source)
