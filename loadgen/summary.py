"""Worker summaries: a compact, versioned record that N workers merge exactly.

Every timing is recorded in an HdrHistogram with a 1 µs unit, a range of 1 µs to
1 hour and 3 significant digits: any value is kept within 0.1% (1 µs below 1 ms),
which is far finer than a network's jitter, and the range covers every timeout a
LoadTest allows (scenario.timeout ≤ safety.maxDuration ≤ 1 h; larger values are
clamped to 1 h). Histograms with the same configuration add exactly (`add` sums
bucket counts), so merging N workers gives the histogram of one worker that saw
every request; this is why workers ship histograms, never percentiles.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

SUMMARY_VERSION = 1
SUMMARY_KIND = "surge-worker-summary"
SUMMARY_PREFIX = "SURGE-SUMMARY "
COMPACT_PREFIX = "SURGE-SUMMARY-Z "
TOO_LARGE_MARKER = "SURGE-SUMMARY-TOO-LARGE see the pod log for the SURGE-SUMMARY line"
PROGRESS_PREFIX = "SURGE-PROGRESS "
TERMINATION_LIMIT = 4096

LOWEST_US = 1
HIGHEST_US = 3600 * 1_000_000
SIGNIFICANT_DIGITS = 3

HIST_NAMES = ("latency", "service", "ttft", "tpot", "itl", "schedule_lag")
"""latency: e2e (open loop from the intended send); service: from the actual send;
ttft, tpot, itl: streaming; schedule_lag: actual − intended send (open loop)."""

COUNT_NAMES = (
    "sent",
    "ok",
    "good",
    "dropped",
    "tokens",
    "tokens_from_usage",
    "tokens_from_chunks",
    "streamed",
    "connect",
    "timeout",
    "http_4xx",
    "http_5xx",
    "protocol",
    "sent_total",
    "dropped_total",
    "late",
)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_seconds(hist: HdrHistogram, seconds: float) -> None:
    """Record a duration in seconds, rounded to µs and clamped to [1 µs, 1 h]."""
    us = int(seconds * 1_000_000 + 0.5)
    hist.record_value(min(max(us, LOWEST_US), HIGHEST_US))


def record_many_seconds(hist: HdrHistogram, seconds: Sequence[float]) -> None:
    """Record many durations at once: the same counts, min, max and total as calling
    `record_seconds` on each (same rounding, same clamping, HdrHistogram's own bucket
    index arithmetic), at a fraction of the cost: hdrh's `record_value` is pure Python
    (~1 µs a value), this is a few numpy passes per batch. The hot path appends
    durations to a list and folds them here once a second (`Recorder.flush`)."""
    n = len(seconds)
    if not n:
        return
    raw = np.floor(np.asarray(seconds, dtype=np.float64) * 1_000_000 + 0.5)
    us = np.clip(raw, LOWEST_US, HIGHEST_US).astype(np.int64)
    # bucket = bit_length(v | sub_bucket_mask) - unit_magnitude - (half_count_magnitude + 1);
    # frexp's exponent is the bit length, exact for integers below 2**53.
    ored = us | np.int64(hist.sub_bucket_mask)
    bits = np.frexp(ored.astype(np.float64))[1].astype(np.int64)
    bucket = bits - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub = us >> (bucket + hist.unit_magnitude)
    index = (
        ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + sub - hist.sub_bucket_half_count
    )
    where, counts = np.unique(index, return_counts=True)
    view = np.ctypeslib.as_array(hist.counts)
    view[where] += counts.astype(view.dtype)
    hist.total_count += n
    hist.min_value = min(hist.min_value, int(us.min()))
    hist.max_value = max(hist.max_value, int(us.max()))


def encode_histogram(hist: HdrHistogram) -> str:
    return str(hist.encode().decode("ascii"))


def decode_histogram(text: str) -> HdrHistogram:
    h = new_histogram()
    if text:
        h.add(HdrHistogram.decode(text.encode("ascii")))
    return h


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
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_NAMES, 0))
    hists: dict[str, HdrHistogram] = field(
        default_factory=lambda: {n: new_histogram() for n in HIST_NAMES}
    )
    series: dict[str, list[int]] = field(default_factory=dict)
    """Per-second counts since the load start (ok, errors, dropped), for plots."""

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
            "interrupted": self.interrupted,
            "counts": self.counts,
            "hists": {n: encode_histogram(h) for n, h in self.hists.items() if h.get_total_count()},
            **({"series": self.series} if with_series and self.series else {}),
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
            interrupted=bool(data.get("interrupted", False)),
            counts=counts,
            hists=hists,
            series={k: [int(x) for x in v] for k, v in (data.get("series") or {}).items()},
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
    for s in items:
        out.workers.extend(s.workers)
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
    out.workers.sort()
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
