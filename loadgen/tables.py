"""The tables `surge run` prints when the load is done: latency percentiles, the
throughput, error and window summary, and the thresholds with their verdicts."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from surge.api.status import ThresholdResult
from surge.results.capacity_plot import CAPACITY_HEAD, capacity_headline, capacity_rows


def results_table(results: dict[str, Any], checks: list[ThresholdResult]) -> list[Table]:
    """The results (from compute_results) and the judged thresholds, as rich tables."""
    m = results["metrics"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.1f}ms"

    t = Table(title="Results", show_header=True, header_style="bold")
    for col in ("metric", "p50", "p90", "p95", "p99", "max"):
        t.add_column(col, justify="right" if col != "metric" else "left")
    label = "latency (from intended send)" if results["model"] != "closed" else "latency"
    for fam, name in (
        ("latency", label),
        ("ttft", "ttft"),
        ("ttft_content", "ttft (first content)"),
        ("tpot", "tpot"),
        ("itl", "itl"),
        ("ntpot", "ntpot"),
        ("schedule_lag", "schedule lag"),
    ):
        if m.get(f"{fam}.p50") is None:
            continue
        t.add_row(name, *(ms(m[f"{fam}.{q}"]) for q in ("p50", "p90", "p95", "p99", "max")))
    s = Table(show_header=False, box=None)
    s.add_column("name")
    s.add_column("value", justify="right")
    thr = results["throughput"]
    req = results["requests"]
    s.add_row(
        "throughput",
        f"{(thr['achievedRps'] or 0):.1f} req/s achieved"
        + (f" of {thr['targetRps']:.1f} target" if thr["targetRps"] else ""),
    )
    s.add_row("requests", f"{req['sent']} sent, {req['ok']} ok, {req['dropped']} dropped")
    errs = results["errors"]
    by = ", ".join(f"{k} {v}" for k, v in errs["byClass"].items() if v) or "none"
    rate = errs["rate"]
    s.add_row("errors", f"{'-' if rate is None else f'{rate * 100:.2f}%'} ({by})")
    for r in errs.get("reasons") or []:
        s.add_row("", f"{r['count']} {r['errorClass']}: {r['reason']}")
    g = results["goodput"]
    if g["rps"] is not None:
        s.add_row("goodput", f"{g['rps']:.1f} req/s")
    tokens = results["tokens"]
    if tokens["output"]:
        rates = f"{tokens['outputRps']:.1f}/s out"
        if tokens.get("inputRps") is not None:
            rates += f", {tokens['inputRps']:.1f}/s in"
        source = "from usage" if tokens.get("exact") else "counted as chunks: may undercount"
        s.add_row("tokens", f"{rates} ({source})")
    win = results["window"]
    s.add_row(
        "window",
        f"{win['measuredSeconds']:.1f}s measured (after warm-up)"
        + (
            f", {win['lateSeconds']:.1f}s past the planned {win['plannedSeconds']:.1f}s: "
            f"{req['late']} sends late, the generator fell behind"
            if req.get("late")
            else ""
        ),
    )
    tables = [t, s]
    if checks:
        v = Table(title="Thresholds", show_header=False)
        v.add_column("result")
        for r in checks:
            style = "green" if r.passed else "red"
            v.add_row(f"[{style}]{r.display}[/{style}]")
        tables.append(v)
    return tables


def sweep_table(results: dict[str, Any]) -> Table | None:
    """A capacity sweep's steps in the order run, and the capacity they found: the
    report's rows (surge.results.capacity_plot), in a terminal table."""
    headline = capacity_headline(results)
    if headline is None:
        return None
    t = Table(title=f"Capacity sweep: {headline}", show_header=True, header_style="bold")
    for col in CAPACITY_HEAD:
        t.add_column(col, justify="right")
    for row in capacity_rows(results):
        t.add_row(*row)
    return t
