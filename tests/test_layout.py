"""The folders map into one package, and nothing shadows the standard library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_import_operator_from_repo_root_is_stdlib() -> None:
    code = "import operator, sys; print(operator.__file__)"
    # -I drops the preloaded module cache effect of site; -S keeps 'operator' unimported at start.
    for flags in ([], ["-S"]):
        out = subprocess.run(
            [sys.executable, *flags, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        assert "/lib/python3" in out, out


def test_folders_import_as_subpackages() -> None:
    import surge.loadgen
    import surge.operator

    assert Path(next(iter(surge.operator.__path__))).resolve() == (ROOT / "operator").resolve()
    assert Path(next(iter(surge.loadgen.__path__))).resolve() == (ROOT / "loadgen").resolve()
