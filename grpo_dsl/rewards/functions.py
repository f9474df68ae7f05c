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

Tool functions (`grpo_dsl.learn(..., tools={"weekday": fn})`, `rollout.tools`) run
the same way (`run_in_process`), called with the model's arguments; their result
becomes the text the model reads (`tool_text`), as a file tool's does.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import numbers
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
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
    "run_in_process",
    "same_as_recorded",
    "tool_text",
]

RewardFunction = Callable[[str, dict[str, Any]], Any]
"""`fn(output, row) -> number`, or an `async def` returning one."""


class RewardFunctionError(GrpoError):
    """Functions given from Python (rewards, tools) that cannot replace what the program
    declares: an unknown name, not callable, or not those a resumed run started with."""


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
    return checked_functions(
        given,
        sorted(declared),
        "reward",
        lambda name, known: (
            f"reward function `{name}` replaces no reward of the program (its rewards: {known}); "
            f"declare `reward {name} = ...` in the program and give the function for it"
        ),
    )


def checked_functions(
    given: Mapping[str, Any] | None, names: Sequence[str], kind: str, unknown: Callable[[str, str], str]
) -> dict[str, Any]:
    """The functions `given` from Python by name, each for one of `names` (the program's
    declared rewards or tools). Raises `RewardFunctionError` with `unknown(name, known)`
    for another name, and for a value that is not callable."""
    functions: dict[str, Any] = {}
    for name, function in (given or {}).items():
        if name not in names:
            raise RewardFunctionError(unknown(name, ", ".join(names) or "none"))
        if not callable(function):
            raise RewardFunctionError(f"the {kind} `{name}` given from Python is {type(function).__name__}, not a function")
        functions[name] = function
    return functions


def recorded_functions(functions: Mapping[str, Callable[..., Any]], key: str = "reward_functions") -> dict[str, Any]:
    """What a run's run.json records of the functions given from Python: under `key`,
    each one's `module.qualname` by the name it replaces (nothing when there are none)."""
    return {key: {name: describe_function(f) for name, f in functions.items()}} if functions else {}


def same_as_recorded(functions: Mapping[str, Any], info: Mapping[str, Any], run: str, key: str = "reward_functions") -> None:
    """Raise `RewardFunctionError` unless `functions`, given to resume `run` (whose
    run.json is `info`), replace the same names as those recorded under `key` when it started."""
    recorded = sorted(info.get(key) or {})
    if sorted(functions) != recorded:
        what, kind = key.replace("_", " "), key.split("_")[0]

        def names(found: list[str]) -> str:
            return ", ".join(f"`{n}`" for n in found) or f"no {kind}"

        argument = kind + "s"
        raise RewardFunctionError(
            f"{run} started with {what} given from Python for {names(recorded)}, and is resumed with them "
            f"for {names(sorted(functions))}: resume it from Python with the same, e.g. `grpo_dsl.resume(RUN_DIR, {argument}={{...}})`"
        )


def resumed_functions(declared: Mapping[str, Any], given: Mapping[str, Any] | None, info: Mapping[str, Any], run: str) -> dict[str, RewardFunction]:
    """The reward functions `given` to resume `run`, whose run.json is `info`: they must
    replace the same rewards as those the run started with (`RewardFunctionError`)."""
    functions = check_reward_functions(declared, given)
    same_as_recorded(functions, info, run)
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
        result = await run_in_process(function, (output, row), {}, timeout_s)
    except TimeoutError:
        raise RewardError(f"stopped after {timeout_s:g} s without an answer") from None
    except Exception as exc:
        raise RewardError(describe_exception(exc)) from None
    return finite_reward(function, result)


async def run_in_process(function: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], timeout_s: float) -> Any:
    """`function(*args, **kwargs)` in this process: an `async def` awaited on the running
    loop, a plain function in a daemon thread of its own. Raises `TimeoutError` after
    `timeout_s` seconds, and whatever the function raises."""
    if inspect.iscoroutinefunction(function):
        return await asyncio.wait_for(function(*args, **kwargs), timeout_s)
    return await asyncio.wait_for(_in_thread(function, args, dict(kwargs)), timeout_s)


def tool_text(function: Callable[..., Any], result: object) -> str:
    """What a tool function returned, as the text the model reads: text as it is,
    anything else as JSON; `RewardError` when it is neither."""
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        name = getattr(function, "__name__", type(function).__name__)
        raise RewardError(f"`{name}` returned {type(result).__name__} {result!r:.80}, which is neither text nor JSON") from None


def _in_thread(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> asyncio.Future[Any]:
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
            outcome: tuple[Any, BaseException | None] = (function(*args, **kwargs), None)
        except BaseException as exc:  # reported to the run as the function's error
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop has closed since: nobody waits for this answer
            pass

    threading.Thread(target=work, name=f"function {describe_function(function)}", daemon=True).start()
    return future


def describe_exception(exc: BaseException) -> str:
    """`Type: message (at file.py:line)`, the line being the innermost frame of the traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
