"""`repeats = N` and `grpo run --repeats N`: the learn N times with derived seeds, evaluated together.

In `worlds.date_world` both lessons lift the bare task's 0.25 to 0.95, so every repeat
should beat `none`; the question is how much the gain moves from one seed to another.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from support.endpoint import Endpoint
from support.eval_world import HELD_OUT, write_program
from support.worlds import FICKLE_LESSONS

from grpo_dsl.cli import main
from grpo_dsl.cli.console import schema_path
from grpo_dsl.clients.cache import cache_info
from grpo_dsl.core.files import read_json
from grpo_dsl.modules import load_module


def grpo(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def repeated_program(folder: Path, endpoint: Endpoint, learn: str = "  repeats    = 3\n", extra: str = "") -> Path:
    program = write_program(folder, endpoint)
    program.write_text(program.read_text().replace("  seed       = 3\n", f"  seed       = 3\n{learn}") + extra)
    endpoint.configure(script="support.worlds:date_world")
    return program


def run(program: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[Path, str]:
    status, out, err = grpo(capsys, "run", str(program), "--runs", str(program.parent / "runs"), *extra)
    assert status == 0, err
    return Path(out.splitlines()[0]), err


def evaluate(program: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, str]:
    status, out, err = grpo(capsys, "eval", str(program), "--runs", str(program.parent / "runs"), *extra)
    assert status == 0, err
    return out, err


def test_three_repeats_report_three_gains_and_a_pooled_interval(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = repeated_program(tmp_path, endpoint)
    group, err = run(program, capsys)

    assert [d.name for d in sorted((group / "repeats").iterdir())] == ["1", "2", "3"]
    assert [read_json(group / "repeats" / r / "plan.json")["learns"]["date_lessons"]["seed"] for r in "123"] == [3, 4, 5]
    assert read_json(group / "run.json")["seeds"] == [3, 4, 5]
    assert "repeat 3 completed" in err and "repeats completed" in err
    assert "emit `date_prompts` waits: the 3 repeats" in err and "no evaluation compared them yet" in err

    out, _ = evaluate(program, capsys, "--format", "json")
    document = json.loads(out)
    assert [lib["name"] for lib in document["libraries"]] == ["none", "date_lessons#1", "date_lessons#2", "date_lessons#3"]
    gains = [c["difference"] for c in document["comparisons"] if c["metric"] == "mean"]
    assert len(gains) == 3 and all(g > 0 for g in gains)
    [pooled] = [p for p in document["pooled"] if p["metric"] == "mean"]
    assert pooled["learn"] == "date_lessons" and pooled["baseline"] == "none"
    assert pooled["gains"] == gains
    assert pooled["difference"] == pytest.approx(sum(gains) / 3)
    assert 0 < pooled["low"] <= pooled["difference"] <= pooled["high"]
    assert (pooled["beat"], pooled["beat_beyond_noise"]) == (3, 3)

    text, _ = evaluate(program, capsys)
    assert re.search(r"^date_lessons \(3 repeats\) - none on mean: \+0\.\d+ \[\+0\.\d+, \+0\.\d+\] over repeats and questions", text, re.M), text
    assert "3 of 3 repeats score higher than none, 3 beyond noise at 95 %" in text

    status, _, err = grpo(capsys, "report", str(group / "repeats" / "2"), "-o", str(tmp_path / "r.html"))
    assert status == 0, err
    html = (tmp_path / "r.html").read_text()
    assert '<ul class="sentences" id="pooled-sentences">' in html
    assert re.search(r"date_lessons \(3 repeats\) − none on mean: \+0\.\d+ \(95% interval over repeats and questions", html)


def test_a_repeated_learn_run_again_costs_nothing(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str], _own_cache: Path
) -> None:
    program = repeated_program(tmp_path, endpoint)
    first, _ = run(program, capsys)
    paid = endpoint.stats()["total"]
    assert paid > 0

    second, _ = run(program, capsys)

    assert second != first
    assert endpoint.stats()["total"] == paid
    for r in "123":
        assert read_json(second / "repeats" / r / "library.json") == read_json(first / "repeats" / r / "library.json")
        usage = read_json(second / "repeats" / r / "usage.json")["total"]
        assert usage["calls"] == 0 and usage["cached_calls"] > 0
    info = cache_info(_own_cache)
    assert info is not None and {n.partition("/")[0] for n in dict(info.namespaces)} >= {"rollout", "learner"}, "the shared cache"
    assert not (tmp_path / "runs" / "date_lessons" / "cache").exists() and not (first / "repeats" / "1" / "cache").exists()


def test_the_gate_ranks_the_repeats_and_emit_publishes_the_best(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = repeated_program(tmp_path, endpoint, "  validate   = held\n")
    group, err = run(program, capsys, "--repeats", "2")

    ranking: dict[str, Any] = read_json(group / "run.json")["ranking"]
    assert ranking["by"] == "validate" and ranking["data"] == "held" and len(ranking["means"]) == 2
    best = ranking["best"]
    assert ranking["means"][best - 1] == max(ranking["means"])
    assert f"the best is repeat {best}" in err
    assert re.search(rf"emitted \S+/prompts/dates 1\.0\.0 from repeat {best} of 2, ranked best on `held` \(mean reward 0\.\d+\)", err), err
    module = load_module(tmp_path / "prompts" / "dates", "1.0.0")
    assert module.manifest["created_from"]["run"].endswith(f"repeats/{best}")
    ranks = [json.loads(line) for line in (group / "events.jsonl").read_text().splitlines()]
    calls = [e for e in ranks if e["event"] == "call"]
    assert {e["stage"] for e in calls} == {"rank"} and len(calls) == 2 * HELD_OUT * 4


def test_emit_from_a_repeated_run_takes_the_repeat_the_evaluation_ranks_best(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = repeated_program(tmp_path, endpoint)
    group, _ = run(program, capsys)
    out, _ = evaluate(program, capsys, "--format", "json")
    gains = {c["candidate"]: c["difference"] for c in json.loads(out)["comparisons"] if c["metric"] == "mean"}
    best = max(sorted(gains), key=lambda name: gains[name]).split("#")[1]

    status, text, err = grpo(capsys, "emit", str(program), "--emit", "date_prompts", "--from", str(group))

    assert status == 0, err
    assert f"from repeat {best} of 3, ranked best by the evaluation" in text
    assert load_module(tmp_path / "prompts" / "dates").manifest["created_from"]["run"].endswith(f"repeats/{best}")


def test_a_repeated_run_resumes_the_repeats_it_did_not_finish(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = repeated_program(tmp_path, endpoint)
    group, _ = run(program, capsys)
    library = read_json(group / "repeats" / "3" / "library.json")
    paid = endpoint.stats()["total"]
    shutil.rmtree(group / "repeats" / "3")

    status, out, err = grpo(capsys, "run", "--resume", str(group))

    assert status == 0, err
    assert out.splitlines()[0] == str(group)
    assert read_json(group / "repeats" / "3" / "library.json") == library
    assert endpoint.stats()["total"] == paid, "the repeat is answered from the shared cache"
    assert read_json(group / "run.json")["status"] == "completed"


def test_a_library_of_one_repeat_and_the_report_of_a_repeated_run(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = repeated_program(tmp_path, endpoint)
    group, _ = run(program, capsys)

    status, _, err = grpo(capsys, "ablate", str(program), "--runs", str(tmp_path / "runs"))
    assert status == 1 and "has 3 repeats (date_lessons#1, date_lessons#2, date_lessons#3)" in err
    status, out, err = grpo(capsys, "ablate", str(program), "--runs", str(tmp_path / "runs"), "--library", "date_lessons#2", "--format", "json")
    assert status == 0, err
    assert json.loads(out)["library"]["origin"] == str(group / "repeats" / "2")

    status, _, err = grpo(capsys, "report", str(group), "-o", str(tmp_path / "r.html"))
    assert status == 1 and "is a run with repeats: report one of them" in err
    status, _, err = grpo(capsys, "report", str(group / "repeats" / "2"), "-o", str(tmp_path / "r.html"))
    assert status == 0, err


def test_the_json_document_of_a_repeated_run_lists_each_repeat(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = repeated_program(tmp_path, endpoint)
    status, out, err = grpo(capsys, "run", str(program), "--runs", str(tmp_path / "runs"), "--repeats", "2", "--format", "json")
    assert status == 0, err
    document = json.loads(out)
    Draft202012Validator(json.loads(schema_path("run").read_text(encoding="utf-8"))).validate(document)
    group = Path(document["run_dir"])
    assert [r["run_dir"] for r in document["repeats"]] == [str(group / "repeats" / r) for r in "12"]
    assert all(r["status"] == "completed" and r["steps"] for r in document["repeats"])
    assert (document["status"], document["ranking"], document["emitted"]) == ("completed", None, [])
    assert "emit `date_prompts` waits" in err


def test_repeats_must_be_positive(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = repeated_program(tmp_path, endpoint)
    status, _, err = grpo(capsys, "run", str(program), "--runs", str(tmp_path / "runs"), "--repeats", "0")
    assert status == 2 and "--repeats must be at least 1" in err
    assert endpoint.stats()["total"] == 0


def test_repeats_that_learn_different_libraries_widen_the_pooled_interval(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In `fickle_world` each repeat settles on one lesson by chance: with seeds 0, 1 and 2
    the three repeats learn the three lessons, a useless one, a weak one and a strong one."""
    program = repeated_program(tmp_path, endpoint, "  repeats    = 3\n")
    program.write_text(program.read_text().replace("  seed       = 3\n", "  seed       = 0\n"))
    endpoint.configure(script="support.worlds:fickle_world")
    group, _ = run(program, capsys)
    lessons = [read_json(group / "repeats" / r / "library.json")["experiences"][0]["text"] for r in "123"]
    assert sorted(lessons) == sorted(FICKLE_LESSONS)

    out, _ = evaluate(program, capsys, "--format", "json")

    document = json.loads(out)
    comparisons = [c for c in document["comparisons"] if c["metric"] == "mean"]
    [pooled] = [p for p in document["pooled"] if p["metric"] == "mean"]
    assert len(set(pooled["gains"])) == 3 and min(pooled["gains"]) == 0.0
    assert pooled["beat"] == 2
    assert pooled["high"] - pooled["low"] > max(c["high"] - c["low"] for c in comparisons)
    assert pooled["low"] <= 0.0 < pooled["difference"], "one repeat in three learned nothing: the pooled gain is not sure"
