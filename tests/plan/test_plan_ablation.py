"""The plan of pruning, repeats and ablation: their attributes, and `grpo plan --explain` counting their calls by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan.test_plan import explained_estimate, minimal, rows, write

from grpo_dsl.cli import main
from grpo_dsl.language.diagnostics import ProgramError
from grpo_dsl.plan import load_plan

PROGRAM = """
    grpo 1

    model m { name = "small" }
    dataset d { source = "data/train.jsonl" }
    dataset held { source = "data/held.jsonl" }
    task t {
      model  = m
      prompt = "{{ problem }}"
    }
    reward r = exact(strip(output), answer)
    policy small {
      capacity = 3
      demos    = 2
    }
    learn l {
      task       = t
      data       = d
      reward     = r
      group_size = 4
      batch_size = 5
      policy     = small
      validate   = held
      LEARN
    }
    evaluate e {
      task    = t
      data    = held
      reward  = r
      samples = 2
      compare = [none, l, "prompts/m@1"]
      EVALUATE
    }
"""


def program(folder: Path, learn: str = "", evaluate: str = "") -> Path:
    path = minimal(folder, PROGRAM.replace("LEARN", learn).replace("EVALUATE", evaluate))
    write(folder, {"data/held.jsonl": rows(6, "Held")})
    return path


def explained(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["plan", str(path), "--explain"]) == 0
    return capsys.readouterr().out


def test_the_new_attributes_have_their_defaults(tmp_path: Path) -> None:
    plan = load_plan(program(tmp_path))
    assert (plan.learn("l").prune, plan.learn("l").repeats) == ("none", 1)
    assert (plan.evaluate("e").ablate, plan.evaluate("e").subsets) == ("loo", 64)
    assert {"learns.l.prune", "learns.l.repeats", "evaluates.e.ablate", "evaluates.e.subsets"} <= set(plan.data["defaults_filled"])


def test_pruning_is_counted_per_step_on_the_validation_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explained(program(tmp_path, "prune = hurting"), capsys)
    learn = explained_estimate(out, "learn l")
    steps = 2  # ceil(10 / 5)
    items = 3 + 2  # capacity and demos
    assert learn["prune"] == (True, items * 4 * 6 * steps, items * 4 * 6 * steps)
    assert learn["validate"] == (True, 2 * 4 * 6 * steps, 2 * 4 * 6 * steps)
    assert "prune" not in explained_estimate(explained(program(tmp_path), capsys), "learn l")
    assert "delete the items that hurt beyond noise" in out


def test_repeats_multiply_the_learn_and_rank_on_the_validation_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    single = explained_estimate(explained(program(tmp_path), capsys), "learn l")
    out = explained(program(tmp_path, "repeats = 3\n  seed = 5"), capsys)
    repeated = explained_estimate(out, "learn l")
    for stage, (bound, calls, most) in single.items():
        if stage != "total":
            assert repeated[stage] == (bound, 3 * calls, 3 * most), stage
    assert repeated["rank"] == (False, 3 * 4 * 6, 3 * 4 * 6)
    assert "3 repeats with seeds 5 .. 7; their last libraries are ranked on `held`" in out
    # the evaluation compares none, each of the 3 repeats of l, and the module
    assert explained_estimate(out, "evaluate e")["evaluate"] == (False, 6 * 2 * 5, 6 * 2 * 5)


def test_the_ablation_estimate_counts_leave_one_out_and_shapley_subsets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loo = explained(program(tmp_path), capsys)
    block = next(b for b in loo.split("\n\n") if b.startswith("ablate e"))
    assert "leave-one-out" in block
    # l holds at most 3 lessons and 2 demos; the module is counted at the default capacity, 48
    assert "<= 72 calls to `m` for l: 6 libraries (the full one and each without one of 5 items) x 6 questions x 2 samples" in block
    assert "<= 588 calls to `m` for prompts/m@1: 49 libraries" in block
    assert explained_estimate(loo, "ablate e")["total"] == (True, 72 + 588, 72 + 588)

    shapley = explained(program(tmp_path, evaluate="ablate = shapley\n  subsets = 16"), capsys)
    block = next(b for b in shapley.split("\n\n") if b.startswith("ablate e"))
    assert "Shapley values, at most 16 subsets" in block
    # 2^5 = 32 subsets do not fit in 16: the budget; so for the module
    assert explained_estimate(shapley, "ablate e")["total"] == (True, 16 * 6 * 2 * 2, 16 * 6 * 2 * 2)
    exact = explained(program(tmp_path, evaluate="ablate = shapley"), capsys)
    assert "<= 384 calls to `m` for l: 32 subsets of 5 items (Shapley)" in exact


def test_an_evaluate_of_none_alone_has_nothing_to_ablate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = program(tmp_path)
    path.write_text(path.read_text().replace('compare = [none, l, "prompts/m@1"]', "compare = [none]"))
    out = explained(path, capsys)
    assert "ablate e: `compare` lists no library but `none`: `grpo ablate` needs `--library`" in out


def test_prune_without_validate_is_an_error(tmp_path: Path) -> None:
    path = program(tmp_path, "prune = hurting")
    path.write_text(path.read_text().replace("  validate   = held\n", ""))
    with pytest.raises(ProgramError) as raised:
        load_plan(path)
    assert [d.code for d in raised.value.diagnostics] == ["E0506"]


def _expected_calls(estimate: dict[str, object]) -> dict[str, int]:
    stages = estimate["stages"]
    assert isinstance(stages, list)
    return {str(s["stage"]): int(s["expected"]["calls"]) for s in stages}


def test_the_expected_cost_counts_every_repeat_its_ranking_pruning_and_the_ablation(tmp_path: Path) -> None:
    single = load_plan(program(tmp_path)).data
    repeated = load_plan(program(tmp_path, "repeats = 3")).data
    pruned = load_plan(program(tmp_path, "prune = hurting")).data

    one, three = _expected_calls(single["learns"]["l"]["estimate"]), _expected_calls(repeated["learns"]["l"]["estimate"])
    for stage, calls in one.items():
        assert abs(three[stage] - 3 * calls) <= 3, stage  # each repeat rounds its own count
    assert three["rank"] == 3 * 4 * 6, "each repeat's last library, G answers on each held-out question"
    assert _expected_calls(pruned["learns"]["l"]["estimate"])["prune"] > 0
    # the evaluation asks none, the module and each of the 3 repeats of l
    evaluated = _expected_calls(repeated["evaluates"]["e"]["estimate"])["evaluate"]
    assert evaluated == 5 * 6 * 2 == 3 * _expected_calls(single["evaluates"]["e"]["estimate"])["evaluate"] - 6 * 2 * 4
    ablation = single["evaluates"]["e"]["ablation_estimate"]["total"]
    assert 0 < ablation["expected"]["calls"] <= ablation["calls"]
