"""Results: a pure function from a merged summary to the results JSON (docs/metrics.md).

Percentiles are HdrHistogram's value-at-percentile: with N recorded values, the
p-th percentile is the smallest recorded value v whose cumulative count reaches
max(1, round(p/100 × N)) (half up), reported as the highest value equivalent to v
at 3 significant digits. Histograms hold successful requests only; failed requests
are counted in errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

from surge.api.thresholds import METRICS, TIMING_FAMILIES
from surge.loadgen.cpustat import assess
from surge.loadgen.hdr import percentile_spectrum
from surge.loadgen.outcome import ERROR_CLASSES
from surge.loadgen.summary import WorkerSummary, decode_histogram, new_histogram

RESULTS_VERSION = 1
_STATS: tuple[tuple[str, float | None], ...] = (
    ("p50", 50.0),
    ("p75", 75.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p999", 99.9),
    ("max", None),
    ("min", None),
    ("mean", None),
)
SPECTRUM_NAMES = ("latency", "ttft", "tpot")
"""Histograms whose percentile spectrum the results carry (report plots)."""
CHUNK_COUNT_NOTE = (
    "{n} streams sent no usage: their output tokens are counted as token chunks, which "
    "undercounts a server that sends several tokens a chunk (TPOT then reads high and "
    "the token rate low); with streaming openai Surge asks for usage unless "
    "scenario.includeUsage is false"
)


TOP_ERRORS = 3
"""Reasons results.summary.topErrors (and so status.summary) carries."""


def error_reasons(tally: dict[str, int]) -> list[dict[str, Any]]:
    """The failed requests' reasons, most counted first: [{errorClass, reason, count}],
    at most outcome.MAX_REASONS of them and the rest as one `other` entry."""
    out = []
    for key, n in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])):
        cls, _, reason = key.partition(": ")
        out.append({"errorClass": cls, "reason": reason, "count": n})
    return out


def hist_stats_s(hist: HdrHistogram) -> dict[str, float | None]:
    """p50..p999, max, min, mean in seconds; every value None when the histogram is empty."""
    if not hist.get_total_count():
        return {name: None for name, _ in _STATS}
    out: dict[str, float | None] = {}
    for name, pct in _STATS:
        if pct is not None:
            us = hist.get_value_at_percentile(pct)
        elif name == "max":
            us = hist.get_max_value()
        elif name == "min":
            us = hist.get_min_value()
        else:
            us = hist.get_mean_value()
        out[name] = float(us) / 1e6
    return out


def _ms(stats: dict[str, float | None]) -> dict[str, float | None]:
    keys = ("p50", "p90", "p95", "p99", "max", "mean")
    return {k: None if stats[k] is None else round(float(stats[k] or 0) * 1000, 3) for k in keys}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def real_span_s(merged: WorkerSummary) -> float:
    """Seconds in which the window's requests were really sent: the planned window M, or
    from its start to the last actual send (or drop) of a window arrival when that came
    later, i.e. when the generator fell behind its schedule (docs/metrics.md)."""
    planned = merged.measured_s
    if merged.model == "closed" or merged.last_attempt_s is None:
        return planned
    return max(planned, merged.last_attempt_s - merged.window_start_s)


def compute_results(
    merged: WorkerSummary, *, timeseries: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The results dict: `summary`, flat `metrics` (base units, None = no data), readable
    sections and the optional per-second `timeseries`. Pure."""
    c = merged.counts
    planned = merged.measured_s
    measured = real_span_s(merged)
    sent, ok, dropped = c.get("sent", 0), c.get("ok", 0), c.get("dropped", 0)
    errors = {cls: c.get(cls, 0) for cls in ERROR_CLASSES}
    n_err = sum(errors.values())
    attempted = sent + dropped
    open_loop = merged.model != "closed"
    # The target is what the schedule asked for over the planned window; every achieved
    # rate is over the real span, so a generator that fell behind shows it.
    target_rps = (
        merged.expected / planned
        if open_loop and merged.expected is not None and planned > 0
        else None
    )
    achieved_rps = ok / measured if measured > 0 else None
    sent_rps = sent / measured if measured > 0 else None
    late = c.get("late", 0)

    fams = {f: hist_stats_s(merged.hists.get(f) or new_histogram()) for f in TIMING_FAMILIES}
    # The histogram holds nothing below 1 µs; the exact, signed minimum is kept apart, so
    # a send that left before its due time would show as a negative lag, not as 1 µs.
    if merged.lag_min_s is not None and fams["schedule_lag"]["min"] is not None:
        fams["schedule_lag"]["min"] = merged.lag_min_s
    metrics: dict[str, float | None] = {}
    for fam, stats in fams.items():
        for stat, value in stats.items():
            metrics[f"{fam}.{stat}"] = value
    metrics["errors.count"] = float(n_err)
    metrics["errors.rate"] = _ratio(n_err, sent)
    for cls, n in errors.items():
        metrics[f"errors.{cls}.count"] = float(n)
        metrics[f"errors.{cls}.rate"] = _ratio(n, sent)
    metrics["throughput.rps"] = achieved_rps
    metrics["throughput.achieved"] = (
        achieved_rps / target_rps if achieved_rps is not None and target_rps else None
    )
    good = c.get("good", 0)
    metrics["goodput.rps"] = good / measured if measured > 0 else None
    metrics["goodput.ratio"] = _ratio(good, attempted)
    metrics["requests.count"] = float(sent)
    metrics["dropped.count"] = float(dropped)
    metrics["requests.late"] = float(late) if open_loop else None
    metrics["dropped.rate"] = _ratio(dropped, attempted)
    tokens, tokens_in = c.get("tokens", 0), c.get("tokens_input", 0)
    streamed = measured > 0 and c.get("streamed", 0) > 0
    metrics["tokens.output_rps"] = tokens / measured if streamed else None
    from_usage, from_chunks = c.get("tokens_from_usage", 0), c.get("tokens_from_chunks", 0)
    # Input tokens are known only from usage: no usage at all is no data, not zero.
    metrics["tokens.input_rps"] = tokens_in / measured if streamed and from_usage else None
    unknown = set(metrics) - set(METRICS)
    assert not unknown, f"metrics outside surge.api.thresholds.METRICS: {sorted(unknown)}"

    reasons = error_reasons(merged.reasons)
    lat = fams["latency"]
    start = merged.start_epoch + merged.window_start_s
    return {
        "version": RESULTS_VERSION,
        "loadtest": merged.loadtest,
        "namespace": merged.namespace,
        "runId": merged.run_id,
        "variant": merged.variant,
        "model": merged.model,
        "workers": {"count": merged.worker_count, "reported": merged.workers},
        "interrupted": merged.interrupted,
        "summary": {
            "targetRps": None if target_rps is None else round(target_rps, 3),
            "achievedRps": None if achieved_rps is None else round(achieved_rps, 3),
            "p95Ms": None if lat["p95"] is None else round(lat["p95"] * 1000, 3),
            "errorRate": metrics["errors.rate"],
            "topErrors": reasons[:TOP_ERRORS],
        },
        "metrics": metrics,
        "throughput": {
            "targetRps": target_rps,
            "achievedRps": achieved_rps,
            "sentRps": sent_rps,
            "achievedRatio": metrics["throughput.achieved"],
            "denominator": "real span seconds (window.measuredSeconds)",
        },
        "latency": {
            **_ms(lat),
            "from": "intended send" if open_loop else "actual send",
        },
        "serviceTime": _ms(hist_stats_s(merged.hists.get("service") or new_histogram())),
        "ttft": _ms(fams["ttft"]),
        "ttftContent": _ms(fams["ttft_content"]),
        "tpot": _ms(fams["tpot"]),
        "itl": _ms(fams["itl"]),
        "ntpot": _ms(fams["ntpot"]),
        "scheduleLag": {
            **_ms(fams["schedule_lag"]),
            "minMs": None if merged.lag_min_s is None else round(merged.lag_min_s * 1000, 6),
            "early": c.get("early", 0),
        },
        "errors": {
            "rate": metrics["errors.rate"],
            "count": n_err,
            "byClass": errors,
            "reasons": reasons,
        },
        "requests": {
            "sent": sent,
            "completed": ok + n_err,
            "ok": ok,
            "dropped": dropped,
            "late": late,
            "lateMaxSeconds": round(merged.late_max_s, 6) if late else None,
        },
        "goodput": {"rps": metrics["goodput.rps"], "ratio": metrics["goodput.ratio"]},
        "tokens": {
            "output": tokens,
            "input": tokens_in if from_usage else None,
            "outputRps": metrics["tokens.output_rps"],
            "inputRps": metrics["tokens.input_rps"],
            "fromUsage": from_usage,
            "fromChunks": from_chunks,
            "exact": from_chunks == 0 if from_usage or from_chunks else None,
            "note": CHUNK_COUNT_NOTE.format(n=from_chunks) if from_chunks else None,
        },
        "window": {
            "start": start,
            "end": start + measured,
            "measuredSeconds": measured,
            "plannedSeconds": planned,
            "lateSeconds": max(measured - planned, 0.0),
            "warmupSeconds": merged.window_start_s,
        },
        "spectrum": {
            name: {"count": h.get_total_count(), "points": percentile_spectrum(h)}
            for name in SPECTRUM_NAMES
            if (h := merged.hists.get(name)) is not None and h.get_total_count()
        },
        # Each worker's CPU in its window and whether it was CPU-bound (validity).
        "generator": {"cpu": [assess(r) for r in merged.cpu]},
        "timeseries": list(timeseries or []),
    }


def build_timeseries(
    intervals: dict[int, dict[str, Any]], window_start_s: float = 0.0
) -> list[dict[str, Any]]:
    """Per-second points from merged progress records {sec: {ok, err, drop, hists[]}}.

    rps = ok responses completed in that second; p50/p95 over those responses.
    """
    out: list[dict[str, Any]] = []
    for sec in sorted(intervals):
        iv = intervals[sec]
        h = new_histogram()
        for text in iv.get("h", []):
            h.add(decode_histogram(text))
        stats = hist_stats_s(h)
        out.append(
            {
                "t": sec,
                "measured": sec >= window_start_s,
                "rps": iv.get("ok", 0),
                "errors": iv.get("err", 0),
                "dropped": iv.get("drop", 0),
                "inFlight": iv.get("inflight", 0),
                "p50Ms": None if stats["p50"] is None else round(stats["p50"] * 1000, 3),
                "p95Ms": None if stats["p95"] is None else round(stats["p95"] * 1000, 3),
            }
        )
    return out
