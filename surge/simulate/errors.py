"""The one error the simulator raises on bad input: a field or line, and the fix."""

from __future__ import annotations


class SimulationError(Exception):
    """Input the simulator cannot use; the message names the field (or line) and the fix."""
