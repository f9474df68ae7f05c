"""Python tools that fail in every way a tool can: the agent world's tool tests copy
this file next to their program."""

from __future__ import annotations

import time


def explode(term: str) -> str:
    """Raise."""
    raise RuntimeError(f"cannot look up {term}")


def stall(term: str) -> str:
    """Never answer."""
    while True:
        time.sleep(1)


def junk(term: str) -> object:
    """Return something that is neither text nor JSON."""
    return {term: object()}


def quit_worker(term: str) -> str:
    """Kill its own process."""
    import os

    os._exit(9)


def fine(term: str, times: int = 1) -> dict[str, object]:
    """Answer with JSON."""
    return {"term": term, "times": times}
