"""HdrHistogram helpers: one configuration for every timing Surge records, and recording
in batches.

Every timing is recorded in an HdrHistogram with a 1 µs unit, a range of 1 µs to
1 hour and 3 significant digits: any value is kept within 0.1% (1 µs below 1 ms),
which is far finer than a network's jitter, and the range covers every timeout a
LoadTest allows (scenario.timeout ≤ safety.maxDuration ≤ 1 h; larger values are
clamped to 1 h). Histograms with the same configuration add exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3600 * 1_000_000
SIGNIFICANT_DIGITS = 3


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


SPECTRUM_STEPS = 4
"""Points per decade of 1/(1-p) in a percentile spectrum (p68, p82, p90, ... p99.9)."""


def percentile_spectrum(hist: HdrHistogram) -> list[tuple[float, float]]:
    """[(percentile, seconds)] for HdrHistogram's percentile-distribution plot: (0, min),
    (50, p50), then p = 100 × (1 − 10^(−j/SPECTRUM_STEPS)) for j = 2, 3, ... while
    1/(1−p) ≤ N recorded values (beyond that every percentile is the max), then
    (100, max). Values are value-at-percentile as in the results. Empty when empty."""
    n = hist.get_total_count()
    if not n:
        return []
    out = [(0.0, hist.get_min_value() / 1e6), (50.0, hist.get_value_at_percentile(50.0) / 1e6)]
    j = 2
    while (inv := 10 ** (j / SPECTRUM_STEPS)) <= n:
        pct = round(100.0 * (1.0 - 1.0 / inv), 6)
        out.append((pct, hist.get_value_at_percentile(pct) / 1e6))
        j += 1
    out.append((100.0, hist.get_max_value() / 1e6))
    return out
