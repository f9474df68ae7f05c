"""The root of every exception grpo-dsl raises on purpose.

The command line catches `GrpoError` once and prints its message; a Python caller
can do the same. Each subsystem defines its own subclasses next to the code that
raises them (`ProgramError`, `PlanError`, `EndpointError`, `ModuleError`, ...).
"""

from __future__ import annotations

__all__ = ["GrpoError"]


class GrpoError(Exception):
    """A failure the user can act on, with a message that says what and where."""
