"""The blocking form of a run's coroutine, for code that is not async.

`start_run = blocking(astart_run)` runs `astart_run` to its end in an event loop of
its own. Where a loop is already running (Jupyter, an `async def`), `asyncio.run`
cannot start another; the blocking form then raises `LoopRunning`, which names the
coroutine to await instead. This module imports nothing heavy, so the package root's
API can use it without loading the runtime.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from grpo_dsl.core.errors import GrpoError

__all__ = ["LoopRunning", "blocking"]

Params = ParamSpec("Params")
Result = TypeVar("Result")


class LoopRunning(GrpoError):
    """A blocking run called where an event loop is running: await its async form there."""


def blocking(
    asynchronous: Callable[Params, Coroutine[Any, Any, Result]], shown: str | None = None
) -> Callable[Params, Result]:
    """The function that runs `asynchronous(...)` in an event loop of its own and returns its result.

    Its name is `asynchronous`'s without the leading `a`, its docstring says so;
    `shown` is how the message of `LoopRunning` names `asynchronous` (default: its
    module and name).
    """
    name = shown or f"{asynchronous.__module__}.{asynchronous.__name__}"

    @functools.wraps(asynchronous)
    def run(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(asynchronous(*args, **kwargs))
        raise LoopRunning(f"an event loop is already running here (Jupyter, an async function): use `await {name}(...)`")

    run.__name__ = asynchronous.__name__.removeprefix("a")
    run.__qualname__ = asynchronous.__qualname__.removeprefix("a")
    run.__doc__ = f"`{asynchronous.__name__}` run to its end in an event loop of its own (there must be none running).\n\n{asynchronous.__doc__ or ''}"
    return run
