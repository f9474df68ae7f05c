"""The Python host API: load, loads, compile, to_source, and the builder meeting
the parser in one tree."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import grpo_dsl as g
from grpo_dsl.language import ast
from grpo_dsl.language.fmt import format_program
from grpo_dsl.language.parser import parse, parse_file
from grpo_dsl.plan import load_plan

FIXTURES = Path(__file__).parent / "fixtures"


def data_files(folder: Path) -> None:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for name, count in (("dapo100", 120), ("aime24", 30)):
        lines = [json.dumps({"problem": f"P{i}", "question": f"Q{i}", "answer": str(i)}) for i in range(count)]
        (folder / "data" / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def paper(tmp_path: Path) -> Path:
    """The program of language.md §1 with data files beside it."""
    data_files(tmp_path)
    path = tmp_path / "math.grpo"
    path.write_text((FIXTURES / "full.grpo").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def paper_in_python(base_dir: Path) -> ast.Program:
    """language.md §1 written with the builder."""
    return g.Program(
        [
            g.Model(
                "deepseek",
                base_url=g.env("GRPO_BASE_URL", "https://api.deepseek.com/v1"),
                api_key=g.env("DEEPSEEK_API_KEY"),
                name="deepseek-chat",
                concurrency=64,
                price={"input": 0.28, "output": 0.42},
            ),
            g.Dataset("dapo100", source="data/dapo100.jsonl", fields={"question": "problem", "answer": "answer"}, limit=100),
            g.Dataset("aime24", source="data/aime24.jsonl"),
            g.Task(
                "math",
                model="deepseek",
                system="You are an expert competition mathematician.",
                prompt="Solve the problem step by step. Put the final answer in \\boxed{}.\n\n{{ question }}",
                experiences="system",
                temperature=0.3,
                max_tokens=16384,
                tools=["python"],
            ),
            g.Reward("correct", g.call("math_equal", g.call("boxed", g.ref("output")), g.ref("answer"))),
            g.Reward(
                "concise",
                g.binary(
                    "+",
                    g.binary("*", 0.9, g.ref("correct")),
                    g.binary("*", 0.1, g.binary("<", g.call("length", g.ref("output")), 4000)),
                ),
            ),
            g.Policy("lessons", ops=["add", "modify", "delete"], max_per_group=2, capacity=48, max_words=32),
            g.Learn(
                "math_lessons",
                task="math",
                data="dapo100",
                reward="correct",
                group_size=5,
                batch_size=100,
                epochs=3,
                temperature=0.7,
                ground_truth=True,
                learner="deepseek",
                policy="lessons",
                validate="aime24",
                seed=7,
                budget={"usd": 20},
            ),
            g.Evaluate(
                "aime",
                task="math",
                data="aime24",
                reward="correct",
                samples=32,
                metrics=["mean", "pass@1", "pass@32"],
                compare=["none", "math_lessons"],
            ),
            g.Emit("math_prompts", library="math_lessons", path="prompts/math", formats=["json", "jinja", "markdown"]),
        ],
        base_dir=base_dir,
        name="math.grpo",
    )


class TestExports:
    def test_all_is_explicit_and_complete(self) -> None:
        for name in g.__all__:
            assert hasattr(g, name), name
        for name in ("load", "loads", "compile", "to_source", "ProgramError", "Plan", "Model", "Program", "env", "ref", "call"):
            assert name in g.__all__


class TestLoad:
    def test_load_checks_and_keeps_warnings(self, paper: Path) -> None:
        program = g.load(paper)
        assert isinstance(program, g.CheckedProgram)
        assert program.path == str(paper)
        assert isinstance(program.get("math"), ast.Task)
        assert set(program.declarations) >= {"deepseek", "math_lessons", "aime"}
        assert [w.code for w in program.warnings] == ["W0001"]

    def test_load_raises_program_error_with_every_diagnostic(self, paper: Path) -> None:
        paper.write_text(paper.read_text(encoding="utf-8").replace("model       = deepseek", "model = deepseak"), encoding="utf-8")
        (paper.parent / "data" / "aime24.jsonl").unlink()
        with pytest.raises(g.ProgramError) as raised:
            g.load(paper)
        codes = [d.code for d in raised.value.diagnostics]
        assert "E0203" in codes and "E0104" in codes
        assert all(d.severity == "error" for d in raised.value.diagnostics)
        assert "did you mean `deepseek`?" in str(raised.value)

    def test_load_of_a_missing_file_or_a_syntax_error(self, tmp_path: Path) -> None:
        with pytest.raises(g.ProgramError):
            g.load(tmp_path / "missing.grpo")
        with pytest.raises(g.ProgramError) as raised:
            g.loads("grpo 1\nmodel m {", str(tmp_path / "bad.grpo"))
        assert raised.value.diagnostics[0].code == "E0001"

    def test_loads_resolves_paths_from_the_given_path(self, paper: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        text = paper.read_text(encoding="utf-8")
        monkeypatch.chdir(tmp_path.parent)
        program = g.loads(text, str(paper))
        assert g.compile(program).to_json() == load_plan(paper).to_json()
        with pytest.raises(g.ProgramError) as raised:
            g.loads(text)
        assert "E0104" in [d.code for d in raised.value.diagnostics]


class TestCompileAndSource:
    def test_compile_accepts_loaded_parsed_and_built_programs(self, paper: Path) -> None:
        expected = load_plan(paper).to_json()
        assert g.compile(g.load(paper)).to_json() == expected
        assert g.compile(parse_file(paper)).to_json() == expected
        assert g.compile(paper_in_python(paper.parent)).to_json() != ""

    def test_to_source_is_the_canonical_layout(self, paper: Path) -> None:
        assert g.to_source(g.load(paper)) == format_program(parse_file(paper))

    def test_built_program_is_the_parsed_tree(self, paper: Path) -> None:
        built = paper_in_python(paper.parent)
        assert built.declarations == parse_file(paper).declarations
        assert parse(g.to_source(built)).declarations == built.declarations

    def test_built_program_compiles_to_the_plan_of_its_source(self, paper: Path) -> None:
        built = paper_in_python(paper.parent)
        source = g.to_source(built)
        paper.write_text(source, encoding="utf-8")
        assert g.compile(built).to_json() == load_plan(paper).to_json()

    def test_built_program_with_errors(self, tmp_path: Path) -> None:
        program = g.Program([g.Model("m", name="x", concurrancy=3, temperature=0.5)], base_dir=tmp_path)
        with pytest.raises(g.ProgramError) as raised:
            g.compile(program)
        messages = [d.message for d in raised.value.diagnostics]
        assert "unknown attribute `concurrancy` in a model" in messages
        assert any("did you mean `concurrency`?" in (d.hint or "") for d in raised.value.diagnostics)

    def test_built_program_with_an_import(self, tmp_path: Path) -> None:
        data_files(tmp_path)
        (tmp_path / "models.grpo").write_text('grpo 1\n\nmodel m { name = "x" }\n', encoding="utf-8")
        program = g.Program(
            [
                g.Dataset("d", source="data/aime24.jsonl"),
                g.Task("t", model="m", prompt="{{ question }}"),
                g.Reward("r", g.call("exact", g.ref("output"), g.ref("answer"))),
                g.Learn("l", task="t", data="d", reward="r", group_size=2),
            ],
            base_dir=tmp_path,
            imports=["models.grpo"],
        )
        plan = g.compile(program).data
        assert plan["models"]["m"]["name"] == "x"
        assert set(plan["sources"]) == {"main.grpo", "models.grpo"}
        (tmp_path / "models.grpo").unlink()
        with pytest.raises(g.ProgramError) as raised:
            g.compile(program)
        assert raised.value.diagnostics[0].code in {"E0006", "E0101"}


class TestBuilderValues:
    def test_words_metrics_libraries_and_blocks(self) -> None:
        evaluate = g.Evaluate("e", task="t", metrics=["mean", "pass@4", "mean@2"], compare=["none", "l", "prompts/x@^1.2"])
        metrics = evaluate.get("metrics")
        compare = evaluate.get("compare")
        assert metrics is not None and compare is not None
        assert metrics.value == ast.ListExpr((ast.Name("mean"), ast.Metric("pass", 4), ast.Metric("mean", 2)))
        assert compare.value == ast.ListExpr((ast.Name("none"), ast.Name("l"), ast.String("prompts/x@^1.2")))
        assert evaluate.get("task") == ast.Attribute("task", ast.Name("t"))

    def test_rule_and_python_reward(self) -> None:
        policy = g.Policy("p", rule="rules.py:apply", ops=["add"])
        assert policy.get("rule") == ast.Attribute("rule", ast.Call("python", (ast.String("rules.py:apply"),)))
        assert g.Reward("r", g.python("r.py:f")).expression == ast.Call("python", (ast.String("r.py:f"),))

    def test_judge_reward_and_blocks(self) -> None:
        reward = g.Reward("j", judge="m", rubric="Is it right?")
        assert reward.expression is None
        assert reward.get("judge") == ast.Attribute("judge", ast.Name("m"))
        model = g.Model("m", name="x", price={"input": 1})
        assert model.get("price") == ast.Attribute("price", ast.Block((ast.Attribute("input", ast.Number(1)),)))

    def test_env_and_literals(self) -> None:
        assert g.env("K") == ast.Call("env", (ast.String("K"),))
        assert g.env("K", "d") == ast.Call("env", (ast.String("K"), ast.String("d")))
        assert g.expr([1, 2.5, True, None, "s"]) == ast.ListExpr(
            (ast.Number(1), ast.Number(2.5), ast.Bool(True), ast.Null(), ast.String("s"))
        )
        assert g.conditional(g.ref("a"), 1, 0) == ast.Conditional(ast.Name("a"), ast.Number(1), ast.Number(0))
        assert g.metric("pass", 8) == ast.Metric("pass", 8)

    @pytest.mark.parametrize("value", [{"a": 1}, object(), ast.Block(())])
    def test_values_that_are_not_expressions(self, value: object) -> None:
        with pytest.raises(TypeError):
            g.expr(value)  # type: ignore[arg-type]


def test_docstring_example_of_the_builder() -> None:
    program = g.Program(
        [
            g.Model("local", name="qwen2.5-0.5b-instruct"),
            g.Reward("correct", g.call("math_equal", g.call("boxed", g.ref("output")), g.ref("answer"))),
        ]
    )
    assert g.to_source(program) == textwrap.dedent(
        """\
        grpo 1

        model local {
          name = "qwen2.5-0.5b-instruct"
        }

        reward correct = math_equal(boxed(output), answer)
        """
    )
