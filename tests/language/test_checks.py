"""The attribute table, dataset reading, workspace loading and the checks.

Golden programs (tests/language/test_golden.py) cover every diagnostic as the user sees it;
these tests cover the pieces one by one, including programs built in Python.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpo_dsl.cli import main
from grpo_dsl.core.datasets import DatasetError, read_rows, read_table, row_id
from grpo_dsl.language import ast
from grpo_dsl.language.attributes import (
    SPECS,
    AttributeSpec,
    attribute_names,
    defaults,
    lookup,
    required,
)
from grpo_dsl.language.checks import CHECKS, check, check_path
from grpo_dsl.language.diagnostics import CODES
from grpo_dsl.language.parser import parse
from grpo_dsl.language.workspace import build_workspace, load_workspace

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"


def codes(workspace_or_path: object) -> list[str]:
    if isinstance(workspace_or_path, str):
        return [d.code for d in check_path(workspace_or_path).diagnostics]
    assert not isinstance(workspace_or_path, Path)
    return [d.code for d in check(workspace_or_path)]  # type: ignore[arg-type]


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


VALID = """grpo 1
model m { name = "x" }
dataset qa { source = "qa.jsonl" }
task t {
  model  = m
  prompt = "{{ question }}"
}
reward correct = exact(output, answer)
learn l {
  task       = t
  data       = qa
  reward     = correct
  group_size = 4
}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "qa.jsonl").write_text('{"question": "1 + 1?", "answer": "2"}\n', encoding="utf-8")
    return tmp_path


# ---------------------------------------------------------------- attribute table


class TestAttributeTable:
    def test_the_documented_defaults(self) -> None:
        assert {k: defaults("learn")[k] for k in ("batch_size", "epochs", "temperature", "ground_truth", "summarize", "seed")} == {
            "batch_size": 8,
            "epochs": 1,
            "temperature": 0.7,
            "ground_truth": True,
            "summarize": True,
            "seed": 0,
        }
        policy = defaults("policy")
        assert (policy["ops"], policy["max_per_group"], policy["capacity"], policy["max_words"], policy["on_full"]) == (
            ["add", "modify", "delete"],
            2,
            48,
            32,
            "reject",
        )
        assert (defaults("evaluate")["samples"], defaults("evaluate")["metrics"], defaults("evaluate")["compare"]) == (1, ["mean"], ["none"])
        assert defaults("emit")["formats"] == ["json"]
        assert (defaults("model")["concurrency"], defaults("model")["timeout"], defaults("model")["max_retries"]) == (8, 600.0, 6)

    def test_required_attributes_follow_the_language_reference(self) -> None:
        assert required("model") == ("name",)
        assert required("dataset") == ("source",)
        assert set(required("task")) == {"model", "prompt"}
        assert set(required("learn")) == {"task", "data", "reward", "group_size"}
        assert set(required("evaluate")) == {"task", "data"}
        assert set(required("emit")) == {"library", "path"}
        assert required("policy") == ()

    def test_nested_blocks_are_looked_up_with_a_dot(self) -> None:
        assert attribute_names("model.price") == ("input", "output")
        assert attribute_names("learn.budget") == ("usd", "tokens", "calls")
        assert lookup("learn", "nope") is None and lookup("model.price", "nope") is None

    def test_defaults_are_fresh_copies(self) -> None:
        first = defaults("policy")
        assert isinstance(first["ops"], list)
        first["ops"].append("keep")
        assert defaults("policy")["ops"] == ["add", "modify", "delete"]

    @pytest.mark.parametrize("kind", [k for k in SPECS if k != "reward"])
    def test_every_default_passes_the_checks(self, kind: str, folder: Path) -> None:
        """Writing every default explicitly gives a program with no attribute problem."""
        lines = [f"{spec.name} = {_source(spec)}" for spec in SPECS[kind] if not spec.required and spec.default is not None]
        lines += [f"{spec.name} = {_required_value(spec)}" for spec in SPECS[kind] if spec.required]
        text = f"grpo 1\n{kind} x {{\n" + "\n".join(lines) + "\n}\n"
        path = write(folder, "defaults.grpo", text)
        problems = [d for d in check_path(path).diagnostics if d.code.startswith("E03")]
        assert problems == []


