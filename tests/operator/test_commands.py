"""`surge operator` refuses to start without credentials, with a message and no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from surge.cli import app
from surge.operator.settings import Settings


def test_operator_without_credentials_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config either
    result = CliRunner().invoke(app, ["operator", "-n", "x"])
    assert result.exit_code == 2
    assert "no Kubernetes credentials" in result.output
    assert "set KUBECONFIG" in result.output
    assert "Traceback" not in result.output


def _captured_settings(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> Settings:
    """Run `surge operator ARGS` up to the point kopf would start, and return the settings
    it would run with (kopf.operator is replaced; credentials are not needed)."""
    import kopf

    from surge.operator import commands, settings

    seen: dict[str, Any] = {}

    async def fake_operator(**kwargs: Any) -> None:
        seen["settings"] = kwargs["memo"].surge

    monkeypatch.setattr(commands, "credentials_problem", lambda: None)
    monkeypatch.setattr(kopf, "operator", fake_operator)
    monkeypatch.setattr(settings, "_installed", None)
    result = CliRunner().invoke(app, ["operator", *args])
    assert result.exit_code == 0, result.output
    out = seen["settings"]
    assert isinstance(out, Settings)
    assert settings.current() is out  # the handlers read the same instance
    return out


def test_query_overrides_from_the_environment_reach_the_operator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docs/operator.md promises SURGE_QUERY_<NAME>; `surge operator` used to drop them.
    monkeypatch.setenv("SURGE_QUERY_CPU", "sum(rate(x[1m]))")
    monkeypatch.setenv("SURGE_INTERVAL_S", "0.5")
    s = _captured_settings(monkeypatch, ["-n", "x"])
    assert s.queries == {"cpu": "sum(rate(x[1m]))"}
    assert s.interval_s == 0.5


def test_flags_override_the_environment_which_overrides_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SURGE_LOADGEN_IMAGE", "env/image:1")
    monkeypatch.setenv("SURGE_INTERVAL_S", "50")
    monkeypatch.setenv("SURGE_WORKER_METRICS_PORT", "9999")
    s = _captured_settings(monkeypatch, ["-n", "x", "--interval", "3"])
    assert s.loadgen_image == "env/image:1"  # env over default
    assert s.interval_s == 3.0  # flag over env
    assert s.worker_metrics_port == 9999
    assert s.start_delay_s == Settings().start_delay_s  # default


def test_a_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from surge.operator import commands

    monkeypatch.setattr(commands, "credentials_problem", lambda: None)
    monkeypatch.setenv("SURGE_INTERVAL_S", "lots")
    result = CliRunner().invoke(app, ["operator", "-n", "x"])
    assert result.exit_code == 2
    assert "SURGE_INTERVAL_S='lots'" in result.output
    assert "Traceback" not in result.output


def test_the_policy_file_is_read_and_a_bad_one_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    good = tmp_path / "policy.yaml"
    good.write_text("caps:\n  maxRate: 50\ntargets:\n  cidrs: [127.0.0.0/8]\n")
    s = _captured_settings(monkeypatch, ["-n", "x", "--policy", str(good)])
    assert s.policy.caps.max_rate == 50.0
    assert s.policy.targets.cidrs == ["127.0.0.0/8"]
    assert s.policy.caps.max_workers == 20  # the rest keeps the strict defaults

    from surge.operator import commands

    monkeypatch.setattr(commands, "credentials_problem", lambda: None)
    bad = tmp_path / "bad.yaml"
    bad.write_text("caps:\n  maxRte: 50\ntargets:\n  cidrs: [not-a-net]\n")
    monkeypatch.setenv("SURGE_POLICY_FILE", str(bad))
    result = CliRunner().invoke(app, ["operator", "-n", "x"])
    assert result.exit_code == 2
    assert "caps.maxRte" in result.output and "targets.cidrs" in result.output
    assert "Traceback" not in result.output
