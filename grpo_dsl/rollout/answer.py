"""One rollout: a task's model answers one question, using tools if the task has them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from grpo_dsl.clients.protocol import (
    BudgetExceeded,
    ChatRequest,
    ChatResponse,
    EndpointError,
)
from grpo_dsl.clients.structured import parse_json_reply, response_format
from grpo_dsl.plan.views import TaskView
from grpo_dsl.rollout.sandbox import SandboxUnavailable
from grpo_dsl.rollout.tools import ToolBox, Tools

__all__ = ["Rollout", "Tools", "rollout"]

Call = Callable[[ChatRequest], Awaitable[ChatResponse]]
SHOWN_STEP_CHARS = 400
"""Characters of one tool call's arguments, or of its result, that the learner reads."""


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_STEP_CHARS else text[:SHOWN_STEP_CHARS] + " ..."


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

    def transcript(self) -> str:
        """The trajectory as the learner reads it: each tool call with its arguments and
        result (each cut to `SHOWN_STEP_CHARS`), then the final answer; without tool
        calls, the answer alone."""
        if not self.tool_calls:
            return self.output
        lines = []
        for message in self.trajectory:
            if message.get("role") == "tool":
                lines.append(f"[result: {_cut(str(message.get('content')))}]")
                continue
            if message.get("content"):
                lines.append(str(message["content"]))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                lines.append(f"[calls {function.get('name')}({_cut(str(function.get('arguments') or ''))})]")
        return "\n".join(lines)

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
    tools: ToolBox,
    index: int,
    temperature: float,
    seed: int,
    key: str,
    stage: str,
) -> Rollout:
    """Sample one answer to `messages` from the task's model.

    With tools (`tools`, opened by `Tools.of(task, ...).opened(...)`) the model may
    call them; each call's result, or its `error: ...`, goes back as a tool message,
    for at most `max_turns` model turns. Every turn is its own request (its
    `sample_key` ends with the turn), so the client's cache answers a resumed
    rollout turn by turn. Budget, fatal endpoint and sandbox errors propagate; any
    other failure becomes a failed rollout.

    A task with a `response` schema asks for JSON (as its model's `structured`
    setting says); the answer is parsed and validated, and its output is the JSON
    value written compactly. An answer that does not follow the schema is a failed
    rollout that says why.
    """
    offered = tools.definitions
    schema = task.response["schema"] if task.response is not None else None
    turns = task.max_turns if offered else 1
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
                tools=offered,
                response_format=response_format(schema, task.structured) if schema is not None else None,
                stage=stage,
                sample_key=f"{key}/{turn}",
            )
            response = await call(request)
            tokens += response.completion_tokens
            if not response.tool_calls:
                content = response.content or ""
                conversation.append({"role": "assistant", "content": content})
                if schema is None:
                    return finish(content, None)
                value, problem = _structured(content, schema)
                if problem is not None:
                    return finish(content, f"the answer does not follow the response schema: {problem}")
                return finish(json.dumps(value, ensure_ascii=False, separators=(",", ":")), None)
            conversation.append({"role": "assistant", "content": response.content, "tool_calls": list(response.tool_calls)})
            for tool_call in response.tool_calls:
                tool_calls += 1
                conversation.append(
                    {"role": "tool", "tool_call_id": tool_call.get("id", ""), "content": await tools.call(tool_call)}
                )
        return finish("", "the trajectory reached max_turns")
    except (BudgetExceeded, EndpointError, SandboxUnavailable):
        raise
    except Exception as exc:
        return finish("", f"{type(exc).__name__}: {exc}")


def _structured(content: str, schema: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The JSON value of an answer, and why it does not follow `schema` (None when it does)."""
    try:
        value = parse_json_reply(content)
    except ValueError as exc:
        return None, str(exc)
    problem = best_match(Draft202012Validator(schema).iter_errors(value))
    if problem is None:
        return value, None
    where = "/".join(str(p) for p in problem.absolute_path)
    return value, f"{where + ': ' if where else ''}{problem.message}"
