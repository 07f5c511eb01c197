"""The `surge` command line: one typer app, each part registering its own commands.

Each module listed in COMMAND_MODULES exposes `register(app)`, so the parts
(api, loadgen, agent, operator, reports) own their commands and this file stays glue.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES: tuple[str, ...] = (
    "surge.api.commands",
    "surge.agent.command",
    "surge.loadgen.commands",
    "surge.operator.commands",
    "surge.results.commands",
    "surge.simulate.commands",
)

app = typer.Typer(
    name="surge",
    help="Load tests and autoscaling experiments for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()