def _source(spec: AttributeSpec) -> str:
    value = spec.default
    if spec.kind == "block":
        assert isinstance(value, dict)
        return "{ " + "  ".join(f"{k} = {v}" for k, v in value.items() if v is not None) + " }"
    if spec.kind == "mapping":
        return "{ }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, str) and spec.kind == "enum":
        return value
    return json.dumps(value)


def _required_value(spec: AttributeSpec) -> str:
    return {"ref": "somewhere", "integer": "2"}.get(spec.kind, '"text"')


# ---------------------------------------------------------------------- datasets


class TestDatasets:
    def test_three_formats(self, tmp_path: Path) -> None:
        write(tmp_path, "a.jsonl", '{"id": 1, "q": "x"}\n\n{"q": "y", "a": "z"}\n')
        write(tmp_path, "a.json", '[{"q": "x"}, {"a": "y"}]')
        write(tmp_path, "a.csv", "q,a\nx,1\n")
        assert read_table(tmp_path / "a.jsonl").columns == ("id", "q", "a")
        assert read_rows(tmp_path / "a.jsonl") == [{"id": 1, "q": "x"}, {"q": "y", "a": "z"}]
        assert read_table(tmp_path / "a.json").columns == ("q", "a")
        assert read_table(tmp_path / "a.csv").columns == ("q", "a")
        assert read_rows(tmp_path / "a.csv") == [{"q": "x", "a": "1"}]

    @pytest.mark.parametrize(
        ("name", "text", "message", "line"),
        [
            ("bad.jsonl", '{"q": 1}\n{"q": 2\n', "invalid JSON", 2),
            ("list.jsonl", '{"q": 1}\n[1, 2]\n', "expected a JSON object, found a list", 2),
            ("bad.json", '{"q": 1}', "expected a JSON list of objects, found an object", None),
            ("items.json", '[{"q": 1}, 3]', "item 1 of the list is a number", None),
            ("short.csv", "q,a\n1,2\n3\n", "expected 2 columns", 3),
            ("dup.csv", "q,q\n1,2\n", "duplicate column `q`", 1),
            ("empty.csv", "", "no header row", 1),
            ("data.txt", "x", "unsupported dataset format `.txt`", None),
        ],
    )
    def test_malformed_files_name_the_file_and_line(self, tmp_path: Path, name: str, text: str, message: str, line: int | None) -> None:
        write(tmp_path, name, text)
        with pytest.raises(DatasetError) as caught:
            read_rows(tmp_path / name)
        assert message in caught.value.message
        assert caught.value.line == line
        assert caught.value.path.endswith(name)

    def test_missing_and_non_utf8_files(self, tmp_path: Path) -> None:
        (tmp_path / "latin.jsonl").write_bytes(b'{"q": "caf\xe9"}\n')
        with pytest.raises(DatasetError, match="not valid UTF-8"):
            read_rows(tmp_path / "latin.jsonl")
        with pytest.raises(DatasetError, match="no such file"):
            read_rows(tmp_path / "absent.jsonl")

    def test_row_ids(self) -> None:
        assert row_id({"id": "q7", "q": "x"}) == "q7"
        assert row_id({"id": 3}) == "3"
        assert row_id({"q": "x", "a": "1"}) == row_id({"a": "1", "q": "x"})
        assert row_id({"q": "x"}) != row_id({"q": "y"})
        assert len(row_id({"q": "x"})) == 16

    @given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=8)), max_size=4))
    def test_content_ids_are_stable(self, row: dict[str, object]) -> None:
        reordered = dict(reversed(list(row.items())))
        assert row_id(row) == row_id(reordered)


# --------------------------------------------------------------------- workspace


