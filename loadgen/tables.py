"""The tables `surge run` prints when the load is done: latency percentiles, the
throughput, error and window summary, and the thresholds with their verdicts."""

from __future__ import annotations

from rich.table import Table

from surge.api.results import RunResults
from surge.results.capacity_plot import CAPACITY_HEAD, capacity_headline, capacity_rows


def results_table(results: RunResults) -> list[Table]:
    """The results (judged: surge.loadgen.analysis) and their thresholds, as rich tables."""
    m = results.metrics

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.1f}ms"

    t = Table(title="Results", show_header=True, header_style="bold")
    for col in ("metric", "p50", "p90", "p95", "p99", "max"):
        t.add_column(col, justify="right" if col != "metric" else "left")
    label = "latency (from intended send)" if results.open_loop else "latency"
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
    thr, req = results.throughput, results.requests
    s.add_row(
        "throughput",
        f"{(thr.achieved_rps or 0):,.1f} req/s achieved"
        + (f" of {thr.target_rps:,.1f} target" if thr.target_rps else ""),
    )
    s.add_row("requests", f"{req.sent:,} sent, {req.ok:,} ok, {req.dropped:,} dropped")
    errs = results.errors
    by = ", ".join(f"{k} {v:,}" for k, v in errs.by_class.items() if v) or "none"
    rate = errs.rate
    s.add_row("errors", f"{'-' if rate is None else f'{rate * 100:.2f}%'} ({by})")
    for why in errs.reasons:
        s.add_row("", f"{why.count:,} {why.error_class}: {why.reason}")
    g = results.goodput
    if g.rps is not None:
        s.add_row("goodput", f"{g.rps:,.1f} req/s")
    tokens = results.tokens
    if tokens.output:
        rates = f"{tokens.output_rps or 0:,.1f}/s out"
        if tokens.input_rps is not None:
            rates += f", {tokens.input_rps:,.1f}/s in"
        source = "from usage" if tokens.exact else "counted as chunks: may undercount"
        s.add_row("tokens", f"{rates} ({source})")
    win = results.window
    s.add_row(
        "window",
        f"{win.measured_seconds:.1f}s measured (after warm-up)"
        + (
            f", {win.late_seconds:.1f}s past the planned {win.planned_seconds:.1f}s: "
            f"{req.late:,} sends late, the generator fell behind"
            if req.late
            else ""
        ),
    )
    tables = [t, s]
    if results.thresholds:
        v = Table(title="Thresholds", show_header=False)
        v.add_column("result")
        for r in results.thresholds:
            style = "green" if r.passed else "red"
            v.add_row(f"[{style}]{r.display}[/{style}]")
        tables.append(v)
    return tables


def sweep_table(results: RunResults) -> Table | None:
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
