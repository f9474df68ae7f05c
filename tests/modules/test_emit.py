"""Prompt modules: the layout, versioning, loading, rendering, refusals and the history commands."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from grpo_dsl import load_module
from grpo_dsl.cli import main
from grpo_dsl.library import (
    ApplyContext,
    Library,
    Operation,
    PolicySpec,
    apply,
    marked_word_diff,
)
from grpo_dsl.modules import (
    ModelMismatchWarning,
    ModelRef,
    ModuleError,
    ModuleSpec,
    blame,
    diff_modules,
    emit_module,
    format_diff,
    module_log,
    parse_reference,
)
from grpo_dsl.modules.loader import validate_document
from grpo_dsl.prompts.messages import (
    TemplateRenderError,
    compose_templates,
    render_messages,
)

SPEC = ModuleSpec(
    name="dates",
    system="You write dates.",
    prompt="What is day {{ day }} of month {{ month }}?",
    placement="system",
    model=ModelRef("world", "world-model"),
    learner=ModelRef("teacher", "teacher-model"),
    temperature=0.7,
    formats=("json", "jinja", "markdown", "prompty"),
)


def step(library: Library, number: int, *operations: Operation) -> Library:
    updated, report = apply(library, operations, PolicySpec(), ApplyContext(number, (f"{number}:q1",)))
    assert not report.rejected, report.rejected
    return updated


@pytest.fixture
def two_lessons() -> Library:
    return step(Library.empty(), 1, Operation.add("Write dates as YYYY-MM-DD.", "it worked"), Operation.add("Pad with zeros."))


def test_emit_writes_the_layout_and_renders_what_the_run_renders(tmp_path: Path, two_lessons: Library) -> None:
    result = emit_module(two_lessons, SPEC, "prompts/dates", base_dir=tmp_path)
    assert (result.version, result.created) == ("1.0.0", True)
    folder = tmp_path / "prompts" / "dates" / "1.0.0"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "experiences.json", "library.md", "module.json", "module.prompty", "system.j2", "user.j2",
    ]
    manifest = json.loads((folder / "module.json").read_text())
    assert manifest["schema"] == "grpo-module/1"
    assert manifest["model"] == {"block": "world", "name": "world-model"}
    assert manifest["fields"] == ["day", "month"]
    assert manifest["parent"] is None and manifest["change"]["bump"] == "initial"
    templates = compose_templates(SPEC.system, SPEC.prompt, "system")
    assert (folder / "system.j2").read_text() == templates.system
    assert (folder / "user.j2").read_text() == templates.user
    assert "[E1] Write dates as YYYY-MM-DD." not in (folder / "system.j2").read_text()
    readme = (folder / "README.md").read_text()
    assert "# dates 1.0.0" in readme and "Pad with zeros." in readme and 'load_module("prompts/dates"' in readme

    module = load_module(tmp_path / "prompts/dates")
    fields = {"day": 3, "month": 7, "answer": "ignored"}
    assert module.render(**fields) == render_messages(templates, fields, two_lessons.prompt_entries())
    assert [e.id for e in module.experiences] == ["E1", "E2"]
    assert module.experiences[0].provenance[0].rationale == "it worked"


def test_evaluation_results_are_recorded(tmp_path: Path, two_lessons: Library) -> None:
    record = {
        "library": "m@1.0.0", "run": "../runs/held/1", "reward": "correct", "confidence": 0.95, "questions": 10,
        "samples": 1, "metrics": {"pass@1": {"estimate": 0.9, "low": 0.7, "high": 1.0}}, "baseline": None, "comparisons": [],
    }
    emit_module(two_lessons, replace(SPEC, evaluation={"held": record}), "m", base_dir=tmp_path)
    module = load_module(tmp_path / "m")
    assert module.evaluation == {"held": record}
    readme = (tmp_path / "m" / "1.0.0" / "README.md").read_text()
    assert '## Evaluation\n\n```json\n{\n  "held": {\n    "baseline": null,\n    "comparisons": [],\n    "confidence": 0.95,' in readme
    assert '"metrics": {\n      "pass@1": {\n        "estimate": 0.9,\n        "high": 1.0,\n        "low": 0.7\n      }\n    },' in readme

    with pytest.raises(ModuleError, match=r"at \$\.evaluation\.held: 'questions' is a required property"):
        emit_module(two_lessons, replace(SPEC, evaluation={"held": {k: v for k, v in record.items() if k != "questions"}}), "n", base_dir=tmp_path)


def test_the_same_library_twice_makes_no_new_version(tmp_path: Path, two_lessons: Library) -> None:
    emit_module(two_lessons, SPEC, "m", base_dir=tmp_path)
    index_before = (tmp_path / "m" / "index.json").read_bytes()
    with_more_uses = two_lessons.record_uses(["E1", "E1"])
    again = emit_module(with_more_uses, replace(SPEC, temperature=0.2), "m", base_dir=tmp_path)
    assert (again.version, again.created) == ("1.0.0", False)
    assert (tmp_path / "m" / "index.json").read_bytes() == index_before


@pytest.mark.parametrize(
    ("operations", "expected", "bump"),
    [
        ((Operation.add("Check the year."),), "1.1.0", "minor"),
        ((Operation.add("Check the year."), Operation.delete("E1")), "1.1.0", "minor"),
        ((Operation.modify("E1", "Write dates as DD.MM.YYYY."),), "1.0.1", "patch"),
        ((Operation.delete("E2"),), "1.0.1", "patch"),
        ((Operation.modify("E1", "Dates: YYYY-MM-DD."), Operation.delete("E2")), "1.0.1", "patch"),
    ],
)
def test_the_version_follows_the_change_to_the_experiences(
    tmp_path: Path, two_lessons: Library, operations: tuple[Operation, ...], expected: str, bump: str
) -> None:
    emit_module(two_lessons, SPEC, "m", base_dir=tmp_path)
    result = emit_module(step(two_lessons, 2, *operations), SPEC, "m", base_dir=tmp_path)
    assert result.version == expected
    assert result.change is not None and result.change.bump == bump
    manifest = json.loads((tmp_path / "m" / expected / "module.json").read_text())
    assert manifest["parent"] == "1.0.0" and manifest["change"]["bump"] == bump


@pytest.mark.parametrize(
    "changed",
    [
        replace(SPEC, prompt="Day {{ day }}, month {{ month }}: which date?"),
        replace(SPEC, placement="user"),
        replace(SPEC, model=ModelRef("other", "other-model")),
    ],
    ids=["prompt", "placement", "model"],
)
def test_a_new_template_or_model_is_a_major_version(tmp_path: Path, two_lessons: Library, changed: ModuleSpec) -> None:
    emit_module(two_lessons, SPEC, "m", base_dir=tmp_path)
    emit_module(step(two_lessons, 2, Operation.add("Check the year.")), SPEC, "m", base_dir=tmp_path)
    result = emit_module(step(two_lessons, 2, Operation.delete("E1")), changed, "m", base_dir=tmp_path)
    assert result.version == "2.0.0"
    assert [e.version for e in module_log(tmp_path / "m")] == ["1.0.0", "1.1.0", "2.0.0"]


def test_a_forced_version_must_be_higher_than_the_last(tmp_path: Path, two_lessons: Library) -> None:
    assert emit_module(two_lessons, SPEC, "m", base_dir=tmp_path, version="3.1.0").version == "3.1.0"
    grown = step(two_lessons, 2, Operation.add("Check the year."))
    with pytest.raises(ModuleError, match=r"the forced version 3\.0\.9 is not higher than the latest version 3\.1\.0"):
        emit_module(grown, SPEC, "m", base_dir=tmp_path, version="3.0.9")
    assert emit_module(grown, SPEC, "m", base_dir=tmp_path).version == "3.2.0"
    with pytest.raises(ModuleError, match="the forced version 'v4' is not a version number like 1.2.0"):
        emit_module(grown, SPEC, "new", base_dir=tmp_path, version="v4")
    assert not (tmp_path / "new").exists()


def test_versions_are_selected_by_number_or_range(tmp_path: Path, two_lessons: Library) -> None:
    library = two_lessons
    for number, operation in enumerate([Operation.add("A."), Operation.modify("E1", "B."), Operation.add("C.")], start=2):
        emit_module(library, SPEC, "m", base_dir=tmp_path)
        library = step(library, number, operation)
    emit_module(library, replace(SPEC, system="New system."), "m", base_dir=tmp_path)
    assert [e.version for e in module_log(tmp_path / "m")] == ["1.0.0", "1.1.0", "1.1.1", "2.0.0"]
    assert load_module(tmp_path / "m").version == "2.0.0"
    assert load_module(tmp_path / "m", "^1.0").version == "1.1.1"
    assert load_module(tmp_path / "m", "~1.1").version == "1.1.1"
    assert load_module(tmp_path / "m", "1.1.0").version == "1.1.0"
    with pytest.raises(ModuleError, match=r"no version matches \^3; the versions are 1\.0\.0, 1\.1\.0, 1\.1\.1, 2\.0\.0"):
        load_module(tmp_path / "m", "^3")
    with pytest.raises(ModuleError, match="there is no version 1.2.0"):
        load_module(tmp_path / "m", "1.2.0")
    with pytest.raises(ModuleError, match="neither a version like 1.2.0 nor a range"):
        load_module(tmp_path / "m", "latest!")


def test_loading_for_another_model_warns(tmp_path: Path, two_lessons: Library) -> None:
    emit_module(two_lessons, SPEC, "m", base_dir=tmp_path)
    with pytest.warns(ModelMismatchWarning, match="learned with model 'world-model', not 'gpt-4o'"):
        load_module(tmp_path / "m", model="gpt-4o")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_module(tmp_path / "m", model="world-model").model == "world-model"
        assert load_module(tmp_path / "m", model="world").version == "1.0.0"


def test_a_missing_field_is_named(tmp_path: Path, two_lessons: Library) -> None:
    emit_module(two_lessons, SPEC, "m", base_dir=tmp_path)
    module = load_module(tmp_path / "m")
    with pytest.raises(TemplateRenderError, match=r"dates@1\.0\.0 needs the field `month` \(it renders with day, month\)"):
        module.render(day=3)


def test_templates_render_sandboxed(tmp_path: Path) -> None:
    spec = replace(SPEC, prompt="{{ day.__class__.__mro__ }}")
    emit_module(Library.empty(), spec, "m", base_dir=tmp_path)
    with pytest.raises(TemplateRenderError, match="unsafe"):
        load_module(tmp_path / "m").render(day=1)


@pytest.mark.parametrize(
    ("prompt", "stopped"),
    [
        ("{{ 'x' * day }}", "would make a value of more than 2000000 characters"),
        ("{% for i in range(day) %}{% for j in range(day) %}.{% endfor %}{% endfor %}", "loops ran more than 1000000 times"),
    ],
)
def test_a_render_past_its_budget_is_stopped(tmp_path: Path, prompt: str, stopped: str) -> None:
    emit_module(Library.empty(), replace(SPEC, prompt=prompt), "m", base_dir=tmp_path)
    module = load_module(tmp_path / "m")
    with pytest.raises(TemplateRenderError, match=stopped):
        module.render(day=10**10 if "*" in prompt else 100_000)
    assert module.render(day=3)[-1] == {"role": "user", "content": "xxx" if "*" in prompt else "." * 9}


# ---------------------------------------------------------------------- refusals


@pytest.fixture
def emitted(tmp_path: Path, two_lessons: Library) -> Path:
    emit_module(two_lessons, SPEC, "m", base_dir=tmp_path)
    return tmp_path / "m"


def _edit_json(path: Path, change: object) -> None:
    document = json.loads(path.read_text())
    change(document)  # type: ignore[operator]
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def test_an_edited_experience_is_refused(emitted: Path) -> None:
    _edit_json(emitted / "1.0.0" / "experiences.json", lambda d: d["experiences"][0].update(text="Write dates as you like."))
    with pytest.raises(ModuleError) as caught:
        load_module(emitted)
    message = str(caught.value)
    assert str(emitted / "1.0.0" / "experiences.json") in message
    assert f"{emitted / '1.0.0' / 'module.json'} at $.files['experiences.json']" in message


def test_an_edited_manifest_is_refused(emitted: Path) -> None:
    _edit_json(emitted / "1.0.0" / "module.json", lambda d: d.update(temperature=1.5))
    with pytest.raises(ModuleError) as caught:
        load_module(emitted)
    assert str(caught.value).startswith(f"{emitted / '1.0.0' / 'module.json'}: the file was changed after it was emitted")
    assert f"{emitted / 'index.json'} at $.versions[0].manifest_sha256" in str(caught.value)


def test_a_manifest_off_its_schema_is_refused_with_the_json_path(emitted: Path) -> None:
    _edit_json(emitted / "1.0.0" / "module.json", lambda d: d["created_from"].update(step="three"))
    with pytest.raises(ModuleError, match=r"module\.json: at \$\.created_from\.step: 'three' is not of type 'integer', 'null'"):
        load_module(emitted)


def test_an_index_off_its_schema_is_refused_with_the_json_path(emitted: Path) -> None:
    _edit_json(emitted / "index.json", lambda d: d["versions"][0].update(version="one"))
    with pytest.raises(ModuleError, match=r"index\.json: at \$\.versions\[0\]\.version: 'one' does not match"):
        load_module(emitted)


@pytest.mark.parametrize("name", ["1.0.0/module.json", "1.0.0/experiences.json", "index.json"])
def test_a_truncated_file_is_refused(emitted: Path, name: str) -> None:
    file = emitted / name
    text = file.read_text()
    file.write_text(text[: len(text) // 2])
    with pytest.raises(ModuleError, match=r"not valid JSON \(truncated or damaged\?\)") as caught:
        load_module(emitted)
    assert str(caught.value).startswith(f"{file}: ")


def test_a_deleted_template_file_is_refused(emitted: Path) -> None:
    (emitted / "1.0.0" / "user.j2").unlink()
    with pytest.raises(ModuleError, match=r"user\.j2: the file is missing"):
        load_module(emitted)


def test_paths_outside_the_program_folder_need_force(tmp_path: Path, two_lessons: Library) -> None:
    program = tmp_path / "program"
    program.mkdir()
    with pytest.raises(ModuleError, match=r"the module path \.\./elsewhere is outside the program's folder .*--force"):
        emit_module(two_lessons, SPEC, "../elsewhere", base_dir=program)
    assert not (tmp_path / "elsewhere").exists()
    assert emit_module(two_lessons, SPEC, "../elsewhere", base_dir=program, force=True).created
    assert load_module(tmp_path / "elsewhere").version == "1.0.0"


def test_existing_folders_that_are_not_modules_need_force(tmp_path: Path, two_lessons: Library) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(ModuleError, match=r"notes exists and is not a prompt module \(it has no index\.json\)"):
        emit_module(two_lessons, SPEC, "notes", base_dir=tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModuleError, match="file exists and is not a folder"):
        emit_module(two_lessons, SPEC, "file", base_dir=tmp_path, force=True)
    assert emit_module(two_lessons, SPEC, "notes", base_dir=tmp_path, force=True).version == "1.0.0"
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert emit_module(two_lessons, SPEC, "empty", base_dir=tmp_path).created


def test_a_module_keeps_its_name(emitted: Path, two_lessons: Library) -> None:
    with pytest.raises(ModuleError, match="holds the module `dates`, not `times`"):
        emit_module(two_lessons, replace(SPEC, name="times"), emitted)


def test_unknown_formats_are_refused(tmp_path: Path, two_lessons: Library) -> None:
    with pytest.raises(ModuleError, match="unknown module format `yaml`"):
        emit_module(two_lessons, replace(SPEC, formats=("json", "yaml")), "m", base_dir=tmp_path)


def test_json_is_always_written_and_other_formats_only_when_asked(tmp_path: Path, two_lessons: Library) -> None:
    emit_module(two_lessons, replace(SPEC, formats=("markdown",)), "m", base_dir=tmp_path)
    names = sorted(p.name for p in (tmp_path / "m" / "1.0.0").iterdir())
    assert names == ["README.md", "experiences.json", "library.md", "module.json"]
    manifest = json.loads((tmp_path / "m" / "1.0.0" / "module.json").read_text())
    assert manifest["formats"] == ["json", "markdown"]
    assert load_module(tmp_path / "m").render(day=1, month=2)[1]["content"] == "What is day 1 of month 2?"


def test_written_documents_match_the_shipped_schemas(emitted: Path) -> None:
    validate_document(json.loads((emitted / "index.json").read_text()), "index", emitted / "index.json")
    manifest = emitted / "1.0.0" / "module.json"
    validate_document(json.loads(manifest.read_text()), "module", manifest)
    with pytest.raises(ModuleError, match=r"at \$: 'files' is a required property"):
        document = json.loads(manifest.read_text())
        del document["files"]
        validate_document(document, "module", manifest)


# ---------------------------------------------------------------------- history


def test_word_diff_marks_removed_and_added_words() -> None:
    assert marked_word_diff("Check the units first.", "Check the units twice first.") == "Check the units {+twice+} first."
    assert marked_word_diff("Draw a figure.", "Sketch a figure.") == "[-Draw-] {+Sketch+} a figure."


def test_references_split_path_and_version() -> None:
    assert parse_reference("prompts/math@^1.2") == (Path("prompts/math"), "^1.2")
    assert parse_reference("prompts/math") == (Path("prompts/math"), None)


def test_diff_and_blame_follow_an_experience(tmp_path: Path, two_lessons: Library) -> None:
    emit_module(two_lessons, SPEC, "m", base_dir=tmp_path)
    later = step(two_lessons, 2, Operation.modify("E1", "Write dates as YYYY-MM-DD, always.", "sharper"), Operation.delete("E2"))
    later = step(later, 3, Operation.add("Check the year."))
    emit_module(later, SPEC, "m", base_dir=tmp_path)
    diff = diff_modules(load_module(tmp_path / "m", "1.0.0"), load_module(tmp_path / "m", "1.1.0"))
    assert [e["id"] for e in diff.experiences.added] == ["E3"]
    assert [e["id"] for e in diff.experiences.removed] == ["E2"]
    assert [m.id for m in diff.experiences.modified] == ["E1"]
    assert "~ [E1] Write dates as [-YYYY-MM-DD.-] {+YYYY-MM-DD, always.+}" in format_diff(diff)

    result = blame(load_module(tmp_path / "m"), "E1")
    assert [(e.entry.op, e.entry.step, e.text) for e in result.events] == [
        ("add", 1, "Write dates as YYYY-MM-DD."),
        ("modify", 2, "Write dates as YYYY-MM-DD, always."),
    ]
    assert result.run is None and result.live
    retired = blame(load_module(tmp_path / "m"), "E2")
    assert not retired.live and [e.entry.op for e in retired.events] == ["add", "delete"]
    with pytest.raises(ModuleError, match=r"dates@1\.1\.0 has no experience E9 \(its experiences: E1, E3\)"):
        blame(load_module(tmp_path / "m"), "E9")


def test_the_module_commands(tmp_path: Path, two_lessons: Library, capsys: pytest.CaptureFixture[str]) -> None:
    emit_module(two_lessons, SPEC, "m", base_dir=tmp_path)
    emit_module(step(two_lessons, 2, Operation.modify("E2", "Pad days and months with zeros.")), SPEC, "m", base_dir=tmp_path)
    module = tmp_path / "m"

    assert main(["module", "show", f"{module}@1.0.0"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("dates 1.0.0 (first version)\nmodel: world-model; learner: teacher-model; temperature: 0.7")
    assert "  [E2] Pad with zeros." in shown

    assert main(["module", "log", str(module)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["1.0.1", "patch"], ["1.0.0", "initial"]]

    assert main(["module", "diff", f"{module}@1.0.0", f"{module}@1.0.1"]) == 0
    assert capsys.readouterr().out == "dates 1.0.0 -> dates 1.0.1\n~ [E2] Pad {+days and months+} with zeros.\n"

    assert main(["module", "blame", str(module), "E2"]) == 0
    out = capsys.readouterr().out
    assert "step 1: add by groups 1:q1\n  text: Pad with zeros." in out
    assert "step 2: modify by groups 2:q1\n  text: Pad {+days and months+} with zeros." in out

    assert main(["module", "show", str(tmp_path / "nothing")]) == 2
    assert "is not a prompt module" in capsys.readouterr().err
    (module / "1.0.1" / "README.md").write_text("edited")
    assert main(["module", "show", str(module)]) == 1
    assert "README.md: the file was changed after it was emitted" in capsys.readouterr().err
