"""Operator-wide settings: built once, from defaults < SURGE_* environment < `surge operator` flags.

`load()` is the only constructor the operator uses; kopf's handlers read the installed
instance (`install`/`current`), so the reconcile interval a decorator needs at import
comes from the same place as everything else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from surge.api.policy import ClusterPolicy, parse_policy

DEFAULT_IMAGE = "ghcr.io/surge-dev/surge:0.1.0"


class SettingsError(ValueError):
    """A SURGE_* variable that cannot be read; the message names it."""


@dataclass(frozen=True)
class Settings:
    loadgen_image: str = DEFAULT_IMAGE
    worker_command: tuple[str, ...] = ("surge", "worker")
    prometheus_url: str | None = None
    policy: ClusterPolicy = field(default_factory=ClusterPolicy)
    """The cluster admin's policy (docs/security.md): what any spec may ask for."""
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
        policy_file = flags.pop("policy_file", None) or env.get("SURGE_POLICY_FILE")
        if policy_file:
            from_env["policy"] = load_policy(Path(policy_file))
        out = replace(out, **from_env)
        known = {f.name for f in fields(cls)}
        unknown = set(flags) - known
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        given = {k: v for k, v in flags.items() if v is not None and v != () and v is not False}
        return replace(out, **given)

    @property
    def allowed_images(self) -> tuple[str, ...]:
        """The policy's images; the operator's own loadgen image is always one of them."""
        return (self.loadgen_image, *self.policy.images)

    @property
    def allowed_prometheus_urls(self) -> tuple[str, ...]:
        own = (self.prometheus_url,) if self.prometheus_url else ()
        return (*own, *self.policy.prometheus_urls)


def load_policy(path: Path) -> ClusterPolicy:
    """The policy file (YAML). Raises SettingsError naming the file and the bad field."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"policy file {path}: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise SettingsError(f"policy file {path}: expected a mapping of policy fields")
    try:
        return parse_policy(data)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"policy file {path}: {where}") from None


def _words(raw: str) -> tuple[str, ...]:
    return tuple(raw.split())


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_ENV: tuple[tuple[str, str, Any], ...] = (
    ("loadgen_image", "SURGE_LOADGEN_IMAGE", str),
    ("worker_command", "SURGE_WORKER_COMMAND", _words),
    ("prometheus_url", "SURGE_PROMETHEUS_URL", str),
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
