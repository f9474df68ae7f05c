"""Modules emitted from a real learning run render exactly the messages the run sent.

The run learns against the scripted date world on the test endpoint. The messages
recorded at step N were rendered with the library as it was before step N's
update, that is the library of step N - 1 (step 0: the empty library), so the
module emitted from step N - 1 must render them byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.endpoint import Endpoint
from support.learn_world import write_world
from support.worlds import LESSONS

from grpo_dsl import load_module
from grpo_dsl.cli import main
from grpo_dsl.learning.run import start_run
from grpo_dsl.modules import ModuleError, blame, emit_from_run
from grpo_dsl.plan import Plan, load_plan
from grpo_dsl.rollout.questions import load_questions

EMIT = """
emit date_prompts {
  library = date_lessons
  path    = "prompts/dates"
  formats = [json, jinja, markdown]
}
"""


def _learn(folder: Path, endpoint: Endpoint) -> tuple[Path, Plan, Path]:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(folder, endpoint.base_url)
    program.write_text(program.read_text() + EMIT)
    plan = load_plan(program)
    result = start_run(plan, "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
    assert result.status == "completed"
    return program, plan, result.run_dir


def _bytes(messages: object) -> bytes:
    """Canonical JSON (run files are written with sorted keys): equal bytes mean equal roles and texts."""
    return json.dumps(messages, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def test_render_gives_the_messages_the_run_sent(endpoint: Endpoint, tmp_path: Path) -> None:
    program, plan, run_dir = _learn(tmp_path, endpoint)
    questions = {q.id: q for q in load_questions(plan.dataset("dates"), tmp_path, plan.learn("date_lessons").seed)}
    steps = sorted(int(p.name) for p in (run_dir / "steps").iterdir())
    assert steps == [1, 2, 3]
    compared_with_experiences = 0
    for step in steps:
        emitted = emit_from_run(plan, "date_prompts", run_dir, step=step - 1, base_dir=tmp_path)
        module = load_module(tmp_path / "prompts" / "dates", emitted.version)
        assert module.created_from["step"] == step - 1
        for group in json.loads((run_dir / "steps" / f"{step:04d}" / "rollouts.json").read_text()):
            rendered = module.render(**questions[group["question"]].fields)
            assert _bytes(rendered) == _bytes(group["messages"]), (step, group["group"])
            compared_with_experiences += "[E1]" in rendered[0]["content"]
    assert compared_with_experiences > 0

    latest = emit_from_run(plan, "date_prompts", run_dir, base_dir=tmp_path)
    hashes = [json.loads((run_dir / "steps" / f"{s:04d}" / "library.json").read_text())["content_hash"] for s in (2, 3)]
    assert latest.created == (hashes[0] != hashes[1])
    module = load_module(tmp_path / "prompts" / "dates")
    assert module.version == latest.version
    assert [e.text for e in module.experiences] == list(LESSONS)
    run_info = json.loads((run_dir / "run.json").read_text())
    assert module.created_from["plan_sha256"] == run_info["plan_sha256"]
    assert module.created_from["learn"] == "date_lessons"
    assert module.created_from["step"] == (3 if latest.created else 2)
    assert (tmp_path / "prompts" / "dates" / module.created_from["run"]).resolve() == run_dir.resolve()
    assert module.manifest["model"] == {"block": "world", "name": "world"}


def test_emit_and_blame_from_the_command_line(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program, plan, run_dir = _learn(tmp_path, endpoint)
    assert main(["emit", str(program), "--emit", "date_prompts", "--from", str(run_dir)]) == 0
    module_path = tmp_path / "prompts" / "dates"
    assert capsys.readouterr().out == f"{module_path} 1.0.0: initial version written\n"
    assert main(["emit", str(program), "--emit", "date_prompts", "--from", str(run_dir)]) == 0
    assert capsys.readouterr().out == f"{module_path} 1.0.0: unchanged, no new version\n"

    module = load_module(module_path)
    first = blame(module, "E1")
    assert first.run is not None and first.run.resolve() == run_dir.resolve()
    added = first.events[0]
    assert added.entry.op == "add" and added.evidence
    rewards = {r["group"]: r for r in json.loads((run_dir / "steps" / f"{added.entry.step:04d}" / "rewards.json").read_text())}
    for evidence in added.evidence:
        assert list(evidence.rewards) == rewards[evidence.group]["rewards"]
        assert evidence.kept and evidence.proposals
    assert main(["module", "blame", str(module_path), "E1"]) == 0
    out = capsys.readouterr().out
    assert f"step {added.entry.step}: add by groups " in out
    assert f"  group {added.evidence[0].group} (question {added.evidence[0].question}): rewards " in out
    assert f'    proposed add "{LESSONS[0]}": the better attempts did this' in out

    assert main(["emit", str(program), "--emit", "nope", "--from", str(run_dir)]) == 1
    assert "the program has no emit `nope` (its emits: date_prompts)" in capsys.readouterr().err
    assert main(["emit", str(program), "--emit", "date_prompts", "--from", str(run_dir), "--step", "7"]) == 1
    error = capsys.readouterr().err
    assert "step 7 of the run" in error and "is not complete (completed steps: 1, 2, 3)" in error
    with pytest.raises(ModuleError, match="is not a run directory"):
        emit_from_run(plan, "date_prompts", tmp_path, base_dir=tmp_path)
