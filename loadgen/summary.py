"""Worker summaries: a compact, versioned record that N workers merge exactly.

Every timing is an HdrHistogram of one configuration (surge.loadgen.hdr, re-exported
here). Histograms with the same configuration add exactly (`add` sums bucket counts),
so merging N workers gives the histogram of one worker that saw every request; this is
why workers ship histograms, never percentiles.

Wire forms:
- JSON (`to_json`): {"v": 1, "kind": "surge-worker-summary", ..., "hists": {name:
  HdrHistogram's own base64+zlib encoding}}.
- One line (`summary_line`): "SURGE-SUMMARY " + the JSON, the last line of stdout.
- Compact (`compact`): "SURGE-SUMMARY-Z " + base64 of zlib(JSON) and the raw HDR
  payloads, for the 4 KiB Kubernetes termination message. `termination_message`
  drops the per-second series and then writes a marker ("SURGE-SUMMARY-TOO-LARGE")
  when even that does not fit: the reader then takes the last SURGE-SUMMARY line of
  the pod log. A narrow distribution fits (a few hundred distinct 3-digit buckets);
  thousands of requests spread over two decades of latency usually do not.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from surge.loadgen.hdr import HIGHEST_US as HIGHEST_US
from surge.loadgen.hdr import LOWEST_US as LOWEST_US
from surge.loadgen.hdr import SIGNIFICANT_DIGITS as SIGNIFICANT_DIGITS
from surge.loadgen.hdr import decode_histogram as decode_histogram
from surge.loadgen.hdr import encode_histogram as encode_histogram
from surge.loadgen.hdr import new_histogram as new_histogram
from surge.loadgen.hdr import record_many_seconds as record_many_seconds
from surge.loadgen.hdr import record_seconds as record_seconds
from surge.loadgen.outcome import merge_reasons

SUMMARY_VERSION = 1
SUMMARY_KIND = "surge-worker-summary"
SUMMARY_PREFIX = "SURGE-SUMMARY "
COMPACT_PREFIX = "SURGE-SUMMARY-Z "
TOO_LARGE_MARKER = "SURGE-SUMMARY-TOO-LARGE see the pod log for the SURGE-SUMMARY line"
PROGRESS_PREFIX = "SURGE-PROGRESS "
TERMINATION_LIMIT = 4096

HIST_NAMES = (
    "latency",
    "service",
    "ttft",
    "ttft_content",
    "tpot",
    "itl",
    "ntpot",
    "schedule_lag",
)
"""latency: e2e (open loop from the intended send); service: from the actual send;
ttft, ttft_content, tpot, itl, ntpot: streaming; schedule_lag: actual − intended send
(open loop)."""

COUNT_NAMES = (
    "sent",
    "ok",
    "good",
    "dropped",
    "tokens",
    "tokens_input",
    "tokens_from_usage",
    "tokens_from_chunks",
    "streamed",
    "connect",
    "timeout",
    "http_3xx",
    "http_4xx",
    "http_5xx",
    "protocol",
    "sent_total",
    "dropped_total",
    "late",
    "early",
)


@dataclass(slots=True)
class WorkerSummary:
    """One worker's (or a merge's) results. Counts are for the measured window."""

    loadtest: str = ""
    namespace: str = ""
    run_id: str = ""
    variant: str | None = None
    model: str = "constant"
    workers: list[int] = field(default_factory=list)
    """Indexes of the workers merged into this summary."""
    worker_count: int = 1
    start_epoch: float = 0.0
    """Wall-clock start of the load (the start barrier)."""
    window_start_s: float = 0.0
    """Start of the measured window, seconds after start_epoch (the warm-up)."""
    measured_s: float = 0.0
    """Length of the measured window in seconds (shorter when stopped early)."""
    expected: float | None = None
    """Open model: arrivals the schedule called for in the window (target × time)."""
    last_attempt_s: float | None = None
    """Open model: seconds after start_epoch of the last actual send or drop of a window
    arrival; past the window's end when the generator fell behind (counts["late"])."""
    late_max_s: float = 0.0
    """Open model: how far past the window's end the latest late send left, seconds."""
    lag_min_s: float | None = None
    """Open model: the smallest schedule lag (actual − intended send) of a window request,
    exact and signed: the histogram cannot hold a value below 1 µs, this can (a send that
    left early would show here, negative, and in counts["early"])."""
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_NAMES, 0))
    hists: dict[str, HdrHistogram] = field(
        default_factory=lambda: {n: new_histogram() for n in HIST_NAMES}
    )
    reasons: dict[str, int] = field(default_factory=dict)
    """Failed window requests by reason, "class: detail" -> count (bounded, outcome.py)."""
    series: dict[str, list[int]] = field(default_factory=dict)
    """Per-second counts since the load start: ok, errors, dropped (by completion) and sent
    (by the second the request left), for plots and results.trace."""
    cpu: list[dict[str, Any]] = field(default_factory=list)
    """One CPU record per worker for its window (surge.loadgen.cpustat.window_record)."""
    sweep: list[dict[str, Any]] | None = None
    """A capacity sweep's steps in the order run, each as results.sweep.steps[i] without its
    index (surge.loadgen.sweep_results.step_record); the counts above are all steps'."""

    def to_json(self, *, with_series: bool = True) -> dict[str, Any]:
        return {
            "v": SUMMARY_VERSION,
            "kind": SUMMARY_KIND,
            "loadtest": self.loadtest,
            "namespace": self.namespace,
            "runId": self.run_id,
            "variant": self.variant,
            "model": self.model,
            "workers": self.workers,
            "workerCount": self.worker_count,
            "startEpoch": self.start_epoch,
            "windowStartS": self.window_start_s,
            "measuredS": self.measured_s,
            "expected": self.expected,
            "lastAttemptS": self.last_attempt_s,
            "lateMaxS": self.late_max_s,
            "lagMinS": self.lag_min_s,
            "interrupted": self.interrupted,
            "counts": self.counts,
            **({"reasons": self.reasons} if self.reasons else {}),
            "cpu": self.cpu,
            "hists": {n: encode_histogram(h) for n, h in self.hists.items() if h.get_total_count()},
            **({"series": self.series} if with_series and self.series else {}),
            **({"sweep": self.sweep} if self.sweep is not None else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerSummary:
        """Raises ValueError on another version or kind."""
        if data.get("kind") != SUMMARY_KIND or data.get("v") != SUMMARY_VERSION:
            raise ValueError(
                f"not a version-{SUMMARY_VERSION} worker summary "
                f"(kind={data.get('kind')!r}, v={data.get('v')!r})"
            )
        counts = dict.fromkeys(COUNT_NAMES, 0)
        counts.update({k: int(v) for k, v in data.get("counts", {}).items()})
        hists = {n: new_histogram() for n in HIST_NAMES}
        for n, text in (data.get("hists") or {}).items():
            hists[n] = decode_histogram(text)
        return cls(
            loadtest=data.get("loadtest", ""),
            namespace=data.get("namespace", ""),
            run_id=data.get("runId", ""),
            variant=data.get("variant"),
            model=data.get("model", "constant"),
            workers=list(data.get("workers", [])),
            worker_count=int(data.get("workerCount", 1)),
            start_epoch=float(data.get("startEpoch", 0.0)),
            window_start_s=float(data.get("windowStartS", 0.0)),
            measured_s=float(data.get("measuredS", 0.0)),
            expected=None if data.get("expected") is None else float(data["expected"]),
            last_attempt_s=(
                None if data.get("lastAttemptS") is None else float(data["lastAttemptS"])
            ),
            late_max_s=float(data.get("lateMaxS", 0.0)),
            lag_min_s=None if data.get("lagMinS") is None else float(data["lagMinS"]),
            interrupted=bool(data.get("interrupted", False)),
            counts=counts,
            reasons={str(k): int(v) for k, v in (data.get("reasons") or {}).items()},
            hists=hists,
            series={k: [int(x) for x in v] for k, v in (data.get("series") or {}).items()},
            cpu=[dict(r) for r in data.get("cpu") or []],
            sweep=None if data.get("sweep") is None else [dict(r) for r in data["sweep"]],
        )


def merge(summaries: Iterable[WorkerSummary]) -> WorkerSummary:
    """The exact merge: counts and per-second series summed, histograms added.

    The window is the longest any worker measured (all share one timeline); expected
    arrivals add up because each worker's schedule is its share of the whole.
    Raises ValueError when given nothing.
    """
    items = list(summaries)
    if not items:
        raise ValueError("no summaries to merge")
    first = items[0]
    out = WorkerSummary(
        loadtest=first.loadtest,
        namespace=first.namespace,
        run_id=first.run_id,
        variant=first.variant,
        model=first.model,
        worker_count=first.worker_count,
        start_epoch=min(s.start_epoch for s in items),
        window_start_s=first.window_start_s,
        measured_s=max(s.measured_s for s in items),
        interrupted=any(s.interrupted for s in items),
    )
    expected = [s.expected for s in items if s.expected is not None]
    out.expected = sum(expected) if expected else None
    # Each worker's times are from its own start_epoch; the merge's are from the earliest.
    attempts = [
        s.start_epoch + s.last_attempt_s - out.start_epoch
        for s in items
        if s.last_attempt_s is not None
    ]
    out.last_attempt_s = max(attempts) if attempts else None
    out.late_max_s = max(s.late_max_s for s in items)
    lags = [s.lag_min_s for s in items if s.lag_min_s is not None]
    out.lag_min_s = min(lags) if lags else None
    sweeps = [s.sweep for s in items if s.sweep is not None]
    out.sweep = [step for sweep in sweeps for step in sweep] if sweeps else None
    for s in items:
        out.workers.extend(s.workers)
        out.cpu.extend(s.cpu)
        for k, v in s.counts.items():
            out.counts[k] = out.counts.get(k, 0) + v
        for n, h in s.hists.items():
            if h.get_total_count():
                out.hists.setdefault(n, new_histogram()).add(h)
        for k, seq in s.series.items():
            acc = out.series.setdefault(k, [])
            if len(acc) < len(seq):
                acc.extend([0] * (len(seq) - len(acc)))
            for i, x in enumerate(seq):
                acc[i] += x
    out.reasons = merge_reasons([s.reasons for s in items])
    out.workers.sort()
    out.cpu.sort(key=lambda r: r.get("worker", 0))
    return out


def summary_line(summary: WorkerSummary) -> str:
    return SUMMARY_PREFIX + json.dumps(summary.to_json(), separators=(",", ":"))


def compact(summary: WorkerSummary, *, with_series: bool = True) -> str:
    """COMPACT_PREFIX + base64 of length-prefixed parts: zlib(JSON without the histograms),
    then (name, raw HdrHistogram encoding) pairs. The HDR payloads are already
    zlib-compressed, so they are not base64-encoded twice."""
    data = summary.to_json(with_series=with_series)
    hists: dict[str, str] = data.pop("hists")
    parts = [zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 9)]
    for name, text in hists.items():
        parts += [name.encode(), base64.b64decode(text)]
    blob = b"".join(struct.pack(">I", len(p)) + p for p in parts)
    return COMPACT_PREFIX + base64.b64encode(blob).decode("ascii")


def _uncompact(text: str) -> WorkerSummary:
    blob = base64.b64decode(text, validate=True)
    parts: list[bytes] = []
    pos = 0
    while pos < len(blob):
        (n,) = struct.unpack_from(">I", blob, pos)
        parts.append(blob[pos + 4 : pos + 4 + n])
        pos += 4 + n
    if not parts or len(parts) % 2 != 1:
        raise ValueError("truncated compact summary")
    data = json.loads(zlib.decompress(parts[0]))
    data["hists"] = {
        parts[i].decode(): base64.b64encode(parts[i + 1]).decode("ascii")
        for i in range(1, len(parts), 2)
    }
    return WorkerSummary.from_json(data)


def termination_message(summary: WorkerSummary, limit: int = TERMINATION_LIMIT) -> str:
    """The compact summary if it fits `limit` bytes (without the series if need be), else
    the TOO_LARGE marker."""
    for with_series in (True, False):
        text = compact(summary, with_series=with_series)
        if len(text.encode()) <= limit:
            return text
    return TOO_LARGE_MARKER


def parse_summary(text: str) -> WorkerSummary | None:
    """A summary from a line, a compact message, a JSON document or a whole log
    (the last SURGE-SUMMARY line wins). None when there is none (or the marker).

    Raises ValueError when a summary is present but unreadable or of another version.
    """
    text = text.strip()
    if not text or text.startswith("SURGE-SUMMARY-TOO-LARGE"):
        return None
    if text.startswith("{"):
        return WorkerSummary.from_json(json.loads(text))
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith(COMPACT_PREFIX):
            try:
                return _uncompact(line[len(COMPACT_PREFIX) :])
            except (ValueError, zlib.error, struct.error) as exc:
                raise ValueError(f"unreadable compact summary: {exc}") from None
        if line.startswith(SUMMARY_PREFIX):
            return WorkerSummary.from_json(json.loads(line[len(SUMMARY_PREFIX) :]))
    return None


def first_summary(sources: Iterable[Callable[[], str | None]]) -> WorkerSummary | None:
    """The one summary reader (the operator and `surge run`): the summary in the first
    source that holds a readable one. Sources are tried in order, lazily (a pod log is
    fetched only when the termination message has none); a source that raises OSError,
    returns nothing or holds an unreadable summary is skipped."""
    for source in sources:
        try:
            text = source()
        except OSError:
            continue
        if not text:
            continue
        try:
            summary = parse_summary(text)
        except ValueError:
            continue
        if summary is not None:
            return summary
    return None
