"""`grpo ablate` end to end against the test endpoint.

In `worlds.planted_world` the learner plants two lessons: `HELPFUL_LESSON`, with which
every answer is right, and `HARMFUL_LESSON`, with which half of the samples are wrong.
No library scores 0.25, the helpful lesson alone 1.0, the harmful one alone 0.125,
both 0.5: ablation must find the first helping and the second hurting.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint
from support.eval_world import HELD_OUT, date_module, learn, write_program
from support.worlds import HARMFUL_LESSON, HELPFUL_LESSON

from grpo_dsl.cli import main
from grpo_dsl.core.files import read_json
from grpo_dsl.evaluation.ablation import read_ablation
from grpo_dsl.library import Experience, Library, ProvenanceEntry
from grpo_dsl.modules import emit_from_run, load_module
from grpo_dsl.plan import load_plan


def grpo_ablate(program: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    status = main(["ablate", str(program), "--runs", str(program.parent / "runs"), *extra])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def ablated(program: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    status, out, err = grpo_ablate(program, capsys, "--format", "json", *extra)
    assert status == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


@pytest.fixture
def planted(endpoint: Endpoint, tmp_path: Path) -> Path:
    """A program whose `date_lessons` learned both planted lessons."""
    program = write_program(tmp_path, endpoint)
    result = learn(tmp_path, program, endpoint, script="support.worlds:planted_world")
    assert [e.text for e in result.library.experiences] == [HELPFUL_LESSON, HARMFUL_LESSON]
    endpoint.reset()
    return program


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in document["items"]}


def test_leave_one_out_finds_the_lesson_that_helps_and_the_one_that_hurts(
    planted: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    document = ablated(planted, capsys)

    items = by_id(document)
    assert items["E1"]["text"] == HELPFUL_LESSON and items["E2"]["text"] == HARMFUL_LESSON
    assert 0 < items["E1"]["low"] <= items["E1"]["estimate"] <= items["E1"]["high"]
    assert items["E1"]["verdict"] == "helps"
    assert items["E2"]["low"] <= items["E2"]["estimate"] <= items["E2"]["high"] < 0
    assert items["E2"]["verdict"] == "hurts"
    # the full library, and the library without each lesson
    assert [s["items"] for s in document["subsets"]] == [["E1", "E2"], ["E2"], ["E1"]]
    full, without_harm = (sum(s["scores"]) / HELD_OUT for s in (document["subsets"][0], document["subsets"][2]))
    assert items["E2"]["estimate"] == pytest.approx(full - without_harm)
    assert without_harm == 1.0, "the helpful lesson alone answers every sample right"
    assert endpoint.stats()["total"] == 3 * HELD_OUT * 4
    assert document["usage"]["by_stage"]["ablate"]["calls"] == 3 * HELD_OUT * 4
    assert read_ablation(Path(document["run_dir"])) == json.loads(json.dumps(document))


def test_the_table_says_which_lesson_helps_and_which_hurts(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = grpo_ablate(planted, capsys)

    assert status == 0
    assert re.search(r"ablation run: \S+/runs/date_eval/\S+", err)
    assert "ablate date_eval: date_lessons (2 lessons, 0 demos) on `held`, 12 questions x 4 samples, reward `correct`" in out
    assert re.search(rf"^E1\s+lesson\s+\+0\.\d+ \[\+0\.\d+, \+0\.\d+\]\s+\S+\s+helps\s+{re.escape(HELPFUL_LESSON)}$", out, re.M), out
    assert re.search(rf"^E2\s+lesson\s+-0\.\d+ \[-0\.\d+, -0\.\d+\]\s+\S+\s+hurts\s+{re.escape(HARMFUL_LESSON)}$", out, re.M), out
    assert "1 helps, 1 hurts, 0 without evidence either way at 95 %" in out


def test_an_ablation_run_twice_costs_nothing_the_second_time(
    planted: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    first = ablated(planted, capsys)
    paid = endpoint.stats()["total"]
    assert paid == first["usage"]["total"]["calls"] > 0

    second = ablated(planted, capsys)

    assert endpoint.stats()["total"] == paid
    assert second["run_dir"] != first["run_dir"]
    assert (second["usage"]["total"]["calls"], second["usage"]["total"]["cached_calls"]) == (0, paid)
    assert second["usage"]["total"]["usd"] == 0 < first["usage"]["total"]["usd"]
    assert second["items"] == first["items"] and second["subsets"] == first["subsets"]


def test_shapley_values_add_up_to_the_gain_of_the_whole_library(planted: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    planted.write_text(planted.read_text().replace("  compare = [none, date_lessons]", "  compare = [none, date_lessons]\n  ablate  = shapley"))
    loo = ablated(planted, capsys)
    assert loo["method"] == "shapley" and loo["exact"]

    document = loo
    items = by_id(document)
    assert len(document["subsets"]) == 4
    assert sum(i["estimate"] for i in items.values()) == pytest.approx(document["full"]["estimate"] - document["empty"]["estimate"])
    assert items["E1"]["verdict"] == "helps" and items["E2"]["verdict"] == "hurts"
    # the empty library is the bare task: what `none` scores in an evaluation
    assert document["empty"]["estimate"] < document["full"]["estimate"] < 1.0
    assert endpoint.stats()["total"] == 4 * HELD_OUT * 4


def test_a_module_version_records_its_ablation(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = sorted((planted.parent / "runs" / "date_lessons").iterdir())[-1]
    emitted = emit_from_run(load_plan(planted), "date_prompts", run_dir, base_dir=planted.parent)
    reference = f"prompts/dates@{emitted.version}"

    document = ablated(planted, capsys, "--library", reference)

    assert document["library"]["kind"] == "module" and document["library"]["origin"] == reference
    module = load_module(planted.parent / "prompts" / "dates", emitted.version)
    record = module.manifest["ablation"]["date_eval"]
    assert record["method"] == "loo" and record["questions"] == HELD_OUT and record["samples"] == 4
    assert [(i["id"], i["verdict"]) for i in record["items"]] == [("E1", "helps"), ("E2", "hurts")]
    assert record["items"][1]["estimate"] == by_id(document)["E2"]["estimate"]
    assert (planted.parent / "prompts" / "dates" / record["run"]).resolve() == Path(document["run_dir"]).resolve()
    readme = (planted.parent / "prompts" / "dates" / emitted.version / "README.md").read_text()
    assert "## Ablation: date_eval" in readme
    assert re.search(r"^\| E2 \| lesson \| -0\.\d+ \| \[-0\.\d+, -0\.\d+\] \| hurts \|$", readme, re.M), readme
    assert module.version == emitted.version, "recording an ablation makes no new version"


def test_demos_are_items_too(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two demos that each teach the format: leave-one-out sees neither (either is enough), Shapley splits the credit."""
    from support.learn_world import write_world

    write_world(tmp_path, endpoint.base_url, demos=2)
    program = write_program(tmp_path, endpoint)
    program.write_text(
        program.read_text().replace("  seed       = 3", "  seed       = 3\n  policy     = with_demos") + "\npolicy with_demos {\n  demos = 2\n}\n"
    )
    result = learn(tmp_path, program, endpoint, script="support.worlds:demo_world")
    assert [d.id for d in result.library.demos] == ["D1", "D2"] and not result.library.experiences

    loo = ablated(program, capsys)
    assert [(i["id"], i["kind"], i["estimate"], i["verdict"]) for i in loo["items"]] == [
        ("D1", "demo", 0.0, "no evidence"),
        ("D2", "demo", 0.0, "no evidence"),
    ]
    program.write_text(program.read_text().replace("  compare = [none, date_lessons]", "  compare = [none, date_lessons]\n  ablate  = shapley"))
    shapley = ablated(program, capsys)
    assert [i["verdict"] for i in shapley["items"]] == ["helps", "helps"]
    assert sum(i["estimate"] for i in shapley["items"]) == pytest.approx(shapley["full"]["estimate"] - shapley["empty"]["estimate"])


