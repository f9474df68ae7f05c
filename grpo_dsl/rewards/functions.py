"""Rewards given as Python callables (`grpo_dsl.learn(..., rewards={"correct": fn})`).

A reward function takes the answer and the row, `fn(output, row)`, exactly as a
`python("file.py:function")` reward does, and returns a finite number (a boolean
counts as 1 or 0); it may be a plain function or an `async def`. It replaces, for
one run, the reward of the same name that the program declares.

Unlike a file reward, which runs in a worker process that is killed when it
overruns, a callable runs in the caller's process: a plain function in a thread of
its own, an `async def` on the run's event loop. An exception, a result that is
not a finite number, or no answer within the scorer's timeout is a recorded error
(reward 0, counted as a failure), never a crashed run. A plain function that hangs
is abandoned, not killed: its thread is a daemon and does not keep Python from
exiting.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.language.builtins import RewardError

__all__ = [
    "RewardFunction",
    "RewardFunctionError",
    "call_reward_function",
    "check_reward_functions",
    "describe_exception",
    "describe_function",
    "finite_reward",
    "recorded_functions",
    "resumed_functions",
]

RewardFunction = Callable[[str, dict[str, Any]], Any]
"""`fn(output, row) -> number`, or an `async def` returning one."""


class RewardFunctionError(GrpoError):
    """Reward functions that cannot replace the program's rewards: an unknown name, not callable."""


def describe_function(function: Callable[..., Any]) -> str:
    """Where a function comes from, as `module.qualname` (recorded in run.json)."""
    module = getattr(function, "__module__", None) or "?"
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"


def check_reward_functions(declared: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, RewardFunction]:
    """The reward functions `given`, each replacing the declared reward of its name.

    Raises `RewardFunctionError` for a name the program does not declare as a
    reward, or a value that is not callable.
    """
    functions: dict[str, RewardFunction] = {}
    for name, function in (given or {}).items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise RewardFunctionError(
                f"reward function `{name}` replaces no reward of the program (its rewards: {known}); "
                f"declare `reward {name} = ...` in the program and give the function for it"
            )
        if not callable(function):
            raise RewardFunctionError(f"the reward `{name}` given from Python is {type(function).__name__}, not a function")
        functions[name] = function
    return functions


def recorded_functions(functions: Mapping[str, RewardFunction]) -> dict[str, Any]:
    """What a run's run.json records of its reward functions: each one's `module.qualname`, by reward."""
    return {"reward_functions": {name: describe_function(f) for name, f in functions.items()}} if functions else {}


def resumed_functions(declared: Mapping[str, Any], given: Mapping[str, Any] | None, info: Mapping[str, Any], run: str) -> dict[str, RewardFunction]:
    """The reward functions `given` to resume `run`, whose run.json is `info`: they must
    replace the same rewards as those the run started with (`RewardFunctionError`)."""
    functions = check_reward_functions(declared, given)
    recorded = sorted(info.get("reward_functions") or {})
    if sorted(functions) != recorded:

        def names(found: list[str]) -> str:
            return ", ".join(f"`{n}`" for n in found) or "no reward"

        raise RewardFunctionError(
            f"{run} started with reward functions given from Python for {names(recorded)}, and is resumed with them "
            f"for {names(sorted(functions))}: resume it from Python with the same, e.g. `grpo_dsl.resume(RUN_DIR, rewards={{...}})`"
        )
    return functions


def finite_reward(function: Callable[..., Any], result: object) -> float:
    """A reward function's result as a float; `RewardError` when it is not a finite number."""
    if isinstance(result, numbers.Real):
        number = float(result)
        if math.isfinite(number):
            return number
    name = getattr(function, "__name__", type(function).__name__)
    raise RewardError(f"`{name}` returned {type(result).__name__} {result!r:.80}, expected a finite number")


async def call_reward_function(function: RewardFunction, output: str, row: dict[str, Any], timeout_s: float) -> float:
    """The reward `function` gives `output` on `row`, within `timeout_s` seconds.

    Raises `RewardError` (with the exception's type, message and line) when the
    function raises, overruns or returns something other than a finite number.
    """
    try:
        if inspect.iscoroutinefunction(function):
            result = await asyncio.wait_for(function(output, row), timeout_s)
        else:
            result = await asyncio.wait_for(_in_thread(function, output, row), timeout_s)
    except TimeoutError:
        raise RewardError(f"stopped after {timeout_s:g} s without an answer") from None
    except Exception as exc:
        raise RewardError(describe_exception(exc)) from None
    return finite_reward(function, result)


def _in_thread(function: RewardFunction, output: str, row: dict[str, Any]) -> asyncio.Future[Any]:
    """Run `function` in a daemon thread; its future has the result or the exception.

    Not the loop's default executor: a function that never returns would keep
    `asyncio.run` (which waits for that executor) and Python itself from ending.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # timed out and cancelled meanwhile
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def work() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (function(output, row), None)
        except BaseException as exc:  # reported to the run as the function's error
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop has closed since: nobody waits for this answer
            pass

    threading.Thread(target=work, name=f"reward {describe_function(function)}", daemon=True).start()
    return future


def describe_exception(exc: BaseException) -> str:
    """`Type: message (at file.py:line)`, the line being the innermost frame of the traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
