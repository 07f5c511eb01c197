"""PromQL template placeholders: which exist, filling one template, checking at admission.

A template is PromQL with placeholders `{namespace}`, `{deployment}`, `{pod_regex}`,
`{loadtest}`, `{run}`, `{window}`, `{step}`. A placeholder is a brace pair around a
bare identifier; PromQL's own braces always hold a matcher (`{pod=~"..."}`), so the
two never collide and templates need no escaping.

It lives in the API package because LoadTest validation checks templates; the rest of
the query machinery (defaults, rendering a run's queries) is surge.results.queries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDERS: tuple[str, ...] = (
    "namespace",
    "deployment",
    "pod_regex",
    "loadtest",
    "run",
    "window",
    "step",
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Queries that describe the target Deployment; without a deploymentRef they are skipped.
_TARGET_VARS = frozenset({"deployment", "pod_regex"})


class QueryTemplateError(ValueError):
    """A template names a placeholder Surge does not fill."""


class UnsetPlaceholder(QueryTemplateError):
    """A template needs a value this run does not have (no deploymentRef)."""


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def render_template(name: str, template: str, values: Mapping[str, str | None]) -> str:
    """Fill one template. Raises QueryTemplateError naming the query and the placeholder
    (UnsetPlaceholder when a known placeholder has no value)."""
    unknown = sorted(placeholders(template) - set(PLACEHOLDERS))
    if unknown:
        raise QueryTemplateError(
            f"query {name!r} uses unknown placeholder(s) "
            + ", ".join("{" + u + "}" for u in unknown)
            + "; known: "
            + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        )

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None:
            raise UnsetPlaceholder(
                f"query {name!r} needs {{{match.group(1)}}}, which is unset"
                + (" (no target.deploymentRef)" if match.group(1) in _TARGET_VARS else "")
            )
        return value

    return _PLACEHOLDER.sub(fill, template)


def check_templates(templates: Mapping[str, str]) -> None:
    """For validation at admission: raises QueryTemplateError for the first template
    with an unknown placeholder."""
    for name, template in templates.items():
        render_template(name, template, dict.fromkeys(PLACEHOLDERS, "x"))
