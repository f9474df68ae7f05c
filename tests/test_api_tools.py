"""Python tools answered by functions given from Python: `grpo_dsl.learn(..., tools=...)`
on the agent world over the test endpoint, and the calls of such a tool (bad
arguments, an overrun, a result that is not JSON, an `async def`)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from support.agent_world import write_agent_world
from support.endpoint import Endpoint
from support.glossary import define

import grpo_dsl as g
from grpo_dsl.cli import main
from grpo_dsl.plan import load_plan
from grpo_dsl.rewards.functions import RewardFunctionError
from grpo_dsl.rewards.scorer import WorkerPool
from grpo_dsl.rollout.tools import Tools

FILE_TOOL_RAN = "the file's tool ran"


def _world(folder: Path, base_url: str) -> Path:
    """The agent world with its Python tool `lookup`, whose file says so when it is called
    (its signature and docstring, the tool's schema, unchanged)."""
    program = write_agent_world(folder, base_url, tool="python", questions=4, group_size=2, batch_size=4)
    source = (folder / "glossary.py").read_text()
    body = source.index('    if not term.startswith("zorp")')
    (folder / "glossary.py").write_text(source[:body] + f"    raise RuntimeError({FILE_TOOL_RAN!r})\n")
    return program


def _tool_messages(run_dir: Path) -> list[str]:
    groups = json.loads((run_dir / "steps/0001/rollouts.json").read_text())
    return [m["content"] for group in groups for r in group["rollouts"] for m in r["trajectory"] if m["role"] == "tool"]


def test_learn_answers_a_python_tool_with_the_function_given(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.configure(script="support.agent_world:agent_world")
    program = _world(tmp_path, endpoint.base_url)
    asked: list[str] = []

    def lookup(term: str) -> str:
        asked.append(term)
        return define(term)

    result = g.learn(program, runs=tmp_path / "runs", tools={"lookup": lookup})

    assert (result.status, result.message) == ("completed", None)
    messages = _tool_messages(result.run_dir)
    assert messages and len(messages) == len(asked)
    assert sorted(messages) == sorted(define(term) for term in asked)  # the function's answers, never the file's
    assert any(m.startswith("def-") for m in messages)
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["tool_functions"] == {"lookup": f"{__name__}.{lookup.__qualname__}"}

    with pytest.raises(RewardFunctionError, match=r"started with tool functions given from Python for `lookup`, and is resumed with them for no tool"):
        g.resume(result.run_dir)
    resumed = g.resume(result.run_dir, tools={"lookup": lookup})
    assert resumed.status == "completed" and resumed.library == result.library

    (tmp_path / "policies.grpo").write_text("grpo 1\n\npolicy add_only {\n  ops = [add]\n}\n")
    policy = f"{tmp_path / 'policies.grpo'}:add_only"
    assert main(["replay", str(result.run_dir), "--policy", policy, "--runs", str(tmp_path / "replays")]) == 1
    assert "called `lookup` with tool functions given from Python" in capsys.readouterr().err


def test_without_a_function_the_file_answers_the_tool(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.agent_world:agent_world")
    program = _world(tmp_path, endpoint.base_url)

    result = g.learn(program, runs=tmp_path / "runs")

    assert result.status == "completed", result.message
    messages = _tool_messages(result.run_dir)
    assert messages and all(m.startswith(f"error: `lookup` failed: RuntimeError: {FILE_TOOL_RAN}") for m in messages)
    assert "tool_functions" not in json.loads((result.run_dir / "run.json").read_text())


def test_a_tool_function_for_no_python_tool_is_refused_before_the_run(tmp_path: Path) -> None:
    program = _world(tmp_path, "http://127.0.0.1:9/v1")
    with pytest.raises(RewardFunctionError, match=r"answers no Python tool of task `ask` \(its Python tools: lookup\)"):
        g.learn(program, runs=tmp_path / "runs", tools={"search": define})
    with pytest.raises(RewardFunctionError, match=r"is str, not a function"):
        g.learn(program, runs=tmp_path / "runs", tools={"lookup": "define"})  # type: ignore[dict-item]
    assert not (tmp_path / "runs").exists()


def _call(arguments: object) -> dict[str, object]:
    return {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": json.dumps(arguments)}}


def test_a_tool_function_fails_as_a_tool_message_and_may_be_async(tmp_path: Path) -> None:
    task = load_plan(_world(tmp_path, "http://127.0.0.1:9/v1")).task("ask")
    release = threading.Event()

    def hangs(term: str) -> str:
        release.wait(60)
        return term

    def raises(term: str) -> str:
        raise KeyError(term)

    def junk(term: str) -> object:
        return {term}

    async def define_later(term: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"term": term, "definition": define(term)}

    async def calls() -> dict[str, str]:
        answers: dict[str, str] = {}
        pool = WorkerPool(1)
        try:
            for name, function, arguments in (
                ("plain", define, {"term": "zorp2"}),
                ("async", define_later, {"term": "zorp2"}),
                ("missing argument", define, {}),
                ("unknown argument", define, {"term": "zorp2", "colour": "red"}),
                ("raises", raises, {"term": "zorp2"}),
                ("junk", junk, {"term": "zorp2"}),
                ("hangs", hangs, {"term": "zorp2"}),
            ):
                async with Tools.of(task, tmp_path).opened(tmp_path, pool, functions={"lookup": function}) as box:
                    answers[name] = await box.call(_call(arguments))
        finally:
            pool.close()
        return answers

    answers = asyncio.run(calls())
    release.set()
    assert answers["plain"] == define("zorp2")
    assert json.loads(answers["async"]) == {"term": "zorp2", "definition": define("zorp2")}
    assert answers["missing argument"].startswith("error: `lookup` failed: bad arguments for `define`")
    assert answers["unknown argument"].startswith("error: `lookup` failed: bad arguments for `define`")
    assert answers["raises"].startswith("error: `lookup` failed: KeyError: 'zorp2' (at test_api_tools.py:")
    assert answers["junk"].startswith("error: `lookup` failed: `junk` returned set") and "neither text nor JSON" in answers["junk"]
    assert answers["hangs"] == "error: `lookup` failed: stopped after 5 s without an answer"
