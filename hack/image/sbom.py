"""A CycloneDX 1.5 JSON SBOM of an image's root filesystem: its Debian packages (from the
rootfs's dpkg status database, as ``dpkg-query --admindir ROOTFS/var/lib/dpkg -W`` lists them)
and its Python packages (the metadata of every site-packages / dist-packages directory, read
with importlib.metadata; nothing in the image is executed).

    python3 hack/image/sbom.py --rootfs DIR --image NAME --version V --out FILE.cdx.json

Standard library only, so it runs with any Python >= 3.11. Prints the package counts.
hack/image/build.sh calls it on the finished tree, before the import.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote


def parse_dpkg_status(text: str) -> list[dict[str, str]]:
    """The installed packages of a dpkg ``status`` file: name, version, arch, source."""
    packages = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t"):
                continue  # a continuation line (Description, Conffiles)
            key, sep, value = line.partition(":")
            if sep:
                fields[key] = value.strip()
        if fields.get("Status", "").split()[-1:] != ["installed"]:
            continue
        source = fields.get("Source", fields["Package"]).split(" ")[0]
        packages.append(
            {
                "name": fields["Package"],
                "version": fields["Version"],
                "arch": fields.get("Architecture", ""),
                "source": source,
            }
        )
    return sorted(packages, key=lambda p: p["name"])


def os_release(rootfs: Path) -> dict[str, str]:
    for path in (rootfs / "etc/os-release", rootfs / "usr/lib/os-release"):
        if path.is_file():
            pairs = (line.partition("=") for line in path.read_text().splitlines())
            return {k: v.strip('"') for k, _, v in pairs if k}
    return {}


def python_paths(rootfs: Path) -> list[Path]:
    patterns = (
        "venv/lib/python3*/site-packages",
        "usr/lib/python3/dist-packages",
        "usr/local/lib/python3*/site-packages",
        "usr/local/lib/python3*/dist-packages",
    )
    return sorted({p for pattern in patterns for p in rootfs.glob(pattern) if p.is_dir()})


def python_packages(paths: list[Path]) -> list[dict[str, str]]:
    """name, version, license of every distribution whose metadata is in ``paths``."""
    found: dict[str, dict[str, str]] = {}
    for dist in importlib.metadata.distributions(path=[str(p) for p in paths]):
        meta = dist.metadata
        name = meta["Name"]
        if not name:
            continue
        licence = meta.get("License-Expression") or ""
        if not licence:
            short = (meta.get("License") or "").strip()
            licence = short if short and "\n" not in short and len(short) < 80 else ""
        if not licence:
            classifiers = meta.get_all("Classifier") or []
            lic = [c.split(" :: ")[-1] for c in classifiers if c.startswith("License ::")]
            licence = ", ".join(lic)
        key = re.sub(r"[-_.]+", "-", name).lower()
        found[key] = {"name": name, "key": key, "version": str(meta["Version"]), "license": licence}
    return sorted(found.values(), key=lambda p: p["key"])


def cyclonedx(
    image: str, version: str, debs: list[dict[str, str]], pys: list[dict[str, str]],
    os_info: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    distro = f"{os_info.get('ID', 'debian')}-{os_info.get('VERSION_ID', '')}".rstrip("-")
    components: list[dict[str, Any]] = []
    for d in debs:
        purl = f"pkg:deb/debian/{d['name']}@{quote(d['version'], safe='')}"
        purl += f"?arch={d['arch']}&distro={distro}"
        comp: dict[str, Any] = {
            "type": "library" if d["name"].startswith("lib") else "application",
            "bom-ref": purl,
            "name": d["name"],
            "version": d["version"],
            "purl": purl,
            "properties": [{"name": "debian:source", "value": d["source"]}],
        }
        components.append(comp)
    for p in pys:
        purl = f"pkg:pypi/{p['key']}@{quote(p['version'], safe='')}"
        comp = {
            "type": "library",
            "bom-ref": purl,
            "name": p["name"],
            "version": p["version"],
            "purl": purl,
        }
        if p["license"]:
            key = "expression" if " OR " in p["license"] or " AND " in p["license"] else "name"
            comp["licenses"] = (
                [{"expression": p["license"]}]
                if key == "expression"
                else [{"license": {"name": p["license"]}}]
            )
        components.append(comp)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": now,
            "tools": {"components": [{"type": "application", "name": "surge hack/image/sbom.py"}]},
            "component": {
                "type": "container",
                "bom-ref": image,
                "name": image.rsplit(":", 1)[0],
                "version": version,
            },
            "properties": [
                {"name": "surge:packages:debian", "value": str(len(debs))},
                {"name": "surge:packages:python", "value": str(len(pys))},
                {"name": "surge:os", "value": os_info.get("PRETTY_NAME", "")},
            ],
        },
        "components": components,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rootfs", type=Path, required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    status = args.rootfs / "var/lib/dpkg/status"
    debs = parse_dpkg_status(status.read_text()) if status.is_file() else []
    pys = python_packages(python_paths(args.rootfs))
    bom = cyclonedx(args.image, args.version, debs, pys, os_release(args.rootfs))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(bom, indent=1) + "\n")
    print(
        f"SBOM {args.out}: {len(debs) + len(pys)} packages "
        f"({len(debs)} Debian, {len(pys)} Python), CycloneDX {bom['specVersion']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
