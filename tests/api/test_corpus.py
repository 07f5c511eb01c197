"""Every malformed manifest gives exactly one clear, field-named error and exit code 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from surge.cli import app

CORPUS = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))
EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} lacks its '# expect:' line"
    return first.removeprefix("# expect: ")


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_invalid_manifest_names_the_field(path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("✗")]
    assert len(lines) == 1, f"expected one error, got: {result.output}"
    assert _expected(path) in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


def test_validate_subprocess_prints_no_traceback() -> None:
    bad = [str(p) for p in CORPUS[:5]]
    proc = subprocess.run(
        [sys.executable, "-m", "surge", "validate", *bad],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.count("✗") == 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_valid(path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output
