"""Operator-wide settings: built once, from defaults < SURGE_* environment < `surge operator` flags.

`load()` is the only constructor the operator uses; kopf's handlers read the installed
instance (`install`/`current`), so the reconcile interval a decorator needs at import
comes from the same place as everything else.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

DEFAULT_IMAGE = "ghcr.io/surge-dev/surge:0.1.0"


class SettingsError(ValueError):
    """A SURGE_* variable that cannot be read; the message names it."""


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
    interval_s: float = 2.0
    """How often an in-flight run is reconciled."""
    leader_elect: bool = False
    """Run as one of several replicas: act only while holding the leader Lease."""
    leader_namespace: str | None = None
    """Where the leader Lease lives (default: POD_NAMESPACE, the operator's own)."""
    leader_lease_s: float = 15.0
    """A leader not heard of for this long is replaced."""
    history_limit: int = 5
    queries: dict[str, str] = field(default_factory=dict)
    """PromQL overrides for every LoadTest (SURGE_QUERY_<NAME>=...); a spec's own win."""

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Defaults, overridden by SURGE_* variables in `env` (default: os.environ), overridden
        by the flags that are not None. Raises SettingsError naming a bad variable."""
        env = os.environ if env is None else env
        out = cls()
        from_env: dict[str, Any] = {}
        for name, var, parse in _ENV:
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                from_env[name] = parse(raw)
            except ValueError:
                raise SettingsError(f"{var}={raw!r} is not a valid value") from None
        queries = {
            k.removeprefix("SURGE_QUERY_").lower(): v
            for k, v in env.items()
            if k.startswith("SURGE_QUERY_")
        }
        if queries:
            from_env["queries"] = queries
        out = replace(out, **from_env)
        known = {f.name for f in fields(cls)}
        unknown = set(flags) - known
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        given = {k: v for k, v in flags.items() if v is not None and v != () and v is not False}
        return replace(out, **given)

    def host_allowed(self, host: str) -> bool:
        return not self.allowed_hosts or any(fnmatch.fnmatch(host, p) for p in self.allowed_hosts)


def _words(raw: str) -> tuple[str, ...]:
    return tuple(raw.split())


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _list(raw: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in raw.split(",") if v.strip())


_ENV: tuple[tuple[str, str, Any], ...] = (
    ("loadgen_image", "SURGE_LOADGEN_IMAGE", str),
    ("worker_command", "SURGE_WORKER_COMMAND", _words),
    ("prometheus_url", "SURGE_PROMETHEUS_URL", str),
    ("max_rate", "SURGE_MAX_RATE", float),
    ("allowed_hosts", "SURGE_ALLOWED_HOSTS", _list),
    ("start_delay_s", "SURGE_START_DELAY_S", float),
    ("worker_metrics_port", "SURGE_WORKER_METRICS_PORT", int),
    ("interval_s", "SURGE_INTERVAL_S", float),
    ("leader_elect", "SURGE_LEADER_ELECT", _flag),
    ("leader_namespace", "POD_NAMESPACE", str),
    ("leader_namespace", "SURGE_LEADER_NAMESPACE", str),
    ("leader_lease_s", "SURGE_LEADER_LEASE_S", float),
)

_installed: Settings | None = None


def install(settings: Settings) -> None:
    """Make `settings` the operator's (before surge.operator.handlers is imported)."""
    global _installed
    _installed = settings


def current() -> Settings:
    """The installed settings; without `surge operator` (kopf run, tests), from the env."""
    global _installed
    if _installed is None:
        _installed = Settings.load()
    return _installed
