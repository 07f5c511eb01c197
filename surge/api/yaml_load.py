"""Manifest files to YAML documents, with a one-line error for any file that is not one.

Binary, empty, huge and deeply nested files, aliases that expand without bound (a "billion
laughs"), duplicate keys: each is a ManifestError of one line, never a traceback. Merge keys
(`<<: *base`, and `<<: [*a, *b]`) work as kubectl's YAML reader does: the mapping's own keys
win over merged ones, earlier merged mappings over later ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 8 * 1024 * 1024
"""Far above any object the API server stores (about 1.5 MiB each)."""
MAX_DEPTH = 100
"""Nesting of mappings and lists in one document; the models cap what fields hold."""
MAX_NODES = 1_000_000
"""Values in one document with every alias expanded (what validation would walk)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlProblem(ValueError):
    """A file that is not a manifest; the message is one line."""


def _key(node: yaml.Node) -> Any:
    return (node.tag, node.value) if isinstance(node, yaml.ScalarNode) else id(node)


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last, and merges
    `<<` as kubectl (go-yaml) does."""

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Replace `<<` keys by the pairs they merge: the mapping's own keys win, then the
        earlier merged mapping (PyYAML lets a later one win in a list)."""
        own: list[tuple[yaml.Node, yaml.Node]] = []
        merged: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                own.append((key_node, value_node))
                continue
            subs = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for sub in subs:
                if not isinstance(sub, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(
                        "while merging", node.start_mark, "`<<` takes mappings", sub.start_mark
                    )
                self.flatten_mapping(sub)
                last = {_key(k): (k, v) for k, v in sub.value}  # within one, the last wins
                for key, pair in last.items():
                    merged.setdefault(key, pair)
        if merged:
            node.value = list(merged.values()) + own


def _mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue  # flatten_mapping (below) merges it; the mapping's own keys win
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1}); keep one", mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)  # flattens `<<` first


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_text(path: Path) -> str:
    """The file as UTF-8 text, or YamlProblem (binary, huge) / OSError (unreadable)."""
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise YamlProblem(f"the file is over {MAX_FILE_BYTES // 2**20} MiB; not a manifest")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(
            f"not a text file: byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8"
        ) from None


def check_shape(doc: Any, index: int) -> None:
    """YamlProblem when a document nests deeper than MAX_DEPTH or expands (aliases followed)
    to more than MAX_NODES values. Iterative: no recursion to run out of."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise YamlProblem(
                f"document {index}: over {MAX_NODES:,} values with its aliases expanded"
            )
        if depth > MAX_DEPTH:
            raise YamlProblem(f"document {index}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def load_all(text: str) -> list[Any]:
    """Every non-empty document of `text`; YamlProblem (one line) for anything else."""
    if "\x00" in text:
        raise YamlProblem("not a text file: it holds NUL bytes")
    try:
        docs = [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]
    except RecursionError:
        raise YamlProblem(f"nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        line = " ".join(str(problem).split())
        raise YamlProblem(f"{where}not valid YAML: {line}") from None
    for i, doc in enumerate(docs):
        check_shape(doc, i + 1)
    return docs
