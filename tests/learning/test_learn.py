"""The learning loop end to end, against the scripted date world on the test endpoint."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
from support.endpoint import Endpoint
from support.learn_world import write_world
from support.worlds import LESSONS

from grpo_dsl.cli import main
from grpo_dsl.learning.run import RunResult, resume_run, start_run
from grpo_dsl.plan import load_plan
from grpo_dsl.plan.estimate import PROPOSALS_PER_CONSOLIDATION


def _run(folder: Path, endpoint: Endpoint, **world: int) -> RunResult:
    program = write_world(folder, endpoint.base_url, **world)
    return start_run(load_plan(program), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)


def _events(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def _step_of(sample_key: str) -> int:
    match = re.match(r"\d+", sample_key)
    assert match, sample_key
    return int(match.group())


def test_the_loop_learns_the_lessons_and_the_reward_rises(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    result = _run(tmp_path, endpoint)

    assert result.status == "completed"
    assert [e.text for e in result.library.experiences] == list(LESSONS)
    rewards = [s.mean_reward for s in result.steps]
    assert len(rewards) == 3
    assert rewards == sorted(rewards) and rewards[0] < rewards[-1], rewards
    calls = [e for e in _events(result.run_dir) if e["event"] == "call"]
    assert len(calls) == endpoint.stats()["total"]
    assert all(not e["cached"] for e in calls)


def test_the_calls_of_a_step_follow_the_formula(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    result = _run(tmp_path, endpoint)
    by_step: Counter[tuple[int, str]] = Counter()
    for event in _events(result.run_dir):
        if event["event"] == "call":
            by_step[_step_of(str(event["sample_key"])), str(event["stage"])] += 1
    group_size, batch = 4, 4
    for outcome in result.steps:
        step = outcome.step
        proposals = sum(len(g["operations"]) for g in json.loads((result.run_dir / f"steps/{step:04d}/proposals.json").read_text()))
        assert by_step[step, "rollout"] == group_size * batch
        assert by_step[step, "summary"] == group_size * outcome.kept
        assert by_step[step, "advantage"] == outcome.kept
        assert by_step[step, "consolidate"] == math.ceil(proposals / PROPOSALS_PER_CONSOLIDATION)
        assert sum(n for (s, _), n in by_step.items() if s == step) == (
            group_size * batch + group_size * outcome.kept + outcome.kept + math.ceil(proposals / PROPOSALS_PER_CONSOLIDATION)
        )


def test_without_summaries_one_contrast_call_per_kept_group_replaces_them(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    program.write_text(program.read_text().replace("  seed       = 3\n", "  seed       = 3\n  summarize  = false\n"))
    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)
    stages: Counter[tuple[int, str]] = Counter()
    for event in _events(result.run_dir):
        if event["event"] == "call":
            stages[_step_of(str(event["sample_key"])), str(event["stage"])] += 1
    assert [e.text for e in result.library.experiences] == list(LESSONS)
    for outcome in result.steps:
        assert stages[outcome.step, "summary"] == 0
        assert stages[outcome.step, "contrast"] == outcome.kept
        assert stages[outcome.step, "advantage"] == outcome.kept


def test_a_rerun_replays_from_the_cache_for_free(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    first = _run(tmp_path, endpoint)
    paid = endpoint.stats()["total"]
    second = resume_run_copy(first.run_dir, tmp_path / "again")
    assert endpoint.stats()["total"] == paid
    assert second.library.to_json() == first.library.to_json()


def resume_run_copy(run_dir: Path, target: Path) -> RunResult:
    """A fresh run directory holding only the plan, run info and cache of `run_dir`, resumed."""
    target.mkdir()
    for name in ("plan.json", "run.json"):
        (target / name).write_bytes((run_dir / name).read_bytes())
    (target / "cache").symlink_to(run_dir / "cache", target_is_directory=True)
    return resume_run(target, stream=None)


def test_skipped_groups_and_malformed_learner_replies_do_not_stop_a_step(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:troubled_world")
    program = write_world(tmp_path, endpoint.base_url, questions=6, batch_size=6, group_size=3)
    program.write_text(program.read_text().replace("  seed       = 3\n", "  seed       = 3\n  max_failures = 0.5\n"))
    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.status == "completed"
    (outcome,) = result.steps
    assert outcome.failed_rollouts == 2 * 3
    rewards = json.loads((result.run_dir / "steps/0001/rewards.json").read_text())
    reasons = Counter(g["skip_reason"] for g in rewards)
    assert reasons["every rollout failed"] == 2
    assert reasons["every reward is equal"] >= 2
    assert outcome.kept == reasons[None] >= 1
    assert outcome.skipped == 6 - outcome.kept
    events = _events(result.run_dir)
    assert sum(e["event"] == "group_skipped" for e in events) == outcome.skipped
    assert sum(e["event"] == "learner_reply_malformed" for e in events) == outcome.kept
    assert sum(e["event"] == "rollout_failed" for e in events) == 2 * 3
    assert len(result.library.experiences) == 0


def test_a_budget_stops_the_run_cleanly_with_its_steps_saved(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    program.write_text(program.read_text().replace("  seed       = 3\n", "  seed       = 3\n  budget { calls = 50 }\n"))
    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.status == "stopped"
    assert "calls" in (result.message or "")
    assert [s.step for s in result.steps] == [1]
    assert endpoint.stats()["total"] <= 50
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["status"] == "stopped"
    assert (result.run_dir / "steps/0001/library.json").exists()
    assert json.loads((result.run_dir / "usage.json").read_text())["total"]["calls"] <= 50


@pytest.mark.parametrize("placement", ["system", "user", "none"])
def test_the_library_is_placed_where_the_task_says(endpoint: Endpoint, tmp_path: Path, placement: str) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    program.write_text(program.read_text().replace("experiences = system", f"experiences = {placement}"))
    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)
    groups = json.loads((result.run_dir / "steps/0003/rollouts.json").read_text())
    messages = groups[0]["messages"]
    where = {m["role"]: LESSONS[0] in m["content"] for m in messages}
    expected = {"system": {"system": True, "user": False}, "user": {"system": False, "user": True}, "none": {"system": False, "user": False}}
    assert where == expected[placement]


def _with_tools(program: Path) -> Path:
    program.write_text(program.read_text().replace("  max_tokens  = 20\n", "  max_tokens  = 20\n  tools       = [python]\n  max_turns   = 3\n"))
    return program


@pytest.mark.usefixtures("bubblewrap")
def test_rollouts_use_the_code_interpreter_when_the_task_has_tools(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:tool_world")
    program = _with_tools(write_world(tmp_path, endpoint.base_url, questions=2, batch_size=2, group_size=2))
    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.status == "completed"
    (outcome,) = result.steps
    assert outcome.mean_reward == 1.0
    groups = json.loads((result.run_dir / "steps/0001/rollouts.json").read_text())
    for group in groups:
        for rollout in group["rollouts"]:
            assert rollout["tool_calls"] == 1
            roles = [m["role"] for m in rollout["trajectory"]]
            assert roles == ["assistant", "tool", "assistant"]
    sent = [r["body"] for r in endpoint.stats()["requests"]]
    assert all(body["tools"][0]["function"]["name"] == "python" for body in sent)


@pytest.mark.usefixtures("no_bubblewrap")
def test_without_bubblewrap_a_run_with_the_python_tool_refuses_before_it_starts(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.configure(script="support.worlds:tool_world")
    program = _with_tools(write_world(tmp_path, endpoint.base_url, questions=2, batch_size=2, group_size=2))
    assert main(["run", str(program), "--runs", str(tmp_path / "runs")]) == 1
    error = capsys.readouterr().err
    assert "task `write_date` (model `world`)" in error and "`bwrap` is not installed" in error
    assert 'set `sandbox = "unsafe-process"`' in error
    assert not (tmp_path / "runs").exists() and endpoint.stats()["total"] == 0

    program.write_text(program.read_text().replace('  name        = "world"\n', '  name        = "world"\n  sandbox     = "unsafe-process"\n'))
    assert main(["run", str(program), "--runs", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs" / "date_lessons").iterdir()
    groups = json.loads((run_dir / "steps/0001/rollouts.json").read_text())
    assert all(r["tool_calls"] == 1 and r["error"] is None for g in groups for r in g["rollouts"])


def test_a_prompt_past_its_render_budget_fails_the_run_with_the_reason(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url, questions=2, batch_size=2, group_size=2)
    # 10 GB of dashes for the year 1990: `grpo check` cannot see it, the render stops it
    program.write_text(program.read_text().replace('prompt      = "', """prompt      = "{{ '-' * (year * 5000000) }}"""))
    assert main(["run", str(program), "--runs", str(tmp_path / "runs")]) == 1
    error = capsys.readouterr().err
    assert "`*` would make a value of more than 2000000 characters" in error
    (run_dir,) = (tmp_path / "runs" / "date_lessons").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert endpoint.stats()["total"] == 0


def test_without_ground_truth_every_group_is_kept_and_no_answer_is_shown(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    text = program.read_text().replace(
        "reward correct = exact(strip(output), answer)", 'reward correct = matches(strip(output), "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")'
    )
    program.write_text(text.replace("  seed       = 3\n", "  seed       = 3\n  ground_truth = false\n"))
    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.status == "completed"
    assert all(s.kept == s.groups for s in result.steps)
    assert any(len(set(g["rewards"])) == 1 for s in result.steps for g in json.loads((result.run_dir / f"steps/{s.step:04d}/rewards.json").read_text()))
    learner_prompts = [
        m["content"]
        for r in endpoint.stats()["requests"]
        for m in r["body"]["messages"]
        if m["content"] and m["content"].startswith(("You are reviewing", "Two attempts", "Several attempts"))
    ]
    assert learner_prompts
    assert not any("reference answer" in p for p in learner_prompts)
