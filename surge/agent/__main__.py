"""`python -m surge.agent [FLAGS]`: the demo agent alone (used by start_agent_process)."""

import typer

from surge.agent.command import register

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
register(app)
app()
