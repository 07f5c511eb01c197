"""The image, checked statically (no Docker engine here): Dockerfile, context, pins."""

from __future__ import annotations

import re
import shlex

from tests.chart.runtime_deps import canonical, runtime_closure
from tests.support.cluster import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
CONSTRAINTS = REPO_ROOT / "docker" / "constraints.txt"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "dangling line continuation"
    return out


def _args() -> dict[str, str]:
    args = {}
    for word, rest in _instructions():
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
    return args


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions():
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _base_images() -> list[str]:
    args = _args()
    images = []
    for stage in _stages():
        ref = stage[0][1].split()[0]
        images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref))
    return images


def test_multi_stage_with_named_build_stage() -> None:
    stages = _stages()
    assert len(stages) >= 2
    assert stages[0][0][1].split()[-2:] == ["AS", "build"]
    final = stages[-1]
    assert any(w == "COPY" and "--from=build" in r for w, r in final)


def test_bases_are_pinned_and_never_latest() -> None:
    for image in _base_images():
        _, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{image}: no tag"
        assert tag != "latest", image
        assert "@sha256:" in image or re.fullmatch(r"[\w.-]+", tag), image
    # The runtime is distroless (no shell), the same Debian release as the build stage.
    build, runtime = _base_images()[0], _base_images()[-1]
    assert runtime.startswith("gcr.io/distroless/python3-debian12:nonroot")
    assert build.startswith("debian:12")


def test_final_stage_runs_as_numeric_non_root() -> None:
    final = _stages()[-1]
    users = [r for w, r in final if w == "USER"]
    assert users == ["65532:65532"]
    # runAsNonRoot can only verify a numeric user.
    assert all(part.isdigit() and int(part) != 0 for part in users[0].split(":"))


def test_final_stage_needs_no_shell() -> None:
    final = _stages()[-1]
    assert not [r for w, r in final if w == "RUN"], "distroless has no shell for RUN"
    for word in ("ENTRYPOINT", "CMD"):
        (value,) = [r for w, r in final if w == word]
        assert value.startswith("["), f"{word} must be exec form: {value}"
    assert dict(final)["ENTRYPOINT"] == '["surge"]'
    assert dict(final)["CMD"] == '["operator"]'


def test_code_is_root_owned_and_bytecode_prebuilt() -> None:
    final = _stages()[-1]
    copies = [r for w, r in final if w == "COPY"]
    assert copies and all("--chown=0:0" in c for c in copies)
    env = " ".join(r for w, r in final if w == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PATH=/venv/bin" in env
    build_runs = " ".join(r for w, r in _stages()[0] if w == "RUN")
    assert "compileall" in build_runs


def test_dependencies_come_from_the_lock_file() -> None:
    build = _stages()[0]
    copies = [shlex.split(r) for w, r in build if w == "COPY"]
    assert ["docker/constraints.txt", "docker/constraints.txt"] in copies
    runs = [r for w, r in build if w == "RUN" and "pip install" in r]
    assert any("--requirement docker/constraints.txt" in r for r in runs)
    # surge itself adds nothing unpinned, and the result is consistent.
    assert any("--no-deps" in r and "pip check" in r for r in runs)
    for r in runs:
        for spec in re.findall(r"pip install ([^&]+)", r):
            for token in spec.split():
                if re.match(r"^[A-Za-z][\w.-]*[=<>~]", token):
                    assert "==" in token, f"unpinned: {token}"


def test_lock_file_pins_the_whole_runtime_closure() -> None:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and re.fullmatch(r"[\w.+!-]+", version), f"not an exact pin: {line}"
        pins[canonical(name)] = version
    closure = runtime_closure()
    assert closure, "surge is not installed in this venv"
    missing = closure - set(pins)
    extra = set(pins) - closure
    assert not missing, f"regenerate docker/constraints.txt; missing {sorted(missing)}"
    assert not extra, f"not runtime dependencies: {sorted(extra)}"


def test_build_context_is_only_what_the_image_installs() -> None:
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "**"
    allowed = {r[1:] for r in rules if r.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "README.md",
        "surge/**",
        "operator/**",
        "loadgen/**",
        "docker/constraints.txt",
    }
    copied = {shlex.split(r)[0] for w, r in _stages()[0] if w == "COPY"}
    for src in copied:
        assert any(src.rstrip("/") == a.removesuffix("/**") for a in allowed), src
