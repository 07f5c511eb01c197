"""Live progress of a local run: every worker's SURGE-PROGRESS records merged per
second, and the one-row table `surge run` redraws while the load runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from surge.loadgen.summary import decode_histogram, new_histogram


@dataclass
class Progress:
    """Merged per-second progress from every worker's SURGE-PROGRESS lines."""

    intervals: dict[int, dict[str, Any]] = field(default_factory=dict)
    ok: int = 0
    errors: int = 0
    dropped: int = 0
    in_flight: dict[tuple[int, int], int] = field(default_factory=dict)
    sending: dict[tuple[int, int], bool] = field(default_factory=dict)
    """Per (worker, process): its scheduler still had arrivals to send at its last record."""

    def add(self, rec: dict[str, Any]) -> None:
        iv = self.intervals.setdefault(
            int(rec["s"]), {"ok": 0, "err": 0, "drop": 0, "inflight": 0, "h": []}
        )
        iv["ok"] += rec.get("ok", 0)
        iv["err"] += rec.get("err", 0)
        iv["drop"] += rec.get("drop", 0)
        iv["inflight"] += rec.get("inflight", 0)
        if rec.get("h"):
            iv["h"].append(rec["h"])
        self.ok += rec.get("ok", 0)
        self.errors += rec.get("err", 0)
        self.dropped += rec.get("drop", 0)
        key = (int(rec.get("w", 0)), int(rec.get("p", 0)))
        self.in_flight[key] = int(rec.get("inflight", 0))
        self.sending[key] = bool(rec.get("sending", False))

    def latest(self) -> tuple[int, int, float | None]:
        """(second, ok responses in it, its p95 in ms) for the last complete second."""
        if not self.intervals:
            return 0, 0, None
        sec = max(self.intervals)
        iv = self.intervals[sec]
        h = new_histogram()
        for text in iv["h"]:
            h.add(decode_histogram(text))
        p95 = h.get_value_at_percentile(95) / 1000 if h.get_total_count() else None
        return sec, int(iv["ok"]), p95


def elapsed_label(duration_s: float, elapsed_s: float, late: bool) -> str:
    """'4/6s'; past the plan the real time shows: '6/6s +18s late' while a worker is still
    sending its schedule, '6/6s +2s draining' while only replies are awaited."""
    if elapsed_s <= duration_s + 0.5:
        return f"{min(elapsed_s, duration_s):.0f}/{duration_s:.0f}s"
    over = elapsed_s - duration_s
    return f"{duration_s:.0f}/{duration_s:.0f}s +{over:.0f}s {'late' if late else 'draining'}"


def progress_table(duration_s: float, prog: Progress, elapsed_s: float, workers: int) -> Table:
    """The live row: elapsed time, the last second's rate and p95, running totals."""
    _, rps, p95 = prog.latest()
    t = Table(title=None, box=None, show_header=True, header_style="bold")
    for col in ("elapsed", "rps", "p95", "ok", "errors", "dropped", "in flight", "workers"):
        t.add_column(col, justify="right")
    t.add_row(
        elapsed_label(duration_s, elapsed_s, any(prog.sending.values())),
        str(rps),
        "-" if p95 is None else f"{p95:.1f}ms",
        str(prog.ok),
        str(prog.errors),
        str(prog.dropped),
        str(sum(prog.in_flight.values())),
        str(workers),
    )
    return t
