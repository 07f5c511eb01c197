"""Operator-wide settings, read once at start-up from flags and SURGE_* env vars."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

DEFAULT_IMAGE = "ghcr.io/surge-dev/surge:0.1.0"


def _env_list(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


@dataclass(frozen=True)
class Settings:
    loadgen_image: str = DEFAULT_IMAGE
    worker_command: tuple[str, ...] = ("surge", "worker")
    prometheus_url: str | None = None
    max_rate: float | None = None
    """Cluster-wide cap on any LoadTest's peak arrival rate, on top of spec.safety."""
    allowed_hosts: tuple[str, ...] = ()
    """Glob patterns a target host must match (empty: any host)."""
    start_delay_s: float = 2.0
    """Lead time between the start barrier opening and the first request."""
    worker_metrics_port: int = 9464
    """Workers serve /metrics here (0: off, e.g. when pods share one host in tests)."""
    history_limit: int = 5
    queries: dict[str, str] = field(default_factory=dict)
    """PromQL overrides for every LoadTest (SURGE_QUERY_<NAME>=...); a spec's own win."""

    @classmethod
    def from_env(cls) -> Settings:
        rate = os.environ.get("SURGE_MAX_RATE")
        return cls(
            loadgen_image=os.environ.get("SURGE_LOADGEN_IMAGE", DEFAULT_IMAGE),
            worker_command=tuple(os.environ.get("SURGE_WORKER_COMMAND", "surge worker").split()),
            prometheus_url=os.environ.get("SURGE_PROMETHEUS_URL") or None,
            max_rate=float(rate) if rate else None,
            allowed_hosts=tuple(_env_list("SURGE_ALLOWED_HOSTS")),
            start_delay_s=float(os.environ.get("SURGE_START_DELAY_S", "2")),
            worker_metrics_port=int(os.environ.get("SURGE_WORKER_METRICS_PORT", "9464")),
            queries={
                k.removeprefix("SURGE_QUERY_").lower(): v
                for k, v in os.environ.items()
                if k.startswith("SURGE_QUERY_")
            },
        )

    def host_allowed(self, host: str) -> bool:
        return not self.allowed_hosts or any(fnmatch.fnmatch(host, p) for p in self.allowed_hosts)
