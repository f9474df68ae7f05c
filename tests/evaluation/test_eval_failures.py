"""Evaluations that never lie: failed samples are shown and left out, too many fail the
evaluation, and a learn's library comes from its newest completed run, named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.endpoint import Endpoint
from support.eval_world import learn, write_program

from grpo_dsl.cli import main
from grpo_dsl.learning.run import start_run
from grpo_dsl.plan import load_plan


def grpo(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _program(folder: Path, endpoint: Endpoint) -> Path:
    """The evaluation world, whose failing calls are retried once."""
    program = write_program(folder, endpoint)
    program.write_text(program.read_text().replace("max_retries = 8", "max_retries = 1"))
    return program


@pytest.fixture
def learned(endpoint: Endpoint, tmp_path: Path) -> Path:
    program = _program(tmp_path, endpoint)
    learn(tmp_path, program, endpoint)
    endpoint.configure(script="support.worlds:quarter_failing_world")
    return program


def test_an_evaluation_with_too_many_failures_shows_them_and_exits_1(learned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = grpo(capsys, "eval", learned, "--runs", learned.parent / "runs")

    assert status == 1
    assert "evaluation failed: library `none`: 24 of 48 samples failed (50%, more than max_failures = 10%): 24 x HTTP 500: scripted failure" in err
    header = out.splitlines()[2]
    assert header.split()[-1] == "failed"
    assert re.search(r"^none .* 24/48$", out, re.MULTILINE) and re.search(r"^date_lessons .* 24/48$", out, re.MULTILINE)
    assert "none: 24 failed samples, left out of the numbers: 24 x HTTP 500: scripted failure" in out
    (run_dir,) = (learned.parent / "runs" / "date_eval").iterdir()
    document = json.loads((run_dir / "evaluation.json").read_text())
    assert document["status"] == "failed"
    assert [lib["failures"]["failed"] for lib in document["libraries"]] == [24, 24]
    assert all(lib["questions"] == 6 for lib in document["libraries"]), "the failed questions are left out"
    module_records = list((learned.parent / "prompts").glob("*/*/module.json")) if (learned.parent / "prompts").exists() else []
    assert module_records == []


def test_failures_within_the_limit_are_shown_in_the_table_the_json_and_the_report(learned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    learned.write_text(learned.read_text().replace("  metrics = [mean, pass@1, pass@4]\n", "  metrics = [mean, pass@1, pass@4]\n  max_failures = 0.5\n"))

    status, out, _ = grpo(capsys, "eval", learned, "--runs", learned.parent / "runs", "--format", "json")

    assert status == 0
    document = json.loads(out)
    assert document["status"] == "completed"
    assert {lib["failures"]["failed"] for lib in document["libraries"]} == {24}
    run_dir = Path(document["run_dir"])
    (learn_dir,) = (learned.parent / "runs" / "date_lessons").iterdir()
    report = learned.parent / "report.html"
    assert main(["report", str(learn_dir), "-o", str(report), "--eval", str(run_dir)]) == 0
    html = report.read_text()
    assert "Failed samples" in html and "24 of 48" in html


def test_a_learn_is_compared_through_its_newest_completed_run(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = _program(tmp_path, endpoint)
    completed = learn(tmp_path, program, endpoint)
    endpoint.configure(script="support.worlds:half_failing_world")
    failed = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)
    assert failed.status == "failed" and failed.run_dir.name > completed.run_dir.name
    endpoint.configure(script="support.worlds:date_world")

    status, out, err = grpo(capsys, "eval", program, "--runs", tmp_path / "runs", "--format", "json")

    assert status == 0
    assert f"`date_lessons`: the library of its newest completed run, {completed.run_dir}" in err
    assert f"newer runs passed over: {failed.run_dir.name} (failed)" in err
    (library,) = [lib for lib in json.loads(out)["libraries"] if lib["name"] == "date_lessons"]
    assert library["origin"] == str(completed.run_dir) and library["experiences"] == 2


def test_a_learn_without_a_completed_run_cannot_be_compared(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = _program(tmp_path, endpoint)
    endpoint.configure(script="support.worlds:half_failing_world")
    failed = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)
    assert failed.status == "failed"

    status, _, err = grpo(capsys, "eval", program, "--runs", tmp_path / "runs")

    assert status == 1
    assert f"`date_lessons` has no completed run under {tmp_path / 'runs'} (its newest: {failed.run_dir.name} (failed))" in err
