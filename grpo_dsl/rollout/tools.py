"""The tools a task offers its model, and the calls the model makes to them.

A task's `tools` are the built-in code interpreter `python` (run in the sandbox of
`rollout.sandbox`) and declared `tool` blocks: a Python function, run in the reward
scorer's killable worker processes with the tool's timeout, or an MCP server,
started over stdio (`command`) or reached over streamable HTTP (`url`) with the
`mcp` package, whose tools are listed when the run starts. All are offered with
the OpenAI tools protocol. A Python tool may be answered instead by a function given
from Python (`grpo_dsl.learn(..., tools={name: fn})`): it keeps the declared tool's
schema and timeout, and runs in this process like a reward function
(`rewards.functions`).

A call never raises for what the tool does: a tool that raises, overruns its
timeout, returns something that is neither text nor JSON, or is called with bad
arguments gives a tool message starting with `error:`, which the model reads and
the trajectory keeps. Only a sandbox that cannot run here propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import inspect
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import sha256_text
from grpo_dsl.language.builtins import RewardError
from grpo_dsl.plan.views import Sandbox, TaskView, ToolView
from grpo_dsl.rewards.functions import checked_functions, describe_exception, run_in_process, tool_text
from grpo_dsl.rewards.scorer import RewardScorer, WorkerPool
from grpo_dsl.runs.directory import EventLog, RunDirectory
from grpo_dsl.rollout.sandbox import (
    PYTHON_TOOL,
    SandboxUnavailable,
    require_isolation,
    run_python,
)

__all__ = ["MAX_RESULT_CHARS", "ToolBox", "ToolError", "ToolFunction", "Tools", "check_tool_functions", "open_tools"]

ToolFunction = Callable[..., Any]
"""A Python tool's function given from Python: called with the model's arguments as
keywords, it returns text or a JSON value; a plain function or an `async def`."""

MAX_RESULT_CHARS = 16_000
"""A tool result longer than this is cut, with a note, before the model reads it."""
ERROR = "error: "
"""How a tool message that reports a failure starts."""


class ToolError(GrpoError):
    """A tool cannot be offered: its MCP server does not start or list its tools, or
    two tools of a task have the same name."""


@dataclass(frozen=True, slots=True)
class Tools:
    """The tools of a task, before a run opens them: whether the model may run
    `python`, the files its sandbox mounts (absolute) and the isolation it runs in,
    and the declared tools."""

    python: bool = False
    files: tuple[Path, ...] = ()
    isolation: Sandbox = "bubblewrap"
    declared: tuple[ToolView, ...] = ()

    @classmethod
    def of(cls, task: TaskView, base_dir: Path) -> Tools:
        """The tools of `task`, whose `files` are relative to `base_dir`.

        Raises `SandboxUnavailable` when the task has the python tool and its
        model's sandbox cannot run on this machine, before anything is spent.
        """
        files = tuple((base_dir / f).resolve() for f in task.files)
        tools = cls("python" in task.tools, files, task.sandbox, task.declared)
        if tools.python:
            try:
                require_isolation(tools.isolation)
            except SandboxUnavailable as exc:
                raise SandboxUnavailable(f"task `{task.name}` (model `{task.model}`): {exc}") from None
        return tools

    @contextlib.asynccontextmanager
    async def opened(
        self, base_dir: Path, pool: WorkerPool, log: Path | None = None, functions: Mapping[str, ToolFunction] | None = None
    ) -> AsyncIterator[ToolBox]:
        """The tools, ready to call, for the time of the block: MCP servers started and
        their tools listed, Python tools run by `pool` (files relative to `base_dir`),
        or in this process by the one of `functions` given for their name. An MCP
        server's standard error goes to `log` (None: discarded)."""
        async with contextlib.AsyncExitStack() as stack:
            errors: TextIO = stack.enter_context(open(log or os.devnull, "a", encoding="utf-8"))
            handlers: dict[str, _Handler] = {}
            if self.python:
                handlers["python"] = _Interpreter(self.files, self.isolation)
            for view in self.declared:
                offered: dict[str, _Handler]
                if view.kind == "python" and functions and view.name in functions:
                    offered = {view.name: _GivenFunction(view, functions[view.name])}
                elif view.kind == "python":
                    offered = {view.name: _Function(view, base_dir, pool)}
                else:
                    offered = await _open_server(view, stack, base_dir, errors)
                for name, handler in offered.items():
                    if name in handlers:
                        raise ToolError(f"two tools of the task are called `{name}` (the second comes from tool `{view.name}`)")
                    handlers[name] = handler
            yield ToolBox(handlers)