class TestWorkspace:
    def test_imports_are_loaded_once_and_relative_to_the_importer(self, tmp_path: Path) -> None:
        write(tmp_path, "lib/base.grpo", 'grpo 1\nmodel m { name = "x" }\n')
        write(tmp_path, "lib/left.grpo", 'grpo 1\nimport "base.grpo"\npolicy p {}\n')
        write(tmp_path, "lib/right.grpo", 'grpo 1\nimport "base.grpo"\npolicy q {}\n')
        main_path = write(tmp_path, "main.grpo", 'grpo 1\nimport "lib/left.grpo"\nimport "lib/right.grpo"\n')
        workspace, diagnostics = load_workspace(main_path)
        assert diagnostics == [] and workspace is not None
        assert [Path(p).name for p in workspace.files] == ["main.grpo", "left.grpo", "base.grpo", "right.grpo"]
        assert sorted(workspace.declarations) == ["m", "p", "q"]
        assert workspace.base_dir == str(tmp_path)
        assert workspace.program.path == main_path

    def test_cycles_and_missing_files_are_all_reported(self, tmp_path: Path) -> None:
        write(tmp_path, "a.grpo", 'grpo 1\nimport "b.grpo"\n')
        write(tmp_path, "b.grpo", 'grpo 1\nimport "a.grpo"\nimport "gone.grpo"\n')
        workspace, diagnostics = load_workspace(str(tmp_path / "a.grpo"))
        assert workspace is None
        assert [d.code for d in diagnostics] == ["E0102", "E0101"]
        assert all(d.span.path.endswith("b.grpo") and d.span.line > 0 for d in diagnostics)
        assert "a.grpo:2" in (diagnostics[0].hint or "")

    def test_a_syntax_error_in_an_import_stops_before_the_checks(self, tmp_path: Path) -> None:
        write(tmp_path, "bad.grpo", "grpo 1\nmodel {\n")
        main_path = write(tmp_path, "main.grpo", 'grpo 1\nimport "bad.grpo"\nlearn l { }\n')
        result = check_path(main_path)
        assert [d.code for d in result.diagnostics] == ["E0001"]
        assert result.workspace is None and not result.ok
        assert set(result.sources) == {main_path, str(tmp_path / "bad.grpo")}

    def test_open_files_replace_the_files_on_disk(self, tmp_path: Path) -> None:
        base = write(tmp_path, "base.grpo", 'grpo 1\nmodel m { name = "x" }\n')
        main_path = write(tmp_path, "main.grpo", 'grpo 1\nimport "base.grpo"\ntask t { model = m  prompt = "p" }\n')
        assert check_path(main_path).ok
        edited = 'grpo 1\nimport "base.grpo"\nimport "new.grpo"\ntask t { model = m  prompt = "p" }\n'
        unsaved = {
            Path(main_path).resolve(): edited,
            Path(base).resolve(): 'grpo 1\nmodel n { name = "x" }\n',
            (tmp_path / "new.grpo").resolve(): "grpo 1\npolicy p {}\n",
        }
        result = check_path(main_path, unsaved)
        assert [(d.code, d.message) for d in result.diagnostics] == [("E0203", "unknown model `m`")]
        assert result.sources[main_path] == edited
        parsed = parse(edited.replace('import "new.grpo"\n', ""), main_path)
        workspace = check_path(main_path, {Path(main_path).resolve(): parsed}).workspace
        assert workspace is not None and workspace.program is parsed


# ----------------------------------------------------------- programs built in Python


def _program(path: str, *declarations: ast.Decl) -> ast.Program:
    return ast.Program(path, ast.Header(1), (), declarations)


def _attribute(name: str, value: ast.Expr | ast.Block) -> ast.Attribute:
    return ast.Attribute(name, value)


class TestChecksOnBuiltTrees:
    def test_a_clean_tree(self, folder: Path) -> None:
        model = ast.Model("m", (_attribute("name", ast.String("x")),))
        data = ast.Dataset("qa", (_attribute("source", ast.String("qa.jsonl")),))
        task = ast.Task("t", (_attribute("model", ast.Name("m")), _attribute("prompt", ast.String("{{ question }}"))))
        reward = ast.Reward("r", (), expression=ast.Call("exact", (ast.Name("output"), ast.Name("answer"))))
        learn = ast.Learn(
            "l",
            tuple(_attribute(k, ast.Name(v)) for k, v in (("task", "t"), ("data", "qa"), ("reward", "r")))
            + (_attribute("group_size", ast.Number(3)),),
        )
        workspace = build_workspace([_program(str(folder / "main.grpo"), model, data, task, reward, learn)])
        assert check(workspace) == []

    def test_problems_in_a_tree(self, folder: Path) -> None:
        task = ast.Task("t", (_attribute("model", ast.Name("mm")), _attribute("prompt", ast.String("{{ q }}"))))
        reward = ast.Reward("r", (), expression=ast.Call("exakt", (ast.Name("output"),)))
        clash = ast.Policy("t", ())
        first = _program(str(folder / "main.grpo"), task, reward)
        second = _program(str(folder / "other.grpo"), clash)
        found = codes(build_workspace([first, second]))
        assert sorted(found) == ["E0103", "E0203", "E0204"]

    def test_checks_are_an_ordered_tuple_of_functions(self) -> None:
        assert isinstance(CHECKS, tuple) and len(CHECKS) == len(set(CHECKS))
        assert all(callable(rule) and rule.__doc__ for rule in CHECKS)


