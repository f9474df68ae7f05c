"""`grpo eval` end to end against the scripted date world, and the learning loop's validation gate.

In `worlds.date_world` a prompt carrying both lessons of `worlds.LESSONS` is answered
right with chance 0.95 and a bare prompt with chance 0.25, so a learned library
must beat `none` clearly; a library with nothing in it must not.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from statistics import fmean
from typing import Any

import pytest
from support.endpoint import Endpoint
from support.eval_world import HELD_OUT, learn, write_held_out, write_program
from support.learn_world import write_world
from support.worlds import LESSONS

from grpo_dsl.cli import main
from grpo_dsl.clients.accounting import Budget
from grpo_dsl.evaluation.evaluate import start_evaluation
from grpo_dsl.learning.run import RunResult, start_run
from grpo_dsl.modules import emit_from_run, load_module
from grpo_dsl.plan import load_plan


def grpo_eval(program: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    status = main(["eval", str(program), "--runs", str(program.parent / "runs"), *extra])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def eval_run_dir(stderr: str) -> Path:
    match = re.search(r"evaluation run: (\S+)", stderr)
    assert match, stderr
    return Path(match.group(1))


@pytest.fixture
def learned(endpoint: Endpoint, tmp_path: Path) -> Path:
    """A program whose `date_lessons` has been run: its library holds both lessons."""
    program = write_program(tmp_path, endpoint)
    result = learn(tmp_path, program, endpoint)
    assert [e.text for e in result.library.experiences] == list(LESSONS)
    endpoint.reset()
    return program


NUMBER = r"[+-]?\d+\.\d+"


def test_eval_prints_the_difference_with_its_interval(learned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = grpo_eval(learned, capsys)

    assert status == 0
    match = re.search(rf"date_lessons - none on mean: ({NUMBER}) \[({NUMBER}), ({NUMBER})\], p = (\S+)", out)
    assert match, out
    difference, low, high = (float(g) for g in match.groups()[:3])
    assert 0 < low <= difference <= high
    assert difference > 0.4
    assert "date_lessons scores higher than none at 95 % (the interval excludes zero)" in out
    assert "the sample is small (12 questions, under 20)" in out
    assert "includes zero" not in out
    assert re.search(rf"^none\s+{NUMBER} \[{NUMBER}, {NUMBER}\]", out, re.MULTILINE), out
    assert "date_lessons: 2 experiences from" in out


def test_json_output_has_every_metric_with_its_interval(learned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = grpo_eval(learned, capsys, "--format", "json")

    assert status == 0
    document = json.loads(out)
    assert document["status"] == "completed"
    assert [lib["name"] for lib in document["libraries"]] == ["none", "date_lessons"]
    for library in document["libraries"]:
        assert library["questions"] == HELD_OUT and library["samples"] == 4
        assert set(library["metrics"]) == {"mean", "pass@1", "pass@4", "tool_calls", "tokens", "cost"}
        for interval in library["metrics"].values():
            assert interval["low"] <= interval["estimate"] <= interval["high"]
        assert library["metrics"]["pass@1"]["estimate"] == pytest.approx(library["metrics"]["mean"]["estimate"])
        assert library["metrics"]["pass@4"]["estimate"] >= library["metrics"]["pass@1"]["estimate"]
        assert library["metrics"]["cost"]["estimate"] > 0
    assert [(c["metric"], c["candidate"], c["baseline"]) for c in document["comparisons"]] == [
        ("mean", "date_lessons", "none"),
        ("pass@1", "date_lessons", "none"),
        ("pass@4", "date_lessons", "none"),
    ]
    mean = document["comparisons"][0]
    none, lessons = (lib["metrics"]["mean"]["estimate"] for lib in document["libraries"])
    assert mean["difference"] == pytest.approx(lessons - none)
    assert 0 <= mean["p_value"] < 0.01
    assert mean["better"] + mean["worse"] + mean["ties"] == HELD_OUT
    run_dir = Path(document["run_dir"])
    assert json.loads((run_dir / "evaluation.json").read_text())["comparisons"] == document["comparisons"]


def test_results_jsonl_holds_every_sample_with_paired_seeds(learned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = grpo_eval(learned, capsys, "--format", "json")
    assert status == 0
    document = json.loads(out)
    run_dir = eval_run_dir(err)

    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 * HELD_OUT * 4
    assert Counter((r["library"], r["question"], r["sample"]) for r in records).most_common(1)[0][1] == 1
    assert {r["sample"] for r in records} == {0, 1, 2, 3}
    assert {"library", "question", "sample", "reward", "tokens", "tool_calls", "cost", "error", "output"} <= set(records[0])
    held = {json.loads(line)["id"]: json.loads(line)["answer"] for line in (learned.parent / "held.jsonl").read_text().splitlines()}
    for record in records:
        assert record["reward"] == float(record["output"].strip() == held[record["question"]])
    for library in document["libraries"]:
        by_question: dict[str, list[float]] = defaultdict(list)
        for record in records:
            if record["library"] == library["name"]:
                by_question[record["question"]].append(record["reward"])
        assert library["metrics"]["mean"]["estimate"] == pytest.approx(fmean(fmean(v) for v in by_question.values()))

    seeds: dict[str, set[int]] = defaultdict(set)
    prompts: dict[str, set[str]] = defaultdict(set)
    for entry in (run_dir / "cache").rglob("*.json"):
        request = json.loads(entry.read_text())["request"]
        seeds[request["sample_key"]].add(request["seed"])
        prompts[request["sample_key"]].add(json.dumps(request["messages"]))
    assert len(seeds) == HELD_OUT * 4
    assert all(len(s) == 1 for s in seeds.values()), "every library gets the same seed for a sample"
    assert all(len(p) == 2 for p in prompts.values()), "the libraries differ only in the prompt"


def test_a_rerun_replays_from_the_cache_for_free(learned: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    status, first, err = grpo_eval(learned, capsys, "--format", "json")
    assert status == 0
    paid = endpoint.stats()["total"]
    assert paid == 2 * HELD_OUT * 4

    status, again, _ = grpo_eval(learned, capsys, "--format", "json", "--resume", str(eval_run_dir(err)))

    assert status == 0
    assert endpoint.stats()["total"] == paid
    before, after = json.loads(first), json.loads(again)
    assert after["libraries"] == before["libraries"]
    assert after["comparisons"] == before["comparisons"]
    assert after["usage"]["total"]["calls"] == paid
    assert after["usage"]["total"]["cached_calls"] == paid


def test_an_interval_that_includes_zero_is_said_in_words(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = write_program(tmp_path, endpoint)
    program.write_text(program.read_text().replace("  seed       = 3\n", "  seed       = 3\n  max_failures = 0.5\n"))
    result = learn(tmp_path, program, endpoint, script="support.worlds:troubled_world")
    assert len(result.library.experiences) == 0
    endpoint.configure(script="support.worlds:date_world")

    status, out, _ = grpo_eval(program, capsys)

    assert status == 0
    assert re.search(r"date_lessons - none on mean: \+0\.000 \[\+0\.000, \+0\.000\], p = 1 ", out), out
    assert out.count("no evidence of a difference at 95 % (the interval includes zero)") == 3
    assert "excludes zero" not in out
    assert endpoint.stats()["total"] == HELD_OUT * 4, "the same prompts are not paid for twice"


def test_a_module_version_is_evaluated_like_the_run_it_came_from(learned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = load_plan(learned)
    run_dir = sorted((learned.parent / "runs" / "date_lessons").iterdir())[-1]
    emitted = emit_from_run(plan, "date_prompts", run_dir, base_dir=learned.parent)
    learned.write_text(learned.read_text().replace("[none, date_lessons]", f'[none, date_lessons, "prompts/dates@{emitted.version}"]'))

    status, out, _ = grpo_eval(learned, capsys, "--format", "json")

    assert status == 0
    document = json.loads(out)
    by_name = {lib["name"]: lib for lib in document["libraries"]}
    module = by_name[f"prompts/dates@{emitted.version}"]
    assert module["kind"] == "module" and module["origin"] == f"prompts/dates@{emitted.version}"
    assert module["metrics"] == by_name["date_lessons"]["metrics"]
    assert module["per_question"] == by_name["date_lessons"]["per_question"]
    assert load_module(learned.parent / "prompts" / "dates", emitted.version).version == emitted.version


def test_a_learn_without_a_run_is_a_clear_error(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = write_program(tmp_path, endpoint)

    status, out, err = grpo_eval(program, capsys)

    assert status == 1
    assert out == ""
    assert "`date_lessons` has no run under" in err and "grpo run FILE --learn date_lessons" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs" / "date_eval").exists()
    assert endpoint.stats()["total"] == 0


def test_a_missing_module_is_a_clear_error(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = write_program(tmp_path, endpoint, compare='[none, "prompts/nowhere@^1"]')

    status, _, err = grpo_eval(program, capsys)

    assert status == 1
    assert "prompts/nowhere@^1" in err and "Traceback" not in err


def test_a_budget_stops_the_evaluation_cleanly(learned: Path, endpoint: Endpoint) -> None:
    plan = load_plan(learned)
    result = start_evaluation(
        plan, "date_eval", base_dir=learned.parent, runs_root=learned.parent / "runs", budget=Budget(calls=10)
    )

    assert result.status == "stopped"
    assert "calls" in (result.message or "")
    assert result.libraries == ()
    assert endpoint.stats()["total"] <= 10
    assert not (result.run_dir / "evaluation.json").exists()
    assert json.loads((result.run_dir / "run.json").read_text())["status"] == "stopped"


# ---------------------------------------------------------------------- the gate


VALIDATE = '\ndataset held {\n  source = "held.jsonl"\n}\n'


def gated_run(folder: Path, endpoint: Endpoint, script: str) -> tuple[RunResult, list[dict[str, Any]]]:
    program = write_world(folder, endpoint.base_url)
    text = program.read_text().replace("  seed       = 3\n", "  seed       = 3\n  validate   = held\n")
    program.write_text(text + VALIDATE)
    write_held_out(folder)
    endpoint.configure(script=script)
    result = start_run(load_plan(program), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
    assert result.status == "completed"
    events = [json.loads(line) for line in (result.run_dir / "events.jsonl").read_text().splitlines()]
    return result, events


def test_the_gate_accepts_a_library_that_helps(endpoint: Endpoint, tmp_path: Path) -> None:
    result, events = gated_run(tmp_path, endpoint, "support.worlds:date_world")

    gates = [e for e in events if e["event"] == "gate"]
    assert [g["decision"] for g in gates] == ["accepted", "accepted"]
    assert all(g["result"]["new_mean"] > g["result"]["old_mean"] for g in gates)
    assert all(g["result"]["low"] > 0 for g in gates)
    assert [e.text for e in result.library.experiences] == list(LESSONS)
    assert [s.gate for s in result.steps] == ["accepted", "accepted", None]
    validations = Counter(e["sample_key"].split("/")[1] for e in events if e["event"] == "call" and e["stage"] == "validate")
    assert set(validations) == {f"h{i}" for i in range(HELD_OUT)}


def test_the_gate_rejects_a_library_that_hurts(endpoint: Endpoint, tmp_path: Path) -> None:
    result, events = gated_run(tmp_path, endpoint, "support.worlds:misleading_world")

    gates = [e for e in events if e["event"] == "gate"]
    assert len(gates) == len(result.steps) == 3
    assert [g["decision"] for g in gates] == ["rejected"] * 3
    assert all(g["result"]["high"] < 0 for g in gates)
    assert result.library.experiences == ()
    for step in result.steps:
        assert step.gate == "rejected"
        report = json.loads((result.run_dir / f"steps/{step.step:04d}/report.json").read_text())
        assert report["gate"] == "rejected"
        assert json.loads((result.run_dir / f"steps/{step.step:04d}/library.json").read_text())["experiences"] == []


def test_the_block_must_exist_and_be_chosen(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = write_program(tmp_path, endpoint)

    status, _, err = grpo_eval(program, capsys, "--evaluate", "nope")
    assert status == 2 and "no evaluate block `nope`; the program has: date_eval" in err

    program.write_text(program.read_text() + "\nevaluate other {\n  task = write_date\n  data = held\n  reward = correct\n}\n")
    status, _, err = grpo_eval(program, capsys)
    assert status == 2 and "choose one with --evaluate (date_eval, other)" in err
    assert endpoint.stats()["total"] == 0


def _eval_with_tools(endpoint: Endpoint, folder: Path) -> Path:
    endpoint.configure(script="support.worlds:tool_world")
    program = write_program(folder, endpoint, compare="[none]", questions=3)
    program.write_text(program.read_text().replace("  max_tokens  = 20\n", "  max_tokens  = 20\n  tools       = [python]\n"))
    return program


@pytest.mark.usefixtures("bubblewrap")
def test_eval_runs_the_python_tool_in_the_sandbox(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = grpo_eval(_eval_with_tools(endpoint, tmp_path), capsys)
    assert status == 0, err
    records = [json.loads(line) for line in (eval_run_dir(err) / "results.jsonl").read_text().splitlines()]
    assert len(records) == 3 * 4
    assert all(r["tool_calls"] == 1 and r["reward"] == 1 for r in records)


@pytest.mark.usefixtures("no_bubblewrap")
def test_eval_without_bubblewrap_refuses_before_it_starts(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = grpo_eval(_eval_with_tools(endpoint, tmp_path), capsys)
    assert status == 1
    assert "grpo: error: task `write_date` (model `world`)" in err and "`bwrap` is not installed" in err
    assert not (tmp_path / "runs").exists() and endpoint.stats()["total"] == 0
