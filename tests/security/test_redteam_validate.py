"""Red team: YAML that `surge validate` answers with a traceback instead of one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from surge.cli import app

HEAD = "apiVersion: surge.dev/v1alpha1\nkind: LoadTest\n"
FILES = {
    "complex-key-list": HEAD + "metadata: {name: x, ? [a, b] : c}\n",
    "complex-key-map": HEAD + "metadata: {name: x, ? {a: b} : c}\n",
    "int-over-4300-digits": HEAD + "metadata: {name: x}\nspec: {n: " + "1" * 5000 + "}\n",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_yaml_that_pyyaml_cannot_build_gets_one_line(name: str, tmp_path: Path) -> None:
    """Attack: complex mapping keys (`? [a, b] : c`) or a huge integer make validate crash."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(FILES[name])
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
