"""Reading manifests: YAML text in, typed resources or field-named errors out.

The CLI (`surge validate`, `surge run`) and the operator both go through
`parse_resource`, so a spec is judged the same way everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from surge.api.base import API_VERSION
from surge.api.experiment import ScalingExperiment, ScalingExperimentSpec
from surge.api.loadtest import LoadTest, LoadTestSpec
from surge.api.yaml_load import YamlProblem, load_all, read_text

KINDS: dict[str, type[LoadTest] | type[ScalingExperiment]] = {
    "LoadTest": LoadTest,
    "ScalingExperiment": ScalingExperiment,
}
SPECS: dict[str, type[BaseModel]] = {
    "LoadTest": LoadTestSpec,
    "ScalingExperiment": ScalingExperimentSpec,
}

Resource = LoadTest | ScalingExperiment


@dataclass(frozen=True, slots=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ManifestError(Exception):
    """A manifest that can never work; `errors` names every offending field."""

    def __init__(self, errors: list[FieldError], source: str = "") -> None:
        self.errors = errors
        self.source = source
        super().__init__("; ".join(str(e) for e in errors))


def load_documents(text: str, source: str = "<input>") -> list[dict[str, Any]]:
    """Parse YAML (possibly several documents). Raises ManifestError (one line) on bad YAML,
    or a file too deep or too large once its aliases are expanded (surge.api.yaml_load)."""
    try:
        docs = load_all(text)
    except YamlProblem as exc:
        raise ManifestError([FieldError("", str(exc))], source) from None
    if not docs:
        raise ManifestError([FieldError("", "the file holds no YAML document")], source)
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ManifestError(
                [FieldError(f"document {i + 1}", "expected a mapping with apiVersion and kind")],
                source,
            )
    return docs


def read_manifest(path: Path) -> str:
    """A manifest file's text, or ManifestError: unreadable, binary or huge."""
    try:
        return read_text(path)
    except OSError as exc:
        raise ManifestError([FieldError("", f"cannot read: {exc.strerror}")], str(path)) from None
    except YamlProblem as exc:
        raise ManifestError([FieldError("", str(exc))], str(path)) from None


def parse_resource(doc: dict[str, Any], source: str = "<input>") -> Resource:
    """Validate one document into a LoadTest or ScalingExperiment, or raise ManifestError."""
    kind = doc.get("kind")
    api_version = doc.get("apiVersion")
    errors: list[FieldError] = []
    if api_version != API_VERSION:
        errors.append(FieldError("apiVersion", f"{api_version!r} is not served; use {API_VERSION}"))
    if kind not in KINDS:
        errors.append(
            FieldError("kind", f"{kind!r} is not a Surge kind; use LoadTest or ScalingExperiment")
        )
    if errors:
        raise ManifestError(errors, source)
    model = KINDS[str(kind)]
    if not (doc.get("metadata") or {}).get("name"):
        errors.append(FieldError("metadata.name", "required; every resource needs a name"))
    try:
        resource = model.model_validate(doc)
    except ValidationError as exc:
        errors.extend(describe_errors(exc))
    if errors:
        raise ManifestError(errors, source)
    return resource


def parse_spec(kind: str, spec: dict[str, Any], source: str = "<input>") -> Any:
    """Validate just a spec (the operator's view of a resource it was handed)."""
    try:
        return SPECS[kind].model_validate(spec)
    except ValidationError as exc:
        raise ManifestError(
            [
                FieldError(f"spec.{e.path}" if e.path else "spec", e.message)
                for e in describe_errors(exc)
            ],
            source,
        ) from None


def load_file(path: Path) -> list[Resource]:
    """Every resource in a YAML file, or ManifestError naming the file's first bad document."""
    text = read_manifest(path)
    return [parse_resource(d, str(path)) for d in load_documents(text, str(path))]


def render_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _vocabulary() -> list[str]:
    words: set[str] = set()

    def walk(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            words.add(field.alias or name)
        for sub in _submodels(model):
            if sub.__name__ not in seen:
                seen.add(sub.__name__)
                walk(sub)

    seen: set[str] = set()
    for m in KINDS.values():
        walk(m)
    return sorted(words)


def _submodels(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    for field in model.model_fields.values():
        stack: list[Any] = [field.annotation]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                yield t
            stack.extend(getattr(t, "__args__", ()))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_WORDS = {
    "int_type": "is not a whole number",
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_type": "is not a number",
    "float_parsing": "is not a number",
    "bool_type": "is not true or false",
    "bool_parsing": "is not true or false",
    "string_type": "is not a string; quote it",
    "list_type": "is not a list; write it as a YAML list (- item)",
    "dict_type": "is not a mapping; write it as key: value pairs",
    "model_type": "is not a mapping; write it as key: value pairs",
    "model_attributes_type": "is not a mapping; write it as key: value pairs",
}


_BOUNDS = {
    "greater_than_equal": "the minimum is {ge}",
    "greater_than": "it must be more than {gt}",
    "less_than_equal": "the maximum is {le}",
    "less_than": "it must be less than {lt}",
}


def describe_errors(exc: ValidationError) -> list[FieldError]:
    """Turn pydantic's errors into one clear, field-named line each."""
    vocab: list[str] | None = None
    out: list[FieldError] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        kind = err["type"]
        value = err.get("input")
        if kind == "missing":
            msg = "required field is missing"
        elif kind == "extra_forbidden":
            vocab = vocab or _vocabulary()
            name = str(loc[-1]) if loc else "?"
            close = difflib.get_close_matches(name, vocab, n=1)
            msg = "unknown field" + (f"; did you mean {close[0]!r}?" if close else "; remove it")
        elif kind in _TYPE_WORDS:
            msg = f"{_short(value)} {_TYPE_WORDS[kind]}"
        elif kind in ("value_error", "assertion_error"):
            msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
            # A list validator may put the element index first: "[2]: ..." -> path[2].
            if msg.startswith("[") and "]: " in msg:
                idx, _, msg = msg[1:].partition("]: ")
                if idx.isdigit():
                    loc = (*loc, int(idx))
        elif kind == "duration":
            msg = str(err["msg"])
        elif kind == "literal_error":
            msg = f"{_short(value)} is not allowed; {err['msg'][0].lower()}{err['msg'][1:]}"
        elif kind in _BOUNDS:
            msg = f"{_short(value)} is too small; " + _BOUNDS[kind].format(**err.get("ctx", {}))
            if kind.startswith("less"):
                msg = msg.replace("too small", "too large")
        elif kind == "too_short":
            msg = "needs at least {min_length} entry".format(**err.get("ctx", {}))
        elif kind == "string_pattern_mismatch":
            msg = f"{_short(value)} is not a valid name here (lowercase letters, digits, '-', '.')"
        else:
            m = str(err["msg"])
            msg = f"{_short(value)}: {m[0].lower()}{m[1:]}" if value is not None else m
        out.append(FieldError(render_loc(loc), msg))
    return out
