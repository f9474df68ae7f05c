"""The `grpo` command: its verbs, exit codes and all terminal output.

It imports every layer; nothing imports it.
"""

from grpo_dsl.cli.main import main

__all__ = ["main"]
