"""The folders map into one package, nothing shadows the standard library, the imports
have no cycles and no module outgrows one job."""

from __future__ import annotations

import ast
import os
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


# -- import structure -----------------------------------------------------------------

SURGE = ROOT / "surge"
MAX_LINES = 350
TOP_PACKAGES = ("api", "loadgen", "operator", "results", "agent", "bench", "simulate")

# Edges (importer -> imported) between top-level parts that close a cycle today and are
# owned elsewhere. They are taken out of the graph before the cycle check; delete an entry
# once its import is gone (the test then keeps it gone, and fails while a stale entry stays).
KNOWN_PACKAGE_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()


def _modules() -> dict[str, Path]:
    """Every module of the surge package, by dotted name, through the operator/ and
    loadgen/ links (os.walk follows them; pathlib's rglob would not)."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(SURGE, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = Path(folder).relative_to(ROOT)
        for name in files:
            if not name.endswith(".py"):
                continue
            parts = [*rel.parts] + ([] if name == "__init__.py" else [name[:-3]])
            found[".".join(parts)] = Path(folder) / name
    return found


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported surge module: first line}. Every import statement counts,
    module level or not: inside functions and under `if TYPE_CHECKING:` too."""
    known = set(modules)
    namespaces = {m.rpartition(".")[0] for m in known} | {"surge.operator", "surge.loadgen"}

    def resolve(name: str) -> str | None:
        # The longest known prefix: `surge.api.loadtest.Target` is surge.api.loadtest.
        while name:
            if name in known or name in namespaces:
                return name
            name = name.rpartition(".")[0]
        return None

    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        package = _package_of(module, path)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from surge.loadgen import http1` imports a module, `from x import name`
                # a name of x: resolve() keeps the longest prefix that is a module.
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in targets:
                hit = resolve(name) if name.startswith("surge") else None
                if hit is not None and hit != module:
                    edges.setdefault(hit, node.lineno)
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _describe(
    component: list[str], graph: dict[str, set[str]], why: dict[tuple[str, str], str]
) -> str:
    inside = set(component)
    edges = sorted((a, b) for a in component for b in graph.get(a, ()) if b in inside)
    return " | ".join(f"{a} -> {b} ({why[a, b]})" for a, b in edges)


def _part(module: str) -> str:
    """surge.api.loadtest -> surge.api; surge.verdicts stays surge.verdicts."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in TOP_PACKAGES:
        return ".".join(parts[:2])
    return module


def _package_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    why: dict[tuple[str, str], str] = {}
    for module, edges in _imports(modules).items():
        a = _part(module)
        graph.setdefault(a, set())
        for target, line in edges.items():
            b = _part(target)
            if a != b:
                graph[a].add(b)
                where = f"{modules[module].relative_to(ROOT)}:{line} imports {target}"
                why.setdefault((a, b), where)
    return graph, why


def test_the_import_walk_sees_every_part() -> None:
    # Guards the walker itself: the links are followed and function-level imports count.
    graph = _imports(_modules())
    assert "surge.loadgen.engine" in graph and "surge.operator.handlers" in graph
    assert "surge.agent.server" in graph["surge.agent.command"]  # imported inside a function
    assert "surge.loadgen.http1" in graph["surge.loadgen.sender"]  # `from pkg import module`


def test_no_import_cycle_between_top_level_parts() -> None:
    graph, why = _package_graph()
    stale = sorted(e for e in KNOWN_PACKAGE_CYCLE_EDGES if e[1] not in graph.get(e[0], ()))
    assert not stale, f"these known edges are gone; drop them from the list: {stale}"
    pruned = {
        a: {b for b in bs if (a, b) not in KNOWN_PACKAGE_CYCLE_EDGES} for a, bs in graph.items()
    }
    cycles = _cycles(pruned)
    assert not cycles, "import cycles between parts of surge:\n" + "\n".join(
        _describe(c, pruned, why) for c in cycles
    )


def test_no_import_cycle_inside_loadgen() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    why: dict[tuple[str, str], str] = {}
    for module, edges in _imports(modules).items():
        if not module.startswith("surge.loadgen."):
            continue
        graph[module] = {t for t in edges if t.startswith("surge.loadgen.")}
        for target in graph[module]:
            why[module, target] = f"line {edges[target]}"
    cycles = _cycles(graph)
    assert not cycles, "import cycles inside surge.loadgen:\n" + "\n".join(
        _describe(c, graph, why) for c in cycles
    )


def test_no_module_over_the_size_limit() -> None:
    # One module, one job: past this size a file is usually doing several.
    too_long: dict[str, int] = {}
    for top in ("surge", "operator", "loadgen"):
        for folder, dirs, files in os.walk(ROOT / top):  # links are not followed: no repeats
            dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "tests"))
            for name in files:
                if name.endswith(".py"):
                    path = Path(folder) / name
                    lines = len(path.read_text().splitlines())
                    if lines > MAX_LINES:
                        too_long[str(path.relative_to(ROOT))] = lines
    assert not too_long, f"modules over {MAX_LINES} lines: {dict(sorted(too_long.items()))}"


def test_operator_is_grouped_by_concept() -> None:
    """The operator's folder shows its concepts: a subpackage per concept whose __init__ says
    what it owns, and no group of top-level modules sharing a name prefix (experiment_*.py)."""
    top = sorted(p.stem for p in (ROOT / "operator").glob("*.py"))
    prefixes = [name.split("_")[0] for name in top]
    assert len(prefixes) == len(set(prefixes)), top
    packages = sorted(p.parent for p in (ROOT / "operator").glob("*/__init__.py"))
    assert {p.name for p in packages} >= {"kube", "loadtest", "experiment", "policy"}
    for package in packages:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc, f"{package.name}/__init__.py says nothing of what it owns"
        assert len(doc.splitlines()) <= 2, package.name