# --------------------------------------------------------------- whole programs


class TestPrograms:
    def test_diagnostics_are_sorted_and_known(self, folder: Path) -> None:
        text = VALID.replace("group_size = 4", "group_size = 1\n  epochs = 0").replace("{{ question }}", "{{ questin }}")
        result = check_path(write(folder, "p.grpo", text))
        keys = [(d.span.line, d.span.column) for d in result.diagnostics]
        assert keys == sorted(keys)
        assert [d.code for d in result.diagnostics] == ["E0402", "E0501", "E0304"]
        assert all(d.code in CODES for d in result.diagnostics)

    def test_a_reward_may_read_a_field_only_every_dataset_has(self, folder: Path) -> None:
        write(folder, "other.jsonl", '{"question": "2 + 2?", "solution": "4"}\n')
        text = VALID + 'dataset other { source = "other.jsonl" }\nevaluate e {\n  task = t\n  data = other\n  reward = correct\n}\n'
        assert codes(write(folder, "p.grpo", text)) == ["E0202"]
        mapped = text.replace('source = "other.jsonl"', 'source = "other.jsonl"  fields { answer = "solution" }')
        assert codes(write(folder, "p.grpo", mapped)) == []

    def test_ground_truth_off_is_fine_for_a_reward_reading_only_what_the_prompt_shows(self, folder: Path) -> None:
        text = VALID.replace("exact(output, answer)", "contains(output, question)").replace(
            "group_size = 4", "group_size = 4\n  ground_truth = false"
        )
        assert codes(write(folder, "p.grpo", text)) == []
        assert codes(write(folder, "p.grpo", text.replace("question)", "answer)"))) == ["E0502"]

    def test_python_files_are_not_imported(self, folder: Path) -> None:
        write(folder, "score.py", "raise SystemExit('imported!')\n")
        text = VALID.replace("exact(output, answer)", 'python("score.py:score")')
        assert codes(write(folder, "p.grpo", text)) == []

    def test_a_library_file_has_no_unused_warnings(self) -> None:
        assert codes(str(PROGRAMS / "common.grpo")) == []

    def test_unused_declarations_of_an_imported_file_are_not_reported(self, folder: Path) -> None:
        write(folder, "shared.grpo", 'grpo 1\nmodel spare { name = "y" }\n')
        text = VALID.replace("grpo 1\n", 'grpo 1\nimport "shared.grpo"\n', 1)
        assert codes(write(folder, "p.grpo", text)) == []

    def test_examples_run_through_the_command_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["check", str(PROGRAMS / "math.grpo"), str(PROGRAMS / "dates.grpo")]) == 0
        assert "0 errors, 0 warnings" in capsys.readouterr().err
        golden = Path(__file__).resolve().parents[1] / "data" / "names" / "wrong_kind.grpo"
        assert main(["check", "--format", "json", str(golden)]) == 1
        assert [d["code"] for d in json.loads(capsys.readouterr().out)] == ["E0201", "E0201"]


# ------------------------------------------------------------- never a traceback


_EXAMPLE = (PROGRAMS / "math.grpo").read_text(encoding="utf-8")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_programs_give_diagnostics_not_tracebacks(tmp_path: Path, data: st.DataObject) -> None:
    """Delete, duplicate or replace a span of a real program: checking reports, never raises."""
    shutil.copytree(PROGRAMS / "data", tmp_path / "data", dirs_exist_ok=True)
    start = data.draw(st.integers(0, len(_EXAMPLE)))
    end = data.draw(st.integers(start, min(len(_EXAMPLE), start + 40)))
    insert = data.draw(st.sampled_from(["", _EXAMPLE[start:end] * 2, "x", "= 1", "{", "}", '"', "@", "[a,", "0", "null"]))
    text = _EXAMPLE[:start] + insert + _EXAMPLE[end:]
    result = check_path(write(tmp_path, "damaged.grpo", text))
    assert all(d.code in CODES and d.span.path.endswith("damaged.grpo") for d in result.diagnostics)
