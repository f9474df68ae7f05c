"""Agents with tools, end to end against the scripted agent world on the test endpoint:
a real MCP server started over stdio by the runtime, the lesson learned about when to
call its tool, and the evaluation's tool calls per answer with intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.agent_world import AGENT_LESSONS, write_agent_world
from support.endpoint import Endpoint
from support.glossary import define

from grpo_dsl.cli import main
from grpo_dsl.evaluation.evaluate import start_evaluation
from grpo_dsl.learning.run import start_run
from grpo_dsl.plan import load_plan
from grpo_dsl.runs.directory import read_events


@pytest.mark.slow
def test_the_loop_learns_when_to_call_an_mcp_tool_and_the_evaluation_counts_the_calls(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.configure(script="support.agent_world:agent_world")
    program = write_agent_world(tmp_path, endpoint.base_url, tool="mcp", questions=8, batch_size=4, group_size=4)
    plan = load_plan(program)
    assert plan.tool("lookup").kind == "mcp" and len(plan.tool("lookup").hash) == 64

    learned = start_run(plan, "glossary_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert learned.status == "completed", learned.message
    assert AGENT_LESSONS[0] in [e.text for e in learned.library.experiences]
    opened = [e for e in read_events(learned.run_dir / "events.jsonl") if e["event"] == "tools_opened"]
    assert [e["tools"] for e in opened] == [["lookup"]]
    rollouts = [r for g in json.loads((learned.run_dir / "steps/0001/rollouts.json").read_text()) for r in g["rollouts"]]
    results = [m["content"] for r in rollouts for m in r["trajectory"] if m["role"] == "tool"]
    assert define("zorp0") in results, "the definition comes only from the MCP server"
    answered = [r for r in rollouts if r["tool_calls"] and r["output"].startswith("def-")]
    assert answered and all([m["role"] for m in r["trajectory"]] == ["assistant", "tool", "assistant"] for r in answered)
    summaries = [s for g in json.loads((learned.run_dir / "steps/0001/summaries.json").read_text()) for s in g["summaries"]]
    assert any("[calls lookup({" in s and "[result: def-" in s for s in summaries), "the learner reads the tool calls"
    sent = [r["body"] for r in endpoint.stats()["requests"] if r["body"].get("tools")]
    assert sent and all(body["tools"][0]["function"]["name"] == "lookup" for body in sent)
    assert "term" in sent[0]["tools"][0]["function"]["parameters"]["properties"]

    evaluation = start_evaluation(plan, "tool_use", base_dir=tmp_path, runs_root=tmp_path / "runs")
    assert evaluation.status == "completed", evaluation.message
    document = json.loads((evaluation.run_dir / "evaluation.json").read_text())
    calls = {library["name"]: library["metrics"]["tool_calls"] for library in document["libraries"]}
    assert set(calls) == {"none", "glossary_lessons"}
    for interval in calls.values():
        assert interval["low"] <= interval["estimate"] <= interval["high"]
    assert calls["glossary_lessons"]["estimate"] < calls["none"]["estimate"], "the lesson cuts the wasted calls"
    records = [json.loads(line) for line in (evaluation.run_dir / "results.jsonl").read_text().splitlines()]
    for name, interval in calls.items():
        per_answer = [r["tool_calls"] for r in records if r["library"] == name]
        assert interval["estimate"] == pytest.approx(sum(per_answer) / len(per_answer))

    assert main(["eval", str(program), "--runs", str(tmp_path / "runs")]) == 0
    assert "tool calls" in capsys.readouterr().out


def test_an_mcp_server_that_does_not_start_fails_the_run_with_the_reason(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.agent_world:agent_world")
    program = write_agent_world(tmp_path, endpoint.base_url, tool="mcp")
    (tmp_path / "glossary_server.py").write_text("raise SystemExit(3)\n")

    result = start_run(load_plan(program), "glossary_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.status == "failed"
    assert "tool `lookup`: the MCP server" in (result.message or "") and "did not start or list its tools" in (result.message or "")
    assert endpoint.stats()["total"] == 0
