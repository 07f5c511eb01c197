"""The bench runs a worker once more when its /metrics port was taken between free_port()
and the bind (the harness's race, not the worker's); any other failure stands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from surge.bench import worker


def test_a_taken_port_is_retried_once_in_a_fresh_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names: list[str] = []
    ran = object()

    def once(tmp: Path, name: str, spec: dict[str, Any], *_: Any) -> Any:
        names.append(name)
        if len(names) == 1:
            raise RuntimeError(
                "surge worker w exited 1: OSError: [Errno 98] Address already in use"
            )
        return ran

    monkeypatch.setattr(worker, "_run_once", once)
    assert worker.run_worker(tmp_path, "w", {}) is ran
    assert names == ["w", "w-retry"]


def test_any_other_failure_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def once(tmp: Path, name: str, spec: dict[str, Any], *_: Any) -> Any:
        raise RuntimeError("surge worker w exited 2: bad plan")

    monkeypatch.setattr(worker, "_run_once", once)
    with pytest.raises(RuntimeError, match="bad plan"):
        worker.run_worker(tmp_path, "w", {})
