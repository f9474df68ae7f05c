"""Python function tools in the reward scorer's killable workers: a tool that raises,
hangs, returns garbage, kills its worker or gets bad arguments gives a recorded tool
error, never a crashed run."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

from support.agent_world import write_agent_world
from support.endpoint import Endpoint

from grpo_dsl.learning.run import start_run
from grpo_dsl.plan import load_plan
from grpo_dsl.rewards.scorer import WorkerPool
from grpo_dsl.rollout.tools import Tools

SUPPORT = Path(__file__).resolve().parents[1] / "support"
FUNCTIONS = ("explode", "stall", "junk", "quit_worker", "fine")


def _program(folder: Path, base_url: str) -> Path:
    """The agent world with one Python tool per function of `faulty_tools.py`, each
    offered under the name `lookup` in its own task."""
    program = write_agent_world(folder, base_url, tool="python")
    shutil.copy(SUPPORT / "faulty_tools.py", folder / "faulty_tools.py")
    tools = "".join(f'tool {name}_tool {{\n  function = python("faulty_tools.py:{name}")\n  timeout = 1\n}}\n' for name in FUNCTIONS)
    program.write_text(program.read_text() + tools + "task every_tool {\n  model = agent\n  prompt = \"{{ question }}\"\n  tools = [" + ", ".join(f"{n}_tool" for n in FUNCTIONS) + "]\n}\n")
    return program


def _call(name: str, arguments: object) -> dict[str, object]:
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def test_failing_tools_give_errors_and_the_worker_is_replaced(tmp_path: Path) -> None:
    plan = load_plan(_program(tmp_path, "http://127.0.0.1:9/v1"))
    task = plan.task("every_tool")
    assert [t.name for t in task.declared] == [f"{n}_tool" for n in FUNCTIONS]
    assert task.declared[-1].schema is not None
    assert task.declared[-1].schema["parameters"]["required"] == ["term"]

    async def calls() -> tuple[dict[str, str], float]:
        pool = WorkerPool(1)
        try:
            async with Tools.of(task, tmp_path).opened(tmp_path, pool) as box:
                assert [d["function"]["name"] for d in box.definitions] == [f"{n}_tool" for n in FUNCTIONS]
                answers = {}
                started = time.monotonic()
                answers["stall"] = await box.call(_call("stall_tool", {"term": "x"}))
                stalled = time.monotonic() - started
                for name in ("explode", "junk", "quit_worker", "fine"):
                    answers[name] = await box.call(_call(f"{name}_tool", {"term": "x"}))
                answers["missing argument"] = await box.call(_call("fine_tool", {}))
                answers["unknown argument"] = await box.call(_call("fine_tool", {"term": "x", "colour": "red"}))
                answers["not json"] = await box.call({"id": "c", "function": {"name": "fine_tool", "arguments": "{oops"}})
                answers["unknown tool"] = await box.call(_call("search", {}))
                return answers, stalled
        finally:
            pool.close()

    answers, stalled = asyncio.run(calls())
    assert answers["fine"] == '{"term": "x", "times": 1}', "a worker killed by a tool or a timeout is replaced"
    assert stalled < 10
    assert answers["stall"].startswith("error: `stall_tool` failed: stopped after 1 s")
    assert answers["explode"].startswith("error: `explode_tool` failed: RuntimeError: cannot look up x")
    assert "neither text nor JSON" in answers["junk"] and answers["junk"].startswith("error:")
    assert answers["quit_worker"].startswith("error: `quit_worker_tool` failed: the worker process died")
    assert answers["missing argument"].startswith("error: `fine_tool` failed: bad arguments for `fine`")
    assert answers["unknown argument"].startswith("error: `fine_tool` failed: bad arguments for `fine`")
    assert answers["not json"].startswith("error: the arguments of `fine_tool` are not JSON")
    assert answers["unknown tool"].startswith("error: unknown tool 'search'; the tools are `explode_tool`")


def test_a_run_whose_tool_raises_records_the_errors_and_completes(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.agent_world:agent_world")
    program = write_agent_world(tmp_path, endpoint.base_url, tool="python", questions=4, group_size=2, batch_size=4)
    (tmp_path / "glossary.py").write_text("def define(term: str) -> str:\n    raise KeyError(term)\n")

    result = start_run(load_plan(program), "glossary_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.status == "completed", result.message
    rollouts = [r for g in json.loads((result.run_dir / "steps/0001/rollouts.json").read_text()) for r in g["rollouts"]]
    errors = [m["content"] for r in rollouts for m in r["trajectory"] if m["role"] == "tool"]
    assert errors and all(e.startswith("error: `lookup` failed: KeyError: 'zorp") or e.startswith("error: `lookup` failed: KeyError: 'What") for e in errors)
    assert all(r["error"] is None for r in rollouts)