def test_what_cannot_be_ablated_is_a_clear_error(planted: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    for extra, message in (
        (("--library", "none"), "`none` is the empty library"),
        (("--library", "prompts/nowhere@^1"), "prompts/nowhere@^1"),
        (("--library", "date_lessons#2"), "has no repeats"),
        (("--evaluate", "nope"), "no evaluate block `nope`"),
    ):
        status, out, err = grpo_ablate(planted, capsys, *extra)
        assert status in (1, 2) and message in err, err
        assert out == "" and "Traceback" not in err
    planted.write_text(planted.read_text().replace("  compare = [none, date_lessons]", '  compare = [none, date_lessons, "prompts/x@1"]'))
    status, _, err = grpo_ablate(planted, capsys)
    assert status == 1 and "compares `date_lessons`, `prompts/x@1`: choose the library to ablate with --library" in err
    assert endpoint.stats()["total"] == 0
    assert not any(p.name != "cache" for p in (planted.parent / "runs" / "date_eval").iterdir()) if (planted.parent / "runs" / "date_eval").exists() else True


def test_a_library_without_items_is_a_clear_error(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = write_program(tmp_path, endpoint)
    # the troubled world's learner never proposes a lesson; its failures are let through
    program.write_text(program.read_text().replace("learn date_lessons {", "learn date_lessons {\n  max_failures = 1"))
    learn(tmp_path, program, endpoint, script="support.worlds:troubled_world")

    status, _, err = grpo_ablate(program, capsys)

    assert status == 1 and "holds no lesson and no demo: there is nothing to ablate" in err


def test_the_run_directory_holds_the_library_and_the_results(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = ablated(planted, capsys)
    run_dir = Path(document["run_dir"])

    info = read_json(run_dir / "run.json")
    assert (info["kind"], info["evaluate"], info["library"], info["method"], info["status"]) == ("ablate", "date_eval", "date_lessons", "loo", "completed")
    assert read_json(run_dir / "library.json")["name"] == "date_lessons"
    assert (planted.parent / "runs" / "date_eval" / "cache").is_dir()
    assert not (run_dir / "cache").exists()
    events = [json.loads(line)["event"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[0] == "ablation_started" and events[-1] == "ablation_finished"
    assert events.count("subset_scored") == 3


def one_lesson_module(folder: Path, lesson: str = HELPFUL_LESSON) -> str:
    """A module of the date task whose library holds `lesson`; its reference."""
    added = (ProvenanceEntry("add", 0),)
    return date_module(folder, Library(version=1, experiences=(Experience("E1", lesson, added, 0),), next_id=2), "one")


def _failing(endpoint: Endpoint, folder: Path, limit: str | None = None) -> tuple[Path, str]:
    """The evaluation world where every sample of half the held-out questions fails (HTTP 500,
    retried once), and a module of one lesson to ablate."""
    endpoint.configure(script="support.worlds:quarter_failing_world")
    program = write_program(folder, endpoint)
    program.write_text(program.read_text().replace("max_retries = 8", "max_retries = 1"))
    if limit is not None:
        program.write_text(program.read_text().replace("  compare = [none, date_lessons]", f"  compare = [none, date_lessons]\n  max_failures = {limit}"))
    return program, one_lesson_module(folder)


def test_an_ablation_with_too_many_failed_samples_fails_and_says_why(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program, reference = _failing(endpoint, tmp_path)

    status, out, err = grpo_ablate(program, capsys, "--library", reference)

    assert status == 1, err
    # it stops as soon as more than a tenth of the 96 planned samples have failed
    assert f"ablation failed: the ablation of `{reference}`: 10 of 96 samples failed" in err, err
    assert "more than max_failures = 10%): 10 x HTTP 500: scripted failure" in err and "Traceback" not in err
    assert out.startswith("ablate date_eval: failed")
    (run_dir,) = (p for p in (tmp_path / "runs" / "date_eval").iterdir() if p.name != "cache")
    assert read_json(run_dir / "run.json")["status"] == "failed" and not (run_dir / "ablation.json").exists()


def test_failed_samples_are_counted_and_left_out_never_scored_0(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program, reference = _failing(endpoint, tmp_path, limit="0.5")

    document = ablated(program, capsys, "--library", reference)

    # the full library and the empty one, 12 questions x 4 samples each; half the questions fail every sample
    assert document["failures"] == {"attempted": 96, "failed": 48, "causes": {"HTTP 500: scripted failure": 48}}
    assert document["questions"] == HELD_OUT // 2
    assert all(len(s["scores"]) == HELD_OUT // 2 for s in document["subsets"])
    full, empty = (next(s["scores"] for s in document["subsets"] if s["items"] == items) for items in (["E1"], []))
    [item] = document["items"]
    assert item["estimate"] == pytest.approx(sum(full) / len(full) - sum(empty) / len(empty))
    assert item["p_value"] is not None and (item["verdict"] == "no evidence") == (item["p_value"] >= 0.05)
    status, out, _ = grpo_ablate(program, capsys, "--library", reference)
    assert status == 0 and "48 of 96 samples failed, left out of the numbers: 48 x HTTP 500: scripted failure" in out


def _ablate_with_tools(endpoint: Endpoint, folder: Path) -> tuple[Path, str]:
    endpoint.configure(script="support.worlds:tool_world")
    program = write_program(folder, endpoint, compare="[none]", questions=3)
    program.write_text(program.read_text().replace("  max_tokens  = 20\n", "  max_tokens  = 20\n  tools       = [python]\n"))
    return program, one_lesson_module(folder)


@pytest.mark.usefixtures("bubblewrap")
def test_an_ablation_runs_the_python_tool_in_the_sandbox(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program, reference = _ablate_with_tools(endpoint, tmp_path)

    document = ablated(program, capsys, "--library", reference)

    # every answer asked the interpreter first (two calls), and what it printed is right
    assert all(score == 1.0 for subset in document["subsets"] for score in subset["scores"])
    assert endpoint.stats()["total"] == 2 * (2 * 3 * 4)


@pytest.mark.usefixtures("no_bubblewrap")
def test_an_ablation_without_bubblewrap_refuses_before_it_starts(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program, reference = _ablate_with_tools(endpoint, tmp_path)

    status, _, err = grpo_ablate(program, capsys, "--library", reference)

    assert status == 1 and "task `write_date` (model `world`)" in err and "`bwrap` is not installed" in err
    assert not (tmp_path / "runs").exists() and endpoint.stats()["total"] == 0