class _Handler(Protocol):
    @property
    def definition(self) -> Mapping[str, Any]: ...

    async def __call__(self, arguments: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class ToolBox:
    """Open tools: their OpenAI definitions, and `call` for the model's tool calls."""

    handlers: Mapping[str, _Handler] = field(default_factory=dict)

    @property
    def definitions(self) -> tuple[Mapping[str, Any], ...]:
        """The tools as the OpenAI `tools` request field lists them, in the task's order."""
        return tuple(handler.definition for handler in self.handlers.values())

    @property
    def fingerprint(self) -> str:
        """The sha256 of every definition offered: what the model was told it may call."""
        return sha256_text(json.dumps(self.definitions, sort_keys=True))

    async def call(self, tool_call: Mapping[str, Any]) -> str:
        """The tool message content for one tool call of the model (`error: ...` on failure)."""
        function = tool_call.get("function") or {}
        name = str(function.get("name"))
        handler = self.handlers.get(name)
        if handler is None:
            offered = ", ".join(f"`{n}`" for n in self.handlers) or "none"
            return f"{ERROR}unknown tool {name!r}; the tools are {offered}"
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except json.JSONDecodeError as exc:
            return f"{ERROR}the arguments of `{name}` are not JSON ({exc})"
        if not isinstance(arguments, dict):
            return f"{ERROR}the arguments of `{name}` must be a JSON object"
        try:
            result = await handler(arguments)
        except SandboxUnavailable:
            raise
        except Exception as exc:  # a tool's failure is the model's to read, never the run's
            return f"{ERROR}`{name}` failed: {exc}"
        if len(result) > MAX_RESULT_CHARS:
            result = result[:MAX_RESULT_CHARS] + f"\n[cut: the result had {len(result)} characters]"
        return result


def check_tool_functions(task: TaskView, given: Mapping[str, Any] | None) -> dict[str, ToolFunction]:
    """The tool functions `given`, each answering the declared Python tool of its name
    of `task`. Raises `RewardFunctionError` for a name that is not one of the task's
    Python tools, or a value that is not callable."""
    return checked_functions(
        given,
        [view.name for view in task.declared if view.kind == "python"],
        "tool",
        lambda name, known: (
            f"tool function `{name}` answers no Python tool of task `{task.name}` (its Python tools: {known}); "
            f"declare `tool {name} {{ function = python(\"file.py:{name}\") }}` with the schema, and give the function for it"
        ),
    )


@contextlib.asynccontextmanager
async def open_tools(
    task: TaskView,
    base_dir: Path,
    scorer: RewardScorer,
    run: RunDirectory,
    events: EventLog,
    functions: Mapping[str, ToolFunction] | None = None,
) -> AsyncIterator[ToolBox]:
    """The tools of `task`, open for a run: Python tools in `scorer`'s workers (or in this
    process, those of `functions`), MCP servers logging to the run's `tools.log`.
    What the model is offered is recorded in the event `tools_opened` (names and
    their `sha256`)."""
    async with Tools.of(task, base_dir).opened(base_dir, scorer.pool, run.path / "tools.log", functions) as box:
        if box.handlers:
            events.append("tools_opened", task=task.name, tools=list(box.handlers), sha256=box.fingerprint)
        yield box


def _function_definition(name: str, description: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": dict(parameters)}}


@dataclass
class _Interpreter:
    """The built-in `python` tool: the code runs in the sandbox."""

    files: tuple[Path, ...]
    isolation: Sandbox
    definition: Mapping[str, Any] = field(default_factory=lambda: PYTHON_TOOL)

    async def __call__(self, arguments: dict[str, Any]) -> str:
        code = arguments.get("code")
        if not isinstance(code, str):
            raise ValueError("the arguments must be a JSON object with a `code` string")
        result = await run_python(code, files=self.files, isolation=self.isolation)
        parts = [result.stdout]
        if result.stderr:
            parts.append(f"stderr:\n{result.stderr}")
        if result.timed_out:
            parts.append(f"{ERROR}the code ran out of time")
        return "\n".join(p for p in parts if p) or "(no output)"


class _Function:
    """A Python function tool, called with the model's arguments in a worker process."""

    def __init__(self, view: ToolView, base_dir: Path, pool: WorkerPool):
        assert view.schema is not None and view.path is not None
        self.view, self.path, self.pool = view, base_dir / view.path, pool
        self.definition = _function_definition(view.name, view.schema["description"], view.schema["parameters"])

    async def __call__(self, arguments: dict[str, Any]) -> str:
        try:
            result = await self.pool.run(["tool", str(self.path), self.view.function, arguments], self.view.timeout)
        except RewardError as exc:
            raise ToolError(str(exc)) from None
        return str(result)


class _GivenFunction:
    """A Python tool answered by a function given from Python, in this process, with the
    declared tool's schema and timeout."""

    def __init__(self, view: ToolView, function: ToolFunction):
        assert view.schema is not None
        self.view, self.function = view, function
        self.definition = _function_definition(view.name, view.schema["description"], view.schema["parameters"])

    async def __call__(self, arguments: dict[str, Any]) -> str:
        try:
            inspect.signature(self.function).bind(**arguments)
        except TypeError as exc:
            raise ToolError(f"bad arguments for `{getattr(self.function, '__name__', self.view.name)}`: {exc}") from None
        except ValueError:  # no signature to check (a builtin): the call says
            pass
        try:
            result = await run_in_process(self.function, (), arguments, self.view.timeout)
        except TimeoutError:
            raise ToolError(f"stopped after {self.view.timeout:g} s without an answer") from None
        except Exception as exc:
            raise ToolError(describe_exception(exc)) from None
        try:
            return tool_text(self.function, result)
        except RewardError as exc:
            raise ToolError(str(exc)) from None


class _ServerTool:
    """One tool of an MCP server."""

    def __init__(self, client: Any, name: str, description: str, parameters: Mapping[str, Any], timeout: float):
        self.client, self.name, self.timeout = client, name, timeout
        self.definition = _function_definition(name, description, parameters)

    async def __call__(self, arguments: dict[str, Any]) -> str:
        try:
            result = await asyncio.wait_for(self.client.call_tool(self.name, arguments), self.timeout)
        except TimeoutError:
            raise ToolError(f"stopped after {self.timeout:g} s without an answer") from None
        text = "\n".join(_content_text(block) for block in result.content)
        if result.is_error:
            raise ToolError(text or "the server reported an error")
        return text or (json.dumps(result.structured_content) if result.structured_content is not None else "(no output)")


def _content_text(block: Any) -> str:
    text = getattr(block, "text", None)
    return text if isinstance(text, str) else f"[{getattr(block, 'type', 'content')} content]"


async def _open_server(view: ToolView, stack: contextlib.AsyncExitStack, base_dir: Path, errors: TextIO) -> dict[str, _Handler]:
    """Start (or reach) the MCP server of `view` and list its tools."""
    try:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client
    except ImportError:
        raise ToolError(f"tool `{view.name}` is an MCP server: install the `mcp` extra (pip install 'grpo-dsl[mcp]')") from None
    where = " ".join(view.command) if view.command else str(view.url)
    transport: Any = view.url
    if view.command:
        program, *args = view.command
        transport = stdio_client(StdioServerParameters(command=program, args=list(args), cwd=str(base_dir)), errlog=errors)
    try:
        client = await stack.enter_async_context(Client(transport))
        listing = await asyncio.wait_for(client.list_tools(), view.timeout)
    except ToolError:
        raise
    except Exception as exc:
        raise ToolError(f"tool `{view.name}`: the MCP server `{where}` did not start or list its tools: {type(exc).__name__}: {exc}") from None
    return {
        tool.name: _ServerTool(client, tool.name, tool.description or tool.name, tool.input_schema, view.timeout)
        for tool in listing.tools
    }

