"""The LoadTest a local run (`surge run`) executes: read from its file (or the packaged
demo), its dataset file resolved into inline rows, its targets checked to be on this
machine. Every refusal is a ManifestError that names the field."""

from __future__ import annotations

import importlib.resources
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from surge.api.loadtest import LoadTest, LoadTestSpec
from surge.api.manifests import (
    FieldError,
    ManifestError,
    load_documents,
    parse_resource,
    read_manifest,
)
from surge.loadgen.plan import with_inline_rows
from surge.loadgen.scenario import read_jsonl

DEMO_SOURCE = "surge/defaults/demo.yaml"
"""How the packaged demo manifest is named in messages."""


def load_loadtest(path: Path | None) -> tuple[LoadTest, Path]:
    """The LoadTest in FILE (or the packaged demo.yaml) and the directory relative paths
    are read from. Raises ManifestError."""
    if path is None:
        text = importlib.resources.files("surge.defaults").joinpath("demo.yaml").read_text()
        source, base = DEMO_SOURCE, Path.cwd()
    else:
        text = read_manifest(path)  # one-line errors: unreadable, binary, huge
        source, base = str(path), path.resolve().parent
    docs = load_documents(text, source)
    tests = [r for r in (parse_resource(d, source) for d in docs) if isinstance(r, LoadTest)]
    if len(tests) != 1:
        raise ManifestError(
            [FieldError("kind", f"surge run needs exactly one LoadTest (found {len(tests)})")],
            source,
        )
    return tests[0], base


def resolve_dataset(spec: LoadTestSpec, base: Path, source: str = "") -> LoadTestSpec:
    """Read a dataset file (relative to the manifest) into inline rows. Raises ManifestError."""
    ds = spec.scenario.dataset
    if ds is None or ds.inline is not None:
        return spec
    if ds.config_map_ref is not None:
        raise ManifestError(
            [
                FieldError(
                    "spec.scenario.dataset.configMapRef",
                    "local runs cannot read ConfigMaps; use inline or file",
                )
            ],
            source,
        )
    assert ds.file is not None
    path = Path(ds.file)
    path = path if path.is_absolute() else base / path
    try:
        rows = read_jsonl(path)
    except (OSError, ValueError) as exc:
        raise ManifestError([FieldError("spec.scenario.dataset.file", str(exc))], source) from None
    return with_inline_rows(spec, rows)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(spec: LoadTestSpec, allow_remote: bool, source: str = "") -> None:
    """Local runs send only to loopback unless allowed. Raises ManifestError."""
    urls = [spec.target.url]
    http = spec.target.readiness.http
    if http is not None and http.url:
        urls.append(http.url)
    for url in urls:
        if not allow_remote and not is_loopback(url):
            raise ManifestError(
                [
                    FieldError(
                        "spec.target.url",
                        f"{url} is not on this machine; local runs only send to loopback "
                        "(127.0.0.1, ::1, localhost) unless you pass --allow-remote",
                    )
                ],
                source,
            )
