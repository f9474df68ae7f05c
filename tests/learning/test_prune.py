"""`prune = hurting`: the gate measures every lesson and demo by leave-one-out and deletes those that hurt.

`worlds.planted_world`'s learner proposes a lesson that helps and one that hurts
(see tests/evaluation/test_ablation.py); a bad demo, an answer written M/D/YYYY, hurts
as the harmful lesson does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint
from support.eval_world import date_module, write_held_out
from support.learn_world import write_world
from support.worlds import HARMFUL_LESSON, HELPFUL_LESSON

from grpo_dsl.cli import main
from grpo_dsl.learning.run import RunResult, start_run
from grpo_dsl.library import Demo, Example, Experience, Library, ProvenanceEntry
from grpo_dsl.plan import load_plan

HELD = '\ndataset held {\n  source = "held.jsonl"\n}\n\nemit date_prompts {\n  library = date_lessons\n  path    = "prompts/dates"\n}\n'


def pruned_run(folder: Path, endpoint: Endpoint, extra: str = "", declarations: str = "") -> tuple[RunResult, list[dict[str, Any]]]:
    program = write_world(folder, endpoint.base_url)
    text = program.read_text().replace("  seed       = 3\n", f"  seed       = 3\n  validate   = held\n  prune      = hurting\n{extra}")
    program.write_text(text + HELD + declarations)
    write_held_out(folder)
    endpoint.configure(script="support.worlds:planted_world")
    result = start_run(load_plan(program), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
    assert result.status == "completed", result.message
    events = [json.loads(line) for line in (result.run_dir / "events.jsonl").read_text().splitlines()]
    return result, events


def test_a_learn_that_prunes_ends_without_the_lesson_that_hurts(endpoint: Endpoint, tmp_path: Path) -> None:
    result, events = pruned_run(tmp_path, endpoint)

    assert [e.text for e in result.library.experiences] == [HELPFUL_LESSON]
    first = json.loads((result.run_dir / "steps/0001/prune.json").read_text())
    verdicts = {u["id"]: (u["text"], u["verdict"]) for u in first["utilities"]}
    assert verdicts == {"E1": (HELPFUL_LESSON, "helps"), "E2": (HARMFUL_LESSON, "hurts")}
    [operation] = first["operations"]
    assert (operation["op"], operation["id"]) == ("delete", "E2")
    assert operation["rationale"].startswith("pruned: leave-one-out utility -0.")
    assert "on `held` (12 questions x 4 samples); the library scores higher without it" in operation["rationale"]
    assert [o["id"] for o in first["report"]["applied"]] == ["E2"]
    assert [s.pruned for s in result.steps][0] == 1
    assert [e["deleted"] for e in events if e["event"] == "pruned"][0] == ["E2"]
    retired = next(e for e in result.library.history if e.id == "E2")
    assert (retired.provenance[-1].op, retired.provenance[-1].step) == ("delete", 1)
    assert retired.provenance[-1].rationale == operation["rationale"]
    assert retired.provenance[-1].groups == ()


def test_pruning_a_library_measured_before_costs_nothing(endpoint: Endpoint, tmp_path: Path) -> None:
    result, events = pruned_run(tmp_path, endpoint)

    prune_calls = [e for e in events if e["event"] == "call" and e["stage"] == "prune"]
    step_of = {}
    step = 0
    for event in events:
        if event["event"] == "step_started":
            step = event["step"]
        step_of[id(event)] = step
    paid = [step_of[id(e)] for e in prune_calls if not e["cached"]]
    assert paid and set(paid) == {1}, "after step 1 the library is one already measured: every prune call is cached"
    # step 1 measures three libraries, but the full one is the gate's new library: it pays for two
    assert len(paid) == 2 * 12 * 4
    assert [e["step"] for e in events if e["event"] == "pruned"] == [1, 2, 3], "every step measures its library"


def test_blame_says_why_a_pruned_lesson_left(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result, _ = pruned_run(tmp_path, endpoint)
    assert main(["emit", str(tmp_path / "world.grpo"), "--emit", "date_prompts", "--from", str(result.run_dir)]) == 0
    capsys.readouterr()

    assert main(["module", "blame", str(tmp_path / "prompts" / "dates"), "E2"]) == 0

    out = capsys.readouterr().out
    assert f"E2 in date_prompts 1.0.0 (retired): {HARMFUL_LESSON}" in out
    assert "step 1: delete\n  why: pruned: leave-one-out utility -0." in out


def bad_demo_module(folder: Path) -> str:
    """A module whose library holds the helpful lesson and a demo written M/D/YYYY."""
    added = (ProvenanceEntry("add", 0),)
    library = Library(
        version=1,
        experiences=(Experience("E1", HELPFUL_LESSON, added, 0),),
        next_id=2,
        demos=(Demo("D1", Example("d99", {"day": 5, "month": 3, "year": 1990}, "3/5/1990", 1.0), added, 0),),
        next_demo=2,
    )
    return date_module(folder, library, "seeded")


def test_a_demo_that_hurts_is_deleted_with_delete_demo(endpoint: Endpoint, tmp_path: Path) -> None:
    reference = bad_demo_module(tmp_path)
    policy = "\npolicy fixed {\n  ops   = [keep]\n  demos = 1\n}\n"
    result, _ = pruned_run(tmp_path, endpoint, f'  init       = "{reference}"\n  policy     = fixed\n', policy)

    assert [e.text for e in result.library.experiences] == [HELPFUL_LESSON]
    assert result.library.demos == ()
    first = json.loads((result.run_dir / "steps/0001/prune.json").read_text())
    assert {u["id"]: (u["kind"], u["verdict"]) for u in first["utilities"]} == {"E1": ("lesson", "helps"), "D1": ("demo", "hurts")}
    assert [(o["op"], o["id"]) for o in first["operations"]] == [("delete_demo", "D1")]
    retired = next(d for d in result.library.demo_history if d.id == "D1")
    assert retired.provenance[-1].op == "delete" and retired.provenance[-1].rationale.startswith("pruned: leave-one-out utility")
