"""`grpo replay`: a recorded run of the revising world replayed under other policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint, running_endpoint
from support.learn_world import write_world
from support.worlds import DRAFT, LESSONS, NOISE

from grpo_dsl.cli import main
from grpo_dsl.learning.replay import ReplayResult, replay_run
from grpo_dsl.learning.run import start_run
from grpo_dsl.library import Library
from grpo_dsl.plan import load_plan

POLICIES = """grpo 1

policy own {
  ops = [add, modify, delete]
}

policy add_only {
  ops = [add]
}

policy one_per_group {
  max_per_group = 1
}

policy guarded {
  rule = python("rules.py:apply")
}
"""

RULES = '''
from dataclasses import replace

from grpo_dsl.library import ApplyReport, OpOutcome, apply as builtin


def apply(library, operations, policy, context):
    """The built-in rule, except that nothing is ever deleted."""
    refused = [i for i, op in enumerate(operations) if op.op == "delete"]
    passed = [i for i in range(len(operations)) if i not in refused]
    updated, report = builtin(library, [operations[i] for i in passed], policy, context)
    renumber = lambda outcome: replace(outcome, index=passed[outcome.index])
    refusals = [OpOutcome(i, operations[i], id=operations[i].id, reason="rules.py keeps everything") for i in refused]
    rejected = sorted([*map(renumber, report.rejected), *refusals], key=lambda o: o.index)
    return updated, ApplyReport(applied=tuple(map(renumber, report.applied)), rejected=tuple(rejected))
'''


def _record(folder: Path, base_url: str, *, learn_extra: str = "") -> Path:
    """Run the revising world's program (its learn block extended with `learn_extra`) in
    `folder`; write the replay policies beside it."""
    program = write_world(folder, base_url)
    program.write_text(program.read_text().replace("  seed       = 3\n", f"  seed       = 3\n{learn_extra}"))
    result = start_run(load_plan(program), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
    assert result.status == "completed"
    (folder / "policies.grpo").write_text(POLICIES)
    (folder / "rules.py").write_text(RULES)
    return result.run_dir


@pytest.fixture
def recorded(endpoint: Endpoint, tmp_path: Path) -> Path:
    endpoint.configure(script="support.worlds:revising_world")
    return _record(tmp_path, endpoint.base_url)


def _step(run_dir: Path, step: int, name: str) -> Any:
    return json.loads((run_dir / f"steps/{step:04d}/{name}.json").read_text())


def _texts(library: Library) -> list[str]:
    return [e.text for e in library.experiences]


def _replay(recorded: Path, policy: str, **options: Any) -> ReplayResult:
    return replay_run(recorded, recorded.parents[2] / "policies.grpo", policy, runs_root=recorded.parents[2] / "replays", stream=None, **options)


def test_the_recorded_run_modifies_and_deletes(recorded: Path) -> None:
    kinds = [outcome["op"]["op"] for step in (1, 2, 3) for outcome in _step(recorded, step, "report")["applied"]]
    assert kinds == ["add", "add", "modify", "delete", "add"]
    assert _texts(Library.from_json(_step(recorded, 3, "library"))) == list(LESSONS)


def test_replaying_with_its_own_policy_reproduces_the_library_without_a_call(endpoint: Endpoint, recorded: Path) -> None:
    paid = endpoint.stats()["total"]
    result = _replay(recorded, "own")

    assert endpoint.stats()["total"] == paid
    assert result.status == "completed"
    assert result.identical
    assert result.library.to_json() == json.loads((recorded / "library.json").read_text())
    assert [s.source for s in result.steps] == ["applied"] * 3
    assert result.usage["total"]["calls"] == result.usage["total"]["cached_calls"] == 0
    for step in (1, 2, 3):
        for name in ("rollouts", "rewards", "summaries", "proposals", "operations", "report", "library"):
            assert _step(result.run_dir, step, name) == _step(recorded, step, name), (step, name)


def test_replaying_without_modify_and_delete_diverges_and_prints_the_diff(
    endpoint: Endpoint, recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paid = endpoint.stats()["total"]
    folder = recorded.parents[2]
    status = main(["replay", str(recorded), "--policy", f"{folder / 'policies.grpo'}:add_only", "--runs", str(folder / "replays")])
    out = capsys.readouterr().out

    assert status == 0
    (replay_dir,) = (folder / "replays/date_lessons-replay").iterdir()
    summary = json.loads((replay_dir / "replay.json").read_text())
    assert [s["source"] for s in summary["steps"]] == ["applied", "applied", "rerun"]
    rejected = {o["op"]["op"]: o["reason"] for o in _step(replay_dir, 2, "report")["rejected"]}
    assert rejected == {"modify": "op `modify` not allowed by the policy", "delete": "op `delete` not allowed by the policy"}
    replayed = Library.from_json(_step(replay_dir, 3, "library"))
    assert _texts(replayed) == [DRAFT, NOISE, LESSONS[0]]
    assert all(p.op == "add" for e in replayed.experiences for p in e.provenance)
    assert all(DRAFT in g["messages"][0]["content"] for g in _step(replay_dir, 3, "rollouts"))

    spent = endpoint.stats()["total"] - paid
    replay_usage = json.loads((replay_dir / "usage.json").read_text())["total"]
    original_usage = json.loads((recorded / "usage.json").read_text())["total"]
    assert 0 < spent == replay_usage["calls"] < original_usage["calls"]
    assert f"+ E2  {NOISE}" in out
    assert "~ E1  Write [-every date in-] the [-numeric form YYYY-MM-DD.-] {+date.+}" in out
    assert "~ E3" in out and "- E" not in out
    lines = out.splitlines()
    original_line = next(line.split() for line in lines if line.startswith("  original "))
    replay_line = next(line.split() for line in lines if line.startswith("  replay "))
    assert original_line[1:3] == [str(original_usage["calls"]), str(original_usage["cached_calls"])]
    assert replay_line[1:3] == [str(replay_usage["calls"]), str(replay_usage["cached_calls"])]
    assert replay_line[4] == f"${replay_usage['usd']:.4f}" and original_line[4] == f"${original_usage['usd']:.4f}"


def test_offline_replay_makes_no_call_even_with_no_endpoint(tmp_path: Path) -> None:
    with running_endpoint(script="support.worlds:revising_world") as endpoint:
        recorded = _record(tmp_path, endpoint.base_url)

    own = _replay(recorded, "own", offline=True)
    add_only = _replay(recorded, "add_only", offline=True)

    assert own.status == add_only.status == "completed"
    assert own.identical
    assert not (add_only.run_dir / "cache").exists()
    assert [s.source for s in add_only.steps] == ["applied"] * 3
    assert [s.start_matched for s in add_only.steps] == [True, True, False]
    assert _texts(add_only.library) == [DRAFT, NOISE, LESSONS[1]]
    for result in (own, add_only):
        assert result.usage["total"]["calls"] == result.usage["total"]["cached_calls"] == 0


def test_a_user_rule_is_loaded_and_used(endpoint: Endpoint, recorded: Path) -> None:
    paid = endpoint.stats()["total"]
    result = _replay(recorded, "guarded", offline=True)

    assert endpoint.stats()["total"] == paid
    refused = _step(result.run_dir, 2, "report")["rejected"]
    assert [(o["op"]["op"], o["reason"]) for o in refused] == [("delete", "rules.py keeps everything")]
    assert _texts(result.library) == [LESSONS[0], NOISE, LESSONS[1]]
    assert [e["text"] for e in result.diff.added] == [NOISE]


def test_steps_before_from_step_are_taken_as_recorded(endpoint: Endpoint, recorded: Path) -> None:
    paid = endpoint.stats()["total"]
    result = _replay(recorded, "add_only", from_step=3)

    assert endpoint.stats()["total"] == paid
    assert [(s.step, s.source) for s in result.steps] == [(3, "applied")]
    assert result.identical
    for step in (1, 2):
        assert (result.run_dir / f"steps/{step:04d}/library.json").read_bytes() == (
            recorded / f"steps/{step:04d}/library.json"
        ).read_bytes()


def test_a_new_max_per_group_consolidates_the_recorded_proposals_again(endpoint: Endpoint, recorded: Path) -> None:
    result = _replay(recorded, "one_per_group")

    assert result.status == "completed"
    assert [(s.source, s.start_matched) for s in result.steps] == [("consolidated", True), ("rerun", False), ("consolidated", True)]
    assert _texts(Library.from_json(_step(result.run_dir, 1, "library"))) == [DRAFT]
    assert _step(result.run_dir, 1, "rollouts") == _step(recorded, 1, "rollouts")
    assert _texts(result.library) == list(LESSONS)
    calls = [e for e in map(json.loads, (result.run_dir / "events.jsonl").read_text().splitlines()) if e["event"] == "call"]
    assert calls[0]["sample_key"] == "1/consolidate/0"
    assert [e["sample_key"] for e in calls if e["cached"] and e["stage"] != "contrast"] == ["3/consolidate/0"]
    assert all(e["sample_key"].startswith("2:") for e in calls if e["cached"] and e["stage"] == "contrast")
    assert {e["stage"] for e in calls if e["sample_key"].startswith("3")} == {"consolidate"}


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        (["{run}", "--policy", "{folder}/policies.grpo:nope"], 1, "declares no policy `nope` (it declares: `add_only`, `guarded`, `one_per_group`, `own`)"),
        (["{run}", "--policy", "{folder}/policies.grpo:own", "--from-step", "4"], 1, "--from-step must be between 1 and 3"),
        (["{folder}", "--policy", "{folder}/policies.grpo:own"], 2, "not a run directory"),
        (["{run}", "--policy", "{folder}/missing.grpo:own"], 2, "no such file"),
        (["{run}", "--policy", "own"], 2, "--policy takes FILE:NAME"),
    ],
)
def test_bad_arguments_are_clear_errors(
    recorded: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], status: int, message: str
) -> None:
    folder = recorded.parents[2]
    argv = ["replay", *(a.format(run=recorded, folder=folder) for a in arguments), "--runs", str(folder / "replays")]
    assert main(argv) == status
    assert message in capsys.readouterr().err
    assert not (folder / "replays").exists()


def test_a_gated_run_replays_exactly_online_and_offline(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:revising_world")
    recorded = _record(tmp_path, endpoint.base_url, learn_extra="  validate   = dates\n")
    gates = [_step(recorded, step, "report")["gate"] for step in (1, 2, 3)]
    paid = endpoint.stats()["total"]

    online, offline = _replay(recorded, "own"), _replay(recorded, "own", offline=True)

    assert None not in gates
    assert endpoint.stats()["total"] == paid
    assert online.identical and offline.identical
    assert [_step(online.run_dir, step, "report")["gate"] for step in (1, 2, 3)] == gates
