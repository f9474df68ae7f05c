"""The agent example of `programs/`: it checks clean, its data is what its generator
writes, its Python tool answers, and one step of it runs on the real embedded local model."""

from __future__ import annotations

import datetime
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from grpo_dsl.learning.run import start_run
from grpo_dsl.language.checks import check_path
from grpo_dsl.plan import load_plan

PROGRAMS = Path(__file__).resolve().parent.parent / "programs"
AGENT = PROGRAMS / "agent.grpo"


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_agent_program_checks_clean_and_offers_its_tool_with_a_schema() -> None:
    assert check_path(str(AGENT)).diagnostics == ()
    tool = load_plan(AGENT).tool("weekday")
    assert tool.schema is not None
    assert tool.schema["parameters"]["required"] == ["date"]
    assert "YYYY-MM-DD" in tool.schema["parameters"]["properties"]["date"]["description"]


def test_the_data_is_what_the_generator_writes_and_the_tool_knows_every_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PROGRAMS / "data"))
    written = _module(PROGRAMS / "data" / "make_weekdays.py").write_splits(tmp_path)
    weekday = _module(PROGRAMS / "tools" / "calendar_tools.py").weekday
    for path in written:
        assert path.read_bytes() == (PROGRAMS / "data" / path.name).read_bytes(), path.name
        for row in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
            written = row["question"].split(" was ")[1].rstrip("?")
            assert weekday(datetime.datetime.strptime(written, "%B %d, %Y").date().isoformat()) == row["answer"]


@pytest.mark.local_model
def test_one_step_of_the_agent_runs_on_the_local_model(tmp_path: Path) -> None:
    """The task's model becomes the embedded `local` model; one step of four questions
    with two answers each, every answer allowed its tool turns."""
    shutil.copytree(PROGRAMS / "data", tmp_path / "data")
    shutil.copytree(PROGRAMS / "tools", tmp_path / "tools")
    shutil.copy(PROGRAMS / "common.grpo", tmp_path / "common.grpo")
    text = AGENT.read_text(encoding="utf-8")
    for old, new in (
        ("  model      = endpoint\n", "  model      = local\n"),
        ('  source = "data/weekdays_train.jsonl"\n', '  source = "data/weekdays_train.jsonl"\n  limit  = 4\n'),
        ("  group_size = 4\n", "  group_size = 2\n"),
        ("  batch_size = 8\n", "  batch_size = 4\n"),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    program = tmp_path / "agent.grpo"
    program.write_text(text, encoding="utf-8")

    result = start_run(load_plan(program), "weekday_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert (result.status, result.message) == ("completed", None)
    (step,) = result.steps
    assert step.groups == 4
    groups = json.loads((result.run_dir / "steps" / "0001" / "rollouts.json").read_text(encoding="utf-8"))
    for group in groups:
        for rollout in group["rollouts"]:
            assert rollout["tool_calls"] == sum(len(m.get("tool_calls") or []) for m in rollout["trajectory"])
            assert rollout["error"] is None or "max_turns" in rollout["error"]
    events = [json.loads(line) for line in (result.run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e["tools"] for e in events if e["event"] == "tools_opened"] == [["weekday"]]
