"""One rollout: a task's model answers one question, using tools if the task has them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo_dsl.clients.protocol import (
    BudgetExceeded,
    ChatRequest,
    ChatResponse,
    EndpointError,
)
from grpo_dsl.plan.views import Sandbox, TaskView
from grpo_dsl.rollout.sandbox import (
    PYTHON_TOOL,
    SandboxUnavailable,
    require_isolation,
    run_python,
)

__all__ = ["Rollout", "Tools", "rollout"]

Call = Callable[[ChatRequest], Awaitable[ChatResponse]]


@dataclass(frozen=True, slots=True)
class Tools:
    """The tools of a task, ready to call: whether the model may run `python`, the
    files the sandbox mounts (absolute) and the isolation it runs in."""

    python: bool = False
    files: tuple[Path, ...] = ()
    isolation: Sandbox = "bubblewrap"

    @classmethod
    def of(cls, task: TaskView, base_dir: Path) -> Tools:
        """The tools of `task`, whose `files` are relative to `base_dir`.

        Raises `SandboxUnavailable` when the task has the python tool and its
        model's sandbox cannot run on this machine, before anything is spent.
        """
        tools = cls("python" in task.tools, tuple((base_dir / f).resolve() for f in task.files), task.sandbox)
        if tools.python:
            try:
                require_isolation(tools.isolation)
            except SandboxUnavailable as exc:
                raise SandboxUnavailable(f"task `{task.name}` (model `{task.model}`): {exc}") from None
        return tools


@dataclass(frozen=True, slots=True)
class Rollout:
    """A finished trajectory: the final answer text, its cost in tokens and tool calls.

    `error` is set when the rollout failed after the client's retries; such a
    rollout is recorded but has no reward and is counted as a failure.
    """

    index: int
    output: str
    tokens: int
    tool_calls: int
    error: str | None
    trajectory: tuple[Mapping[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "output": self.output,
            "tokens": self.tokens,
            "tool_calls": self.tool_calls,
            "error": self.error,
            "trajectory": list(self.trajectory),
        }


async def rollout(
    call: Call,
    task: TaskView,
    messages: list[dict[str, str]],
    *,
    tools: Tools,
    index: int,
    temperature: float,
    seed: int,
    key: str,
    stage: str,
) -> Rollout:
    """Sample one answer to `messages` from the task's model.

    With the python tool (`tools`, made by `Tools.of(task, ...)`) the model may call
    the code interpreter; each call runs in the sandbox and its output goes back as
    a tool message, for at most `max_turns` model turns. Budget, fatal endpoint and
    sandbox errors propagate; any other failure becomes a failed rollout.
    """
    turns = task.max_turns if tools.python else 1
    conversation: list[dict[str, Any]] = [dict(m) for m in messages]
    tool_calls = 0
    tokens = 0

    def finish(output: str, error: str | None) -> Rollout:
        return Rollout(index, output, tokens, tool_calls, error, tuple(conversation[len(messages) :]))

    try:
        for turn in range(turns):
            request = ChatRequest(
                model=task.model,
                messages=tuple(conversation),
                temperature=temperature,
                top_p=task.top_p,
                max_tokens=task.max_tokens,
                seed=seed,
                tools=(PYTHON_TOOL,) if tools.python else (),
                stage=stage,
                sample_key=f"{key}/{turn}",
            )
            response = await call(request)
            tokens += response.completion_tokens
            if not response.tool_calls:
                conversation.append({"role": "assistant", "content": response.content or ""})
                return finish(response.content or "", None)
            conversation.append({"role": "assistant", "content": response.content, "tool_calls": list(response.tool_calls)})
            for tool_call in response.tool_calls:
                tool_calls += 1
                conversation.append(
                    {"role": "tool", "tool_call_id": tool_call.get("id", ""), "content": await _run_tool(tool_call, tools)}
                )
        return finish("", "the trajectory reached max_turns")
    except (BudgetExceeded, EndpointError, SandboxUnavailable):
        raise
    except Exception as exc:
        return finish("", f"{type(exc).__name__}: {exc}")


async def _run_tool(call: Mapping[str, Any], tools: Tools) -> str:
    function = call.get("function") or {}
    if not tools.python or function.get("name") != "python":
        offered = "the only tool is `python`" if tools.python else "this task has no tools"
        return f"error: unknown tool {function.get('name')!r}; {offered}"
    try:
        code = json.loads(function.get("arguments") or "{}").get("code", "")
    except (json.JSONDecodeError, AttributeError):
        return "error: the arguments must be a JSON object with a `code` string"
    result = await run_python(str(code), files=tools.files, isolation=tools.isolation)
    parts = [result.stdout]
    if result.stderr:
        parts.append(f"stderr:\n{result.stderr}")
    if result.timed_out:
        parts.append("error: the code ran out of time")
    return "\n".join(p for p in parts if p) or "(no output)"
