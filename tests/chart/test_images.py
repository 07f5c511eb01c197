"""The image's recipe, checked statically: the Dockerfile, its context and pins, and that
hack/image/build.sh (`make image`, no daemon) follows the same steps; the SBOM generator on a
small fake root filesystem. tests/e2e/test_container.py runs the built image itself."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from types import ModuleType

from tests.chart.runtime_deps import canonical, runtime_closure
from tests.support.cluster import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
CONSTRAINTS = REPO_ROOT / "docker" / "constraints.txt"
BUILD_SH = REPO_ROOT / "hack" / "image" / "build.sh"
SBOM_PY = REPO_ROOT / "hack" / "image" / "sbom.py"


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


# ---- hack/image/build.sh: the same image without a daemon ---------------------------------------


def _script_var(name: str) -> str:
    match = re.search(rf"^{name}=(.*?)(?:\s+#.*)?$", BUILD_SH.read_text(), re.MULTILINE)
    assert match, f"{name} not set in {BUILD_SH}"
    return match.group(1).strip()


def test_build_script_pins_what_the_dockerfile_pins() -> None:
    build_runs = " ".join(r for w, r in _stages()[0] if w == "RUN")
    (pip_pin,) = re.findall(r"pip==([\w.]+)", build_runs)
    assert _script_var("PIP_VERSION") == pip_pin
    final = _stages()[-1]
    (user,) = [r for w, r in final if w == "USER"]
    assert _script_var("UID_GID") == user
    assert _script_var("VENV") == "/venv"


def test_build_script_sets_the_dockerfile_config() -> None:
    text = BUILD_SH.read_text()
    final = _stages()[-1]
    changes = dict(
        tuple(c.split(" ", 1))
        for c in re.findall(r"--change [\"']([^\"']*?(?:\[.*?\])?)[\"']", text)
    )
    assert changes["ENTRYPOINT"] == dict(final)["ENTRYPOINT"]
    assert changes["CMD"] == dict(final)["CMD"]
    env = " ".join(r for w, r in final if w == "ENV").split()
    script_env = re.findall(r"--change [\"']ENV ([^\"']+)[\"']", text)
    script_env = [e.replace("$VENV", "/venv") for e in script_env]
    assert sorted(script_env) == sorted(env)
    assert "USER $UID_GID" in text


def test_build_script_installs_the_lock_file_like_the_dockerfile() -> None:
    text = BUILD_SH.read_text()
    # The wheels of the lock file, then pip runs under the image's Python from the cache only.
    assert "--requirement docker/constraints.txt" in text
    assert "--no-index --find-links /wheels" in text
    assert "--requirement /wheels/constraints.txt" in text
    assert re.search(r"install -q --no-index --no-deps .*SURGEWHL", text)
    assert '"${PIP_IN[@]}" check' in text
    assert "compileall" in text
    # The wheel is built from exactly the Dockerfile's context.
    sources = _script_var("SOURCES").strip("()").split()
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    allowed = {r[1:].removesuffix("/**") for r in ignore if r.startswith("!")}
    assert set(sources) == allowed - {"docker/constraints.txt"}


def _sbom() -> ModuleType:
    spec = importlib.util.spec_from_file_location("surge_image_sbom", SBOM_PY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DPKG_STATUS = """Package: python3.11
Status: install ok installed
Priority: optional
Architecture: amd64
Source: python3.11 (3.11.2-6)
Version: 3.11.2-6+deb12u4
Description: Interactive high-level object-oriented language
 continuation: line

Package: perl
Status: deinstall ok config-files
Architecture: amd64
Version: 5.36.0-7

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u10
"""


def test_sbom_lists_debian_and_python_packages(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(DPKG_STATUS)
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n')
    site = root / "venv/lib/python3.11/site-packages"
    for name, version, licence in (("Foo_Bar", "1.0", "MIT"), ("surge", "0.1.0", "")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        if licence:
            meta += f"License-Expression: {licence}\n"
        (info / "METADATA").write_text(meta)
    out = tmp_path / "sbom.json"
    sbom = _sbom()
    assert sbom.main(["--rootfs", str(root), "--image", "localhost/surge:0.1.0",
                      "--version", "0.1.0", "--out", str(out)]) == 0  # fmt: skip
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    purls = [c["purl"] for c in bom["components"]]
    assert purls == [
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12",
        "pkg:deb/debian/python3.11@3.11.2-6%2Bdeb12u4?arch=amd64&distro=debian-12",
        "pkg:pypi/foo-bar@1.0",
        "pkg:pypi/surge@0.1.0",
    ]  # perl is not installed (config files only)
    foo = next(c for c in bom["components"] if c["name"] == "Foo_Bar")
    assert foo["licenses"] == [{"license": {"name": "MIT"}}]
    libc = next(c for c in bom["components"] if c["name"] == "libc6")
    assert libc["properties"] == [{"name": "debian:source", "value": "glibc"}]
    assert bom["metadata"]["component"]["type"] == "container"
