"""The runtime dependency closure of the installed `surge` distribution (no extras).

Used to generate docker/constraints.txt and to test that it pins every runtime package:

    .venv/bin/python -m tests.chart.runtime_deps > docker/constraints.txt
"""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys

from packaging.requirements import Requirement


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(root: str = "surge") -> set[str]:
    """Canonical names of every distribution `root` needs at run time (extras excluded)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    stack: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while stack:
        name, extras = stack.pop()
        for line in md.distribution(name).requires or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
                continue
            key = (canonical(req.name), frozenset(req.extras))
            if key[0] == canonical(root) or key in seen:
                continue
            seen.add(key)
            stack.append((req.name, key[1]))
    return {name for name, _ in seen}


def constraints() -> str:
    """`pip freeze --exclude-editable` of this venv, filtered to the runtime closure."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--all"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    keep = runtime_closure()
    lines = [line for line in frozen if canonical(line.split("==")[0]) in keep]
    header = [
        "# Runtime pins for the Surge image, from the dev venv:",
        "#   .venv/bin/python -m tests.chart.runtime_deps > docker/constraints.txt",
        "# (pip freeze --exclude-editable --all, filtered to surge's runtime dependency closure)",
    ]
    return "\n".join(header + sorted(lines, key=lambda line: canonical(line.split("==")[0]))) + "\n"


if __name__ == "__main__":
    sys.stdout.write(constraints())
