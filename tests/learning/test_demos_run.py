"""Demonstrations through a whole run on the scripted demo world: chosen from winning
rollouts, shown as earlier turns, never a validation question, replayed, emitted, blamed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint
from support.learn_world import write_world

from grpo_dsl.cli import main
from grpo_dsl.learning.replay import replay_run
from grpo_dsl.learning.run import RunResult, start_run
from grpo_dsl.modules import blame, emit_from_run, load_module
from grpo_dsl.plan import load_plan

VALIDATE = """
dataset held {
  source = "held.jsonl"
}

dataset tested {
  source = "tested.jsonl"
}

evaluate date_eval {
  task    = write_date
  data    = tested
  reward  = correct
  compare = [none, date_lessons]
}

emit date_prompts {
  library = date_lessons
  path    = "prompts/dates"
}
"""

POLICIES = """grpo 1

policy one_demo {
  demos = 1
}
"""


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _learn(folder: Path, endpoint: Endpoint, *, validate: bool = False, extra: str = "") -> RunResult:
    endpoint.configure(script="support.worlds:demo_world")
    program = write_world(folder, endpoint.base_url, questions=12, batch_size=4, demos=2)
    text = program.read_text() + VALIDATE
    outside = [{"id": "h0", "day": 9, "month": 9, "year": 2009, "answer": "2009-09-09"}]
    rows = _rows(folder / "dates.jsonl")
    # with `validate`, the validation and evaluation files repeat a third of the training questions each, under other ids
    held = [{**row, "id": f"held-{row['id']}"} for row in rows[::3]] if validate else outside
    tested = [{**row, "id": f"tested-{row['id']}"} for row in rows[1::3]] if validate else outside
    for name, chosen in (("held", held), ("tested", tested)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chosen))
    if validate:
        text = text.replace("  seed       = 3\n", "  seed       = 3\n  validate   = held\n")
    program.write_text(text.replace("  seed       = 3\n", f"  seed       = 3\n{extra}"))
    result = start_run(load_plan(program), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
    assert result.status == "completed", result.message
    return result


def _step(run_dir: Path, step: int, name: str) -> Any:
    return json.loads((run_dir / f"steps/{step:04d}/{name}.json").read_text())


def test_winning_rollouts_become_demos_shown_as_earlier_turns(endpoint: Endpoint, tmp_path: Path) -> None:
    result = _learn(tmp_path, endpoint)
    demos = result.library.demos
    assert [d.id for d in demos] == ["D1", "D2"]
    training = {row["id"]: row for row in _rows(tmp_path / "dates.jsonl")}
    for demo in demos:
        row = training[demo.example.question]
        assert demo.example.source == "rollout" and demo.example.answer == row["answer"]
        assert demo.example.fields == {"day": row["day"], "month": row["month"], "year": row["year"]}
        assert demo.provenance[0].op == "add" and demo.provenance[0].groups
    assert result.library.experiences == (), "this world's learner proposes no lesson"

    first = _step(result.run_dir, 1, "operations")
    assert [op["op"] for op in first] == ["add_demo", "add_demo"]
    later = _step(result.run_dir, 2, "rollouts")
    for group in later:
        roles = [m["role"] for m in group["messages"]]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
        assert [m["content"] for m in group["messages"][2:4:2]] == [demos[0].example.answer]
    rewards = [step.mean_reward for step in result.steps]
    assert rewards[0] < 0.5 < rewards[-1], f"the demos should lift the reward: {rewards}"


def test_no_demo_is_a_validation_or_evaluation_question(endpoint: Endpoint, tmp_path: Path) -> None:
    result = _learn(tmp_path, endpoint, validate=True)
    assert result.library.demos, "the run should still find demos among the other questions"
    held = {(r["day"], r["month"], r["year"]) for name in ("held", "tested") for r in _rows(tmp_path / f"{name}.jsonl")}
    assert len(held) == 8
    for step in range(1, len(result.steps) + 1):
        for op in _step(result.run_dir, step, "operations"):
            if op.get("example"):
                fields = op["example"]["fields"]
                assert (fields["day"], fields["month"], fields["year"]) not in held


def test_without_ground_truth_demos_are_only_the_models_answers(endpoint: Endpoint, tmp_path: Path) -> None:
    extra = "  ground_truth = false\n"
    program_reward = 'reward correct = matches(strip(output), "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")'
    endpoint.configure(script="support.worlds:demo_world")
    program = write_world(tmp_path, endpoint.base_url, questions=8, batch_size=4, demos=2)
    text = program.read_text().replace("reward correct = exact(strip(output), answer)", program_reward)
    program.write_text(text.replace("  seed       = 3\n", f"  seed       = 3\n{extra}"))
    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)
    assert result.status == "completed" and result.library.demos
    assert all(d.example.source == "rollout" for d in result.library.demos)

    program.write_text(program.read_text().replace(extra, extra + "  demo_source  = both\n"))
    assert main(["check", str(program)]) == 1


def test_replay_emit_and_blame_work_for_demos(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _learn(tmp_path, endpoint)
    (tmp_path / "policies.grpo").write_text(POLICIES)
    replayed = replay_run(result.run_dir, tmp_path / "policies.grpo", "one_demo", runs_root=tmp_path / "replays", offline=True, stream=None)
    assert replayed.status == "completed"
    assert [d.id for d in replayed.library.demos] == ["D1"]
    assert replayed.library.demos[0].example == result.library.demos[0].example
    assert [e["id"] for e in replayed.diff.removed] == ["D2"]

    emitted = emit_from_run(load_plan(tmp_path / "world.grpo"), "date_prompts", result.run_dir, base_dir=tmp_path)
    module = load_module(emitted.path)
    assert [d.id for d in module.demos] == ["D1", "D2"]
    assert module.manifest["demos"] == 2
    messages = module.render(day=5, month=6, year=2030)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[-1]["content"] == "What is day 5 of month 6 of 2030, as a date?"

    found = blame(module, "D2")
    assert found.live and found.events[0].entry.op == "add"
    assert found.events[0].evidence and found.events[0].evidence[0].group in found.events[0].entry.groups
    assert main(["module", "blame", str(emitted.path), "D1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"D1 in date_prompts 1.0.0 (in the prompt): {result.library.demos[0].example.answer}")
    assert "why: rollout " in out
