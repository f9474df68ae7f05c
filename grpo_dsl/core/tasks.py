"""The asyncio tasks a run starts, known to the run.

A run that ends early (an error, Ctrl-C, a budget) must settle the calls it still has in
flight before it closes their connections and its log: the siblings of a failed
`gather` go on running otherwise. It must settle *only its own*: `grpo_dsl.alearn` runs
in an event loop the caller owns (a notebook's, or one running two learns at once), and
the caller's tasks are not the run's to cancel.

The run's code starts its tasks with `start_task` and `gather_tasks` below; each is
counted in the set of the run that is current (a context variable, which the tasks
inherit, so the tasks they start count too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["gather_tasks", "owning_tasks", "settle_tasks", "start_task"]

T = TypeVar("T")

_OWNED: ContextVar[set[asyncio.Task[Any]] | None] = ContextVar("grpo_dsl_run_tasks", default=None)


def start_task(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """`asyncio.create_task(coroutine)`, counted among the current run's tasks (if any)."""
    task = asyncio.create_task(coroutine)
    owned = _OWNED.get()
    if owned is not None:
        owned.add(task)
        task.add_done_callback(owned.discard)
    return task


async def gather_tasks(*coroutines: Coroutine[Any, Any, T]) -> list[T]:
    """`asyncio.gather` of `coroutines`, each started as one of the current run's tasks."""
    tasks: list[Awaitable[T]] = [start_task(c) for c in coroutines]
    return list(await asyncio.gather(*tasks))


@contextlib.contextmanager
def owning_tasks() -> Iterator[None]:
    """Count the tasks started from here on, in this context, as one run's; a run inside
    a run (the client stack inside a learning run) shares the outer run's count."""
    if _OWNED.get() is not None:
        yield
        return
    token = _OWNED.set(set())
    try:
        yield
    finally:
        _OWNED.reset(token)


async def settle_tasks(cancel: bool = True) -> None:
    """Wait for the current run's unfinished tasks, cancelled first unless `cancel` is
    False; no task of the loop that the run did not start is touched."""
    current = asyncio.current_task()
    pending = [task for task in _OWNED.get() or () if task is not current and not task.done()]
    for task in pending if cancel else ():
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
