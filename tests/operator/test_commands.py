"""`surge operator` refuses to start without credentials, with a message and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from surge.cli import app


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
