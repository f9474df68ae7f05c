"""Evaluation results written into prompt modules, and model names read from the environment.

An `evaluate` that compares a module version records that version's results in its
`module.json` (under the evaluate's name) and README.md; the content sha256 stays,
so no version is created, and index.json names the new manifest. A record is
staged, committed by replacing index.json, then renamed into place: a crash at any
file system call leaves a loadable module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from support.crash import run_killed
from support.endpoint import Endpoint
from support.eval_world import HELD_OUT, learn, write_program
from support.learn_world import write_world

from grpo_dsl import load_module
from grpo_dsl.cli import main
from grpo_dsl.core.files import sha256_bytes
from grpo_dsl.learning.run import start_run
from grpo_dsl.library import ApplyContext, Library, Operation, PolicySpec, apply
from grpo_dsl.modules import (
    ModelRef,
    ModuleError,
    ModuleSpec,
    emit_from_run,
    emit_module,
    evaluation_record,
    module_log,
    record_evaluation,
)
from grpo_dsl.modules.loader import STAGED_PREFIX, validate_document
from grpo_dsl.plan import load_plan

MODULE = "prompts/dates"


def index_entry(module: Path, version: str = "1.0.0") -> dict[str, Any]:
    versions = json.loads((module / "index.json").read_text())["versions"]
    return next(v for v in versions if v["version"] == version)


def eval_json(program: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    status = main(["eval", str(program), "--runs", str(program.parent / "runs"), "--format", "json", *extra])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    document: dict[str, Any] = json.loads(captured.out)
    return document


@pytest.fixture
def evaluated_module(endpoint: Endpoint, tmp_path: Path) -> tuple[Path, Path]:
    """A learned program whose evaluate compares `none`, the learn and the emitted module 1.0.0."""
    program = write_program(tmp_path, endpoint)
    result = learn(tmp_path, program, endpoint)
    emitted = emit_from_run(load_plan(program), "date_prompts", result.run_dir, base_dir=tmp_path)
    assert emitted.version == "1.0.0"
    program.write_text(program.read_text().replace("[none, date_lessons]", f'[none, date_lessons, "{MODULE}@^1"]'))
    endpoint.reset()
    return program, result.run_dir


def test_an_evaluation_writes_its_results_into_the_module_version(
    evaluated_module: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    program, learn_run = evaluated_module
    module_dir = program.parent / MODULE
    before = load_module(module_dir)
    entry_before = index_entry(module_dir)
    assert before.evaluation is None

    document = eval_json(program, capsys)

    module = load_module(module_dir)
    assert (module.version, module.sha256) == ("1.0.0", before.sha256)
    assert [e.version for e in module_log(module_dir)] == ["1.0.0"]
    assert set(module.evaluation or {}) == {"date_eval"}
    record = (module.evaluation or {})["date_eval"]
    by_name = {library["name"]: library for library in document["libraries"]}
    ours = by_name[f"{MODULE}@^1"]
    assert record["library"] == f"{MODULE}@^1"
    assert (record["questions"], record["samples"], record["reward"]) == (HELD_OUT, 4, "correct")
    assert record["metrics"] == ours["metrics"]
    assert set(record["metrics"]) == {"mean", "pass@1", "pass@4", "tool_calls", "tokens", "cost"}
    assert record["baseline"] == "none"
    assert [c["metric"] for c in record["comparisons"]] == ["mean", "pass@1", "pass@4"]
    mean = record["comparisons"][0]
    assert mean["difference"] == pytest.approx(ours["metrics"]["mean"]["estimate"] - by_name["none"]["metrics"]["mean"]["estimate"])
    assert mean["low"] > 0 and mean["better"] + mean["worse"] + mean["ties"] == HELD_OUT
    assert not Path(record["run"]).is_absolute()
    assert (module_dir / record["run"]).resolve() == Path(document["run_dir"]).resolve()
    assert (module_dir / record["run"] / "evaluation.json").is_file()

    validate_document(module.manifest, "module", module_dir / "1.0.0" / "module.json")
    entry = index_entry(module_dir)
    assert entry["manifest_sha256"] == sha256_bytes((module_dir / "1.0.0" / "module.json").read_bytes())
    assert entry["manifest_sha256"] != entry_before["manifest_sha256"]
    assert {k: v for k, v in entry.items() if k != "manifest_sha256"} == {
        k: v for k, v in entry_before.items() if k != "manifest_sha256"
    }
    readme = (module_dir / "1.0.0" / "README.md").read_text()
    assert '"date_eval": {' in readme and f'"estimate": {ours["metrics"]["mean"]["estimate"]}' in readme
    assert sorted(os.listdir(module_dir / "1.0.0")) == ["README.md", "experiences.json", "module.json"]
    assert module.render(day=1, month=2, year=2003) == before.render(day=1, month=2, year=2003)

    again = emit_from_run(load_plan(program), "date_prompts", learn_run, base_dir=program.parent)
    assert (again.version, again.created) == ("1.0.0", False)

    assert main(["module", "show", str(module_dir)]) == 0
    shown = capsys.readouterr().out
    assert f"evaluation date_eval: {HELD_OUT} questions x 4 samples, reward correct, 95 % intervals; run {record['run']}" in shown
    assert f"mean {ours['metrics']['mean']['estimate']:.3g} [" in shown
    assert f"minus none: mean {mean['difference']:+.3g} [" in shown


def test_evaluating_again_overwrites_the_record_deterministically(
    evaluated_module: tuple[Path, Path], endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    program, _ = evaluated_module
    module_dir = program.parent / MODULE
    first = eval_json(program, capsys)
    recorded_first = dict((load_module(module_dir).evaluation or {})["date_eval"])

    second = eval_json(program, capsys)

    assert second["run_dir"] != first["run_dir"]
    module = load_module(module_dir)
    assert set(module.evaluation or {}) == {"date_eval"}
    recorded = (module.evaluation or {})["date_eval"]
    assert (module_dir / recorded["run"]).resolve() == Path(second["run_dir"]).resolve()
    assert {k: v for k, v in recorded.items() if k != "run"} == {k: v for k, v in recorded_first.items() if k != "run"}
    assert [e.version for e in module_log(module_dir)] == ["1.0.0"]

    manifest_bytes = (module_dir / "1.0.0" / "module.json").read_bytes()
    index_bytes = (module_dir / "index.json").read_bytes()
    calls = endpoint.stats()["total"]
    eval_json(program, capsys, "--resume", second["run_dir"])
    assert endpoint.stats()["total"] == calls
    assert (module_dir / "1.0.0" / "module.json").read_bytes() == manifest_bytes
    assert (module_dir / "index.json").read_bytes() == index_bytes


def test_a_module_that_cannot_take_the_results_is_a_warning(
    evaluated_module: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    program, _ = evaluated_module
    module_dir = program.parent / MODULE
    manifest = module_dir / "1.0.0" / "module.json"
    status = main(["eval", str(program), "--runs", str(program.parent / "runs")])
    captured = capsys.readouterr()
    assert status == 0
    run_dir = next(line.split(": ", 1)[1] for line in captured.err.splitlines() if line.startswith("evaluation run: "))
    manifest.write_text(manifest.read_text().replace('"experiences": 2', '"experiences": 3'))

    status = main(["eval", "--resume", run_dir])
    captured = capsys.readouterr()

    assert status == 0
    assert f"warning: the results were not recorded in {MODULE}@1.0.0: " in captured.err
    assert "the file was changed after it was emitted" in captured.err and "Traceback" not in captured.err
    events = [json.loads(line) for line in (Path(run_dir) / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if e["event"].startswith("module_")] == ["module_recorded", "module_not_recorded"]


# ---------------------------------------------------------------------- without an endpoint


SPEC = ModuleSpec("dates", "You write dates.", "Day {{ day }}?", "system", ModelRef("world", "world-model"))
LIBRARY, _ = apply(Library.empty(), [Operation.add("Use YYYY-MM-DD.")], PolicySpec(), ApplyContext(1, ("1:q1",)))


def document(tmp_path: Path, compare: list[str], estimate: float = 0.5) -> dict[str, Any]:
    """A grpo-evaluation/1 document comparing `compare`, the first being the baseline."""
    interval = {"estimate": estimate, "low": estimate - 0.1, "high": estimate + 0.1}
    libraries = [
        {"name": name, "kind": "module", "questions": 5, "samples": 2, "metrics": {"mean": interval}, "per_question": []}
        for name in compare
    ]
    comparisons = [
        {"metric": "mean", "candidate": name, "baseline": compare[0], "difference": 0.2, "low": 0.1, "high": 0.3,
         "p_value": 0.02, "better": 3, "worse": 0, "ties": 2}
        for name in compare[1:]
    ]
    return {"evaluate": "held", "run_dir": str(tmp_path / "runs" / "held" / "1"), "reward": "correct",
            "confidence": 0.95, "libraries": libraries, "comparisons": comparisons}


def test_the_record_of_a_baseline_has_no_comparison(tmp_path: Path) -> None:
    evaluation = document(tmp_path, ["m@1.0.0", "none"])

    as_baseline = evaluation_record(evaluation, "m@1.0.0", tmp_path / "m")
    candidate = evaluation_record(evaluation, "none", tmp_path / "m")

    assert (as_baseline["baseline"], as_baseline["comparisons"]) == (None, [])
    assert candidate["baseline"] == "m@1.0.0"
    assert candidate["comparisons"] == [
        {"metric": "mean", "difference": 0.2, "low": 0.1, "high": 0.3, "p_value": 0.02, "better": 3, "worse": 0, "ties": 2}
    ]
    assert as_baseline["run"] == "../runs/held/1"
    with pytest.raises(ModuleError, match="has no library 'other'"):
        evaluation_record(evaluation, "other", tmp_path / "m")


def test_records_of_several_evaluates_live_side_by_side(tmp_path: Path) -> None:
    emit_module(LIBRARY, SPEC, "m", base_dir=tmp_path)
    content = load_module(tmp_path / "m").sha256
    first = evaluation_record(document(tmp_path, ["none", "m@1.0.0"]), "m@1.0.0", tmp_path / "m")
    other = {**first, "library": "m@^1"}

    record_evaluation("m", "1.0.0", "held", first, base_dir=tmp_path)
    record_evaluation("m", "1.0.0", "hard", other, base_dir=tmp_path)
    replaced = {**first, "questions": 6}
    record_evaluation("m", "1.0.0", "held", replaced, base_dir=tmp_path)

    module = load_module(tmp_path / "m")
    assert module.evaluation == {"hard": other, "held": replaced}
    assert module.sha256 == content and [e.version for e in module_log(tmp_path / "m")] == ["1.0.0"]
    readme = (tmp_path / "m" / "1.0.0" / "README.md").read_text()
    assert 'grpo_dsl.load_module("m", version="1.0.0")' in readme and '"questions": 6' in readme


def test_a_record_is_refused_when_it_does_not_fit(tmp_path: Path) -> None:
    emit_module(LIBRARY, SPEC, "m", base_dir=tmp_path)
    record = evaluation_record(document(tmp_path, ["none", "m@1.0.0"]), "m@1.0.0", tmp_path / "m")
    files = {p.name: p.read_bytes() for p in (tmp_path / "m" / "1.0.0").iterdir()}
    index = (tmp_path / "m" / "index.json").read_bytes()

    with pytest.raises(ModuleError, match=r"at \$\.evaluation\.held\.samples: 0 is less than the minimum of 1"):
        record_evaluation(tmp_path / "m", "1.0.0", "held", {**record, "samples": 0})
    with pytest.raises(ModuleError, match="there is no version 2.0.0"):
        record_evaluation(tmp_path / "m", "2.0.0", "held", record)
    with pytest.raises(ModuleError, match="is not a prompt module"):
        record_evaluation(tmp_path / "nowhere", "1.0.0", "held", record)

    assert {p.name: p.read_bytes() for p in (tmp_path / "m" / "1.0.0").iterdir()} == files
    assert (tmp_path / "m" / "index.json").read_bytes() == index


def test_a_recorded_module_is_still_checked_for_changes(tmp_path: Path) -> None:
    emit_module(LIBRARY, SPEC, "m", base_dir=tmp_path)
    record = evaluation_record(document(tmp_path, ["none", "m@1.0.0"]), "m@1.0.0", tmp_path / "m")
    record_evaluation(tmp_path / "m", "1.0.0", "held", record)
    readme = tmp_path / "m" / "1.0.0" / "README.md"
    readme.write_text(readme.read_text() + "\nedited\n")

    with pytest.raises(ModuleError, match=r"README\.md: the file was changed after it was emitted"):
        load_module(tmp_path / "m")


def test_a_killed_record_leaves_a_loadable_module(tmp_path: Path) -> None:
    base = tmp_path / "base"
    emit_module(LIBRARY, SPEC, "m", base_dir=base)
    old = evaluation_record(document(tmp_path, ["none", "m@1.0.0"], 0.4), "m@1.0.0", base / "m")
    new = evaluation_record(document(tmp_path, ["none", "m@1.0.0"], 0.7), "m@1.0.0", base / "m")
    record_evaluation("m", "1.0.0", "held", old, base_dir=base)
    messages = load_module(base / "m").render(day=3)
    counting = tmp_path / "counting"
    shutil.copytree(base, counting)
    status, total = run_killed(lambda: record_evaluation("m", "1.0.0", "held", new, base_dir=counting), 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (load_module(counting / "m").evaluation or {})["held"] == new and total > 5
    recorded_manifest = (counting / "m" / "1.0.0" / "module.json").read_bytes()

    seen = set()
    for kill_at in range(1, total + 1):
        folder = tmp_path / f"killed-{kill_at}"
        shutil.copytree(base, folder)
        status, _ = run_killed(lambda: record_evaluation("m", "1.0.0", "held", new, base_dir=folder), kill_at)
        assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL, kill_at
        staged = (folder / "m" / "1.0.0" / f"{STAGED_PREFIX}module.json").exists()
        loaded = load_module(folder / "m")
        recorded = (loaded.evaluation or {})["held"]
        assert recorded in (old, new), kill_at
        seen.add((recorded == new, staged))
        assert loaded.render(day=3) == messages and loaded.sha256 == load_module(base / "m").sha256
        assert [e.version for e in module_log(folder / "m")] == ["1.0.0"]

        record_evaluation("m", "1.0.0", "held", new, base_dir=folder)
        assert (load_module(folder / "m").evaluation or {})["held"] == new
        assert sorted(os.listdir(folder / "m" / "1.0.0")) == sorted(os.listdir(base / "m" / "1.0.0")), kill_at
        assert (folder / "m" / "1.0.0" / "module.json").read_bytes() == recorded_manifest
    assert {(False, False), (False, True), (True, True), (True, False)} <= seen, "old, staged, committed-staged, done"


# ---------------------------------------------------------------------- model names from the environment


def learn_with_model_name(folder: Path, endpoint: Endpoint, name: str) -> tuple[Path, Path]:
    """Run `date_lessons` of a program whose model name is `name` (a `.grpo` expression); its program and run."""
    endpoint.configure(script="support.worlds:date_world")
    folder.mkdir(exist_ok=True)
    program = write_world(folder, endpoint.base_url)
    program.write_text(
        program.read_text().replace('name        = "world"', f"name        = {name}")
        + '\nemit date_prompts {\n  library = date_lessons\n  path    = "prompts/dates"\n}\n'
    )
    result = start_run(load_plan(program), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
    assert result.status == "completed"
    return program, result.run_dir


def test_a_model_name_from_the_environment_is_resolved_when_emitting(
    endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRPO_TEST_MODEL", raising=False)
    program, run_dir = learn_with_model_name(tmp_path, endpoint, 'env("GRPO_TEST_MODEL", "world")')
    plan = load_plan(program)
    assert plan.data["models"]["world"]["name"] == {"env": "GRPO_TEST_MODEL", "default": "world"}

    first = emit_from_run(plan, "date_prompts", run_dir, base_dir=tmp_path)
    module = load_module(tmp_path / "prompts/dates", first.version)
    assert (module.model, module.manifest["model"]) == ("world", {"block": "world", "name": "world"})
    assert 'for the model\n`world` (declared as `world`)' in (tmp_path / "prompts/dates/1.0.0/README.md").read_text()

    monkeypatch.setenv("GRPO_TEST_MODEL", "world-large")
    second = emit_from_run(plan, "date_prompts", run_dir, base_dir=tmp_path)
    assert (second.version, second.created) == ("2.0.0", True)
    assert second.change is not None and second.change.model
    assert load_module(tmp_path / "prompts/dates").model == "world-large"


def test_an_unset_model_name_without_default_is_a_clear_error(
    endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRPO_TEST_MODEL", "world")
    program, run_dir = learn_with_model_name(tmp_path, endpoint, 'env("GRPO_TEST_MODEL")')
    monkeypatch.delenv("GRPO_TEST_MODEL")

    with pytest.raises(ModuleError, match="comes from the environment variable GRPO_TEST_MODEL, which is not set and has no default"):
        emit_from_run(load_plan(program), "date_prompts", run_dir, base_dir=tmp_path)
    assert not (tmp_path / "prompts" / "dates").exists()
