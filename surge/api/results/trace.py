"""results.trace: the replayed curve beside the achieved per-second counts (load.model trace).

Bounded for status (docs/metrics.md, Trace replay): at most MAX_STORED entries per list, so a
24 h curve replayed for an hour keeps a few tens of KiB; longer runs sum counts into wider
buckets.
"""

from __future__ import annotations

from pydantic import Field

from surge.api.base import Model

MAX_STORED = 1000
"""The most points, and the most buckets per count list, that results keep."""


class TraceSection(Model):
    source: str
    """Where the curve came from, as admitted (status.loadSource)."""
    points: list[list[float]] = Field(default_factory=list)
    """[t seconds on the load's clock, req/s] after timeScale and rateScale; at most
    MAX_STORED, evenly thinned (first and last kept) when the curve had more."""
    points_total: int = 0
    """How many points the replayed curve had (the plan carries them all)."""
    bucket_seconds: int = 1
    """The width of each count below: 1 unless the run had over MAX_STORED seconds."""
    expected_per_second: list[float] = Field(default_factory=list)
    """The curve's integral over each bucket: the arrivals the schedule planned in it."""
    achieved_per_second: list[int] = Field(default_factory=list)
    """Requests that left in each bucket (by actual send time, all workers)."""
