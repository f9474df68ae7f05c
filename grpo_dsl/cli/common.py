"""What every verb of the `grpo` command shares: exit codes and the usage error."""

from __future__ import annotations

import sys

__all__ = ["EXIT_OK", "EXIT_PROBLEMS", "EXIT_USAGE", "usage_error"]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def usage_error(message: str) -> int:
    """Say what is wrong with the command line; the exit status for it."""
    print(f"grpo: error: {message}", file=sys.stderr)
    return EXIT_USAGE
