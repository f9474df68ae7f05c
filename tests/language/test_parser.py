"""The parser and the syntax-tree builder: every construct, literals, positions, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grpo_dsl.cli import main
from grpo_dsl.language import ast
from grpo_dsl.language.diagnostics import ProgramError
from grpo_dsl.language.parser import (
    MAX_SYNTAX_ERRORS,
    SYNTAX_EXAMPLES,
    parse,
    parse_file,
    parse_partial,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def value(text: str) -> ast.Expr | ast.Block:
    """The value of the single attribute `a` in `text`."""
    program = parse(f"grpo 1\nmodel m {{\n  a = {text}\n}}\n")
    return program.declarations[0].attributes[0].value


def error_of(text: str) -> ProgramError:
    with pytest.raises(ProgramError) as caught:
        parse(text, "t.grpo")
    return caught.value


def message_of(text: str) -> str:
    return error_of(text).diagnostics[0].message


class TestDeclarations:
    def test_full_example_program(self) -> None:
        program = parse_file(FIXTURES / "full.grpo")
        assert program.header == ast.Header(1)
        assert [(d.kind, d.name) for d in program.declarations] == [
            ("model", "deepseek"),
            ("dataset", "dapo100"),
            ("dataset", "aime24"),
            ("task", "math"),
            ("reward", "correct"),
            ("reward", "concise"),
            ("policy", "lessons"),
            ("learn", "math_lessons"),
            ("evaluate", "aime"),
            ("emit", "math_prompts"),
        ]
        learn = program.get("math_lessons")
        assert learn is not None
        assert learn.get("policy") == ast.Attribute("policy", ast.Name("lessons"))
        assert learn.get("budget") == ast.Attribute("budget", ast.Block((ast.Attribute("usd", ast.Number(20)),)))
        metrics = program.get("aime")
        assert metrics is not None and metrics.get("metrics") == ast.Attribute(
            "metrics", ast.ListExpr((ast.Name("mean"), ast.Metric("pass", 1), ast.Metric("pass", 32)))
        )

    def test_every_kind_builds_its_class(self) -> None:
        kinds = ["model", "dataset", "task", "policy", "learn", "evaluate", "emit", "reward"]
        program = parse("grpo 1\n" + "\n".join(f"{kind} x{i} {{}}" for i, kind in enumerate(kinds)))
        assert [type(d).__name__ for d in program.declarations] == [k.capitalize() for k in kinds]

    def test_reward_expression_and_block(self) -> None:
        program = parse('grpo 1\nreward r = exact(output, answer)\nreward j { judge = m  rubric = "be fair" }')
        expression, judge = program.declarations
        assert isinstance(expression, ast.Reward) and isinstance(judge, ast.Reward)
        assert expression.expression == ast.Call("exact", (ast.Name("output"), ast.Name("answer")))
        assert expression.attributes == ()
        assert judge.expression is None
        assert [a.name for a in judge.attributes] == ["judge", "rubric"]

    def test_imports_come_first(self) -> None:
        program = parse('grpo 1\nimport "common.grpo"\nimport "more.grpo"\nmodel m {}')
        assert [i.path.value for i in program.imports] == ["common.grpo", "more.grpo"]

    def test_keywords_may_name_attributes(self) -> None:
        program = parse("grpo 1\nlearn l { task = t  model = m  policy = p  reward = r  emit = e  import = i }")
        assert [a.name for a in program.declarations[0].attributes] == [
            "task", "model", "policy", "reward", "emit", "import",
        ]

    def test_declaration_names_and_references_may_be_keywords(self) -> None:
        program = parse("grpo 1\ntask task { model = model }")
        assert program.declarations[0] == ast.Task("task", (ast.Attribute("model", ast.Name("model")),))

    def test_attributes_separated_by_spaces_or_newlines(self) -> None:
        one_line = parse("grpo 1 model m { a = 1 b = [x] c { d = 2 } e = f(1) }")
        many_lines = parse("grpo 1\nmodel m {\n  a = 1\n  b = [x]\n  c {\n    d = 2\n  }\n  e = f(1)\n}\n")
        assert one_line == many_lines

    def test_nested_blocks(self) -> None:
        assert value("1") == ast.Number(1)
        program = parse("grpo 1\nmodel m { price { input = 0.28  output = 0.42 } }")
        price = program.declarations[0].attributes[0]
        assert price.value == ast.Block(
            (ast.Attribute("input", ast.Number(0.28)), ast.Attribute("output", ast.Number(0.42)))
        )


class TestExpressions:
    def test_literals(self) -> None:
        assert value("true") == ast.Bool(True)
        assert value("false") == ast.Bool(False)
        assert value("null") == ast.Null()
        assert value("deepseek") == ast.Name("deepseek")

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("3", 3), ("0.7", 0.7), ("1e-6", 1e-6), ("1_000", 1000), ("2.5E3", 2500.0), ("1_0.0_1e1_0", 10.01e10)],
    )
    def test_numbers(self, text: str, expected: float) -> None:
        number = value(text)
        assert isinstance(number, ast.Number)
        assert number.value == expected and type(number.value) is type(expected)
        assert number.raw == text

    def test_negative_number_literal_is_a_number(self) -> None:
        assert value("-2") == ast.Number(-2)
        assert value("-x") == ast.Unary("-", ast.Name("x"))

    @pytest.mark.parametrize(
        ("text", "metric"), [("pass@32", ast.Metric("pass", 32)), ("mean@16", ast.Metric("mean", 16))]
    )
    def test_metrics_are_single_tokens(self, text: str, metric: ast.Metric) -> None:
        assert value(text) == metric

    def test_lists_allow_a_trailing_comma(self) -> None:
        assert value("[a, b, c,]") == value("[a, b, c]") == ast.ListExpr(tuple(map(ast.Name, "abc")))
        assert value("[]") == ast.ListExpr(())

    def test_calls(self) -> None:
        assert value('env("KEY", "default")') == ast.Call("env", (ast.String("KEY"), ast.String("default")))
        assert value("now()") == ast.Call("now", ())

    def test_precedence_and_associativity(self) -> None:
        one, two, three = ast.Number(1), ast.Number(2), ast.Number(3)
        assert value("1 + 2 * 3") == ast.Binary("+", one, ast.Binary("*", two, three))
        assert value("1 - 2 - 3") == ast.Binary("-", ast.Binary("-", one, two), three)
        assert value("(1 + 2) * 3") == ast.Binary("*", ast.Binary("+", one, two), three)
        a, b, c = ast.Name("a"), ast.Name("b"), ast.Name("c")
        assert value("a or b and c") == ast.Binary("or", a, ast.Binary("and", b, c))
        assert value("not a == b") == ast.Unary("not", ast.Binary("==", a, b))
        assert value("a < 1 + 2") == ast.Binary("<", a, ast.Binary("+", one, two))

    @pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
    def test_comparisons(self, op: str) -> None:
        assert value(f"a {op} 1") == ast.Binary(op, ast.Name("a"), ast.Number(1))

    def test_conditional(self) -> None:
        assert value("if a > 1 then 1 else 0") == ast.Conditional(
            ast.Binary(">", ast.Name("a"), ast.Number(1)), ast.Number(1), ast.Number(0)
        )
        nested = value("if a then b else if c then d else e")
        assert isinstance(nested, ast.Conditional) and isinstance(nested.otherwise, ast.Conditional)


class TestStrings:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (r'"a \"quoted\" word"', 'a "quoted" word'),
            (r'"back\\slash"', "back\\slash"),
            (r'"line\nbreak\ttab"', "line\nbreak\ttab"),
            (r'"smile \u{1F600} e\u{e9}"', "smile \U0001f600 e\u00e9"),
            (r'"\boxed{} \d+ \u"', "\\boxed{} \\d+ \\u"),
            ('""', ""),
        ],
    )
    def test_escapes(self, raw: str, expected: str) -> None:
        string = value(raw)
        assert string == ast.String(expected)
        assert isinstance(string, ast.String) and string.raw == raw

    def test_multiline_strings_are_dedented(self) -> None:
        text = 'grpo 1\ntask t {\n  prompt = """\n    Solve \\boxed{}.\n\n      indented {{ q }}\n    """\n}\n'
        prompt = parse(text).declarations[0].attributes[0].value
        assert prompt == ast.String("Solve \\boxed{}.\n\n  indented {{ q }}")

    def test_multiline_string_on_one_line_and_escapes(self) -> None:
        assert value('"""say "hi" \\""" now"""') == ast.String('say "hi" """ now')

    def test_bad_unicode_escape_points_into_the_string(self) -> None:
        error = error_of('grpo 1\nmodel m { a = "ok \\u{110000} ok" }')
        (diagnostic,) = error.diagnostics
        assert diagnostic.code == "E0003"
        assert diagnostic.message == "invalid `\\u{...}` escape: U+110000 is not a character"
        assert (diagnostic.span.line, diagnostic.span.column, diagnostic.span.end_column) == (2, 19, 29)

    def test_bad_escape_in_multiline_string_reports_its_line(self) -> None:
        error = error_of('grpo 1\nmodel m { a = """\n  fine\n  bad \\u{zz}\n  """ }')
        span = error.diagnostics[0].span
        assert (span.line, span.column, span.end_column) == (4, 7, 13)


class TestComments:
    def test_comments_are_collected_in_order(self) -> None:
        program = parse('# top\ngrpo 1 # header\nmodel m { a = "# not a comment" } # end\n')
        assert [c.text for c in program.comments] == ["# top", "# header", "# end"]
        assert [(c.span.line, c.span.column) for c in program.comments] == [(1, 1), (2, 8), (3, 35)]
        assert program.declarations[0].attributes[0].value == ast.String("# not a comment")


class TestSpans:
    def test_spans_of_declaration_attribute_and_value(self) -> None:
        program = parse("grpo 1\n\nmodel deepseek {\n  name  = env(\"X\")\n}\n", "p.grpo")
        model = program.declarations[0]
        assert (model.span.line, model.span.column, model.span.end_line, model.span.end_column) == (3, 1, 5, 2)
        assert (model.name_span.line, model.name_span.column, model.name_span.end_column) == (3, 7, 15)
        attribute = model.attributes[0]
        assert (attribute.name_span.line, attribute.name_span.column, attribute.name_span.end_column) == (4, 3, 7)
        call = attribute.value
        assert isinstance(call, ast.Call)
        assert (call.span.line, call.span.column, call.span.end_column) == (4, 11, 19)
        assert call.span.path == "p.grpo"
        source = program.source
        assert source[call.span.start : call.span.end] == 'env("X")'


class TestHeader:
    def test_missing_header(self) -> None:
        (diagnostic,) = error_of("model m {}\n").diagnostics
        assert (diagnostic.code, diagnostic.message, diagnostic.hint) == (
            "E0004",
            "missing the language header",
            "start the file with `grpo 1`",
        )
        assert (diagnostic.span.line, diagnostic.span.column) == (1, 1)

    def test_unknown_version(self) -> None:
        (diagnostic,) = error_of("grpo 2\nmodel m {}\n").diagnostics
        assert (diagnostic.code, diagnostic.message) == ("E0005", "unknown language version `2`")
        assert diagnostic.hint == "this compiler knows version 1: write `grpo 1`"
        assert (diagnostic.span.line, diagnostic.span.column, diagnostic.span.end_column) == (1, 6, 7)


class TestSyntaxErrors:
    def test_missing_equals_after_attribute_name(self) -> None:
        error = error_of('grpo 1\nmodel m {\n  name "deepseek-chat"\n}\n')
        (diagnostic,) = error.diagnostics
        assert diagnostic.code == "E0001"
        assert diagnostic.message == "expected `=` or `{` after the attribute name"
        assert (diagnostic.span.line, diagnostic.span.column, diagnostic.span.end_column) == (3, 8, 23)
        assert error.sources == {"t.grpo": 'grpo 1\nmodel m {\n  name "deepseek-chat"\n}\n'}

    def test_missing_equals_after_a_keyword_attribute_name_later_in_the_block(self) -> None:
        assert message_of("grpo 1\nlearn l {\n  task = t\n  policy lessons\n}") == (
            "expected `=` or `{` after the attribute name"
        )

    def test_misspelt_declaration_kind_suggests_the_right_one(self) -> None:
        (diagnostic,) = error_of("grpo 1\nmodle m {}\n").diagnostics
        assert diagnostic.message == (
            "expected a declaration: `model`, `dataset`, `task`, `tool`, `reward`, `policy`, `learn`, `evaluate`, `emit`"
        )
        assert diagnostic.hint == "did you mean `model`?"
        assert (diagnostic.span.line, diagnostic.span.column, diagnostic.span.end_column) == (2, 1, 6)

    def test_commas_between_attributes(self) -> None:
        assert message_of("grpo 1\nmodel m { a = 1, b = 2 }") == (
            "attributes are separated by spaces or newlines, not commas"
        )

    def test_missing_value(self) -> None:
        assert message_of("grpo 1\ntask t {\n  model =\n}") == "expected a value after `=`"

    def test_list_missing_comma_nested_deeper_than_any_example(self) -> None:
        diagnostic = error_of("grpo 1\nmodel m { a = [[x], [f(y), [b c]]] }").diagnostics[0]
        assert diagnostic.message == "expected `,` or `]` in the list"
        assert (diagnostic.span.column, diagnostic.span.end_column) == (31, 32)

    def test_unclosed_block_at_end_of_file(self) -> None:
        diagnostic = error_of('grpo 1\nmodel m {\n  name = "x"\n').diagnostics[0]
        assert diagnostic.message == "unexpected end of file; expected an attribute name or `}`"
        assert (diagnostic.span.line, diagnostic.span.column) == (3, 13)

    def test_chained_comparison(self) -> None:
        assert message_of("grpo 1\nreward r = 0 < x < 1") == "comparisons cannot be chained: combine them with `and`"

    def test_conditional_without_else(self) -> None:
        assert message_of("grpo 1\nreward r = if x then 1\nmodel m {}") == "expected `else` after the value of `then`"

    def test_unterminated_string(self) -> None:
        (diagnostic,) = error_of('grpo 1\nmodel m { name = "abc\n}').diagnostics
        assert diagnostic.message == 'unterminated string: expected `"` before the end of the line'
        assert diagnostic.hint == 'use `"""` for text over several lines'
        assert (diagnostic.span.line, diagnostic.span.column) == (2, 18)

    def test_unterminated_multiline_string(self) -> None:
        (diagnostic,) = error_of('grpo 1\nmodel m { p = """abc\n }').diagnostics
        assert diagnostic.message == 'unterminated string: `"""` is never closed'
        assert (diagnostic.span.line, diagnostic.span.column) == (2, 15)

    def test_unknown_character(self) -> None:
        assert message_of("grpo 1\nmodel m { a : 1 }") == (
            "unexpected character `:`; expected `=` or `{` after the attribute name"
        )

    def test_reserved_word_as_a_name(self) -> None:
        (diagnostic,) = error_of("grpo 1\nmodel m { a = then }").diagnostics
        assert (diagnostic.code, diagnostic.message) == ("E0008", "`then` is a reserved word and cannot be used as a name")

    def test_messages_never_name_lark_tokens(self) -> None:
        for text in ["grpo 1\nmodel m { a = x = 1 }", "grpo 1\nmodel m { a = [1 2] }", "grpo 1\nreward r = (", "grpo 1 {"]:
            message = message_of(text)
            assert not any(name in message for name in ("RBRACE", "LSQB", "NAME", "$END", "COMMA", "__ANON"))

    def test_deep_nesting_is_an_error_not_a_crash(self) -> None:
        (diagnostic,) = error_of("grpo 1\nreward r = " + "[" * 500 + "]" * 500).diagnostics
        assert diagnostic.code == "E0010"

    def test_many_errors_of_one_phase_are_all_reported(self) -> None:
        error = error_of('grpo 1\nmodel m { a = "\\u{zz}"  b = 1e999  c = null }\nmodel then {}')
        assert [d.code for d in error.diagnostics] == ["E0003", "E0009", "E0008"]

    @pytest.mark.parametrize(("label", "examples"), SYNTAX_EXAMPLES, ids=[label for label, _ in SYNTAX_EXAMPLES])
    def test_every_labelled_example_gets_its_own_label(self, label: str, examples: tuple[str, ...]) -> None:
        for example in examples:
            assert message_of(example).endswith(label), example


class TestRecovery:
    def test_every_syntax_error_of_a_file_is_reported_in_order(self) -> None:
        text = "grpo 1\nmodel m {\n  name \"x\"\n}\ntask t {\n  a = [1 2]\n}\nlearn l {\n  group_size =\n}\n"
        diagnostics = error_of(text).diagnostics
        assert [(d.code, d.span.line, d.message) for d in diagnostics] == [
            ("E0001", 3, "expected `=` or `{` after the attribute name"),
            ("E0001", 6, "expected `,` or `]` in the list"),
            ("E0001", 10, "expected a value after `=`"),
        ]

    def test_a_block_without_its_brace_resumes_at_the_next_declaration(self) -> None:
        text = 'grpo 1\nmodel m {\n  name = "x"\n\ntask t {\n  model = m\n}\nreward r = 1 +\n'
        diagnostics = error_of(text).diagnostics
        assert [(d.span.line, d.span.column, d.message) for d in diagnostics] == [
            (5, 6, "expected `=` or `{` after the attribute name"),
            (8, 15, "unexpected end of file; expected a value after the operator"),
        ]

    def test_the_rest_of_a_line_with_an_unterminated_string_is_skipped(self) -> None:
        text = 'grpo 1\nmodel m {\n  name = "oops model x = 1\n  rpm = 3\n}\nmodle n {}\n'
        diagnostics = error_of(text).diagnostics
        assert [(d.span.line, d.message.split(":")[0]) for d in diagnostics] == [
            (3, "unterminated string"),
            (6, "expected a declaration"),
        ]
        assert diagnostics[1].hint == "did you mean `model`?"

    def test_the_end_of_the_file_is_reported_after_a_recovery(self) -> None:
        diagnostics = error_of("grpo 1\nmodel m { p { a = }").diagnostics
        assert [(d.span.column, d.message) for d in diagnostics] == [
            (19, "expected a value after `=`"),
            (20, "unexpected end of file; expected an attribute name or `}`"),
        ]

    def test_an_unterminated_multiline_string_ends_the_parse(self) -> None:
        (diagnostic,) = error_of('grpo 1\nmodel m { p = """abc\n }\nmodel n { a b }').diagnostics
        assert diagnostic.message == 'unterminated string: `"""` is never closed'

    def test_other_errors_of_the_phase_come_with_the_syntax_errors(self) -> None:
        text = 'grpo 1\nmodel m { a = "\\u{zz}" }\nmodel n { b c }\nmodel then {}\n'
        assert [(d.code, d.span.line) for d in error_of(text).diagnostics] == [("E0003", 2), ("E0001", 3), ("E0008", 4)]

    def test_a_partial_parse_keeps_the_declarations_around_the_errors(self) -> None:
        text = 'grpo 1\nmodel m { name = "x" }\ntask t {\n  model m\n}\nreward r = 1\nlearn l {\n  task = t\n  grou'
        program, problems = parse_partial(text, "p.grpo")
        assert program is not None
        assert [(d.kind, d.name) for d in program.declarations] == [("model", "m"), ("task", "t"), ("reward", "r")]
        assert program.declarations[1].attributes == ()
        assert [(d.span.line, d.message) for d in problems] == [
            (4, "expected `=` or `{` after the attribute name"),
            (9, "unexpected end of file; expected `=` or `{` after the attribute name"),
        ]
        assert parse_partial('grpo 1\nmodel m { p = """never closed\n}', "p.grpo")[0] is None

    def test_a_file_of_noise_stops_at_the_limit(self) -> None:
        text = "grpo 1\n" + "model m { a b }\n" * (MAX_SYNTAX_ERRORS + 10)
        diagnostics = error_of(text).diagnostics
        assert len(diagnostics) == MAX_SYNTAX_ERRORS
        assert [d.span.line for d in diagnostics] == list(range(2, MAX_SYNTAX_ERRORS + 2))

    def test_three_broken_lines_give_three_diagnostics_from_grpo_check(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "three.grpo"
        path.write_text('grpo 1\nmodel m {\n  name "x"\n}\nmodle n {}\ntask t {\n  tools = [a b]\n}\n')
        assert main(["check", str(path)]) == 1
        captured = capsys.readouterr()
        assert captured.out.count("error[E0001]") == 3
        assert "Traceback" not in captured.out + captured.err
        assert captured.err == "checked 1 file: 3 errors, 0 warnings\n"


class TestFiles:
    def test_invalid_utf8_is_a_diagnostic(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.grpo"
        path.write_bytes(b'grpo 1\nmodel m { name = "caf\xe9" }\n')
        with pytest.raises(ProgramError) as caught:
            parse_file(path)
        (diagnostic,) = caught.value.diagnostics
        assert diagnostic.code == "E0002"
        assert (diagnostic.span.line, diagnostic.span.column) == (2, 22)
        assert str(path) in caught.value.sources

    def test_byte_order_mark_is_ignored(self, tmp_path: Path) -> None:
        path = tmp_path / "bom.grpo"
        path.write_bytes("\ufeffgrpo 1\nmodel m {}\n".encode())
        assert parse_file(path).header == ast.Header(1)

    def test_unreadable_file_is_a_diagnostic(self, tmp_path: Path) -> None:
        with pytest.raises(ProgramError) as caught:
            parse_file(tmp_path / "missing.grpo")
        assert caught.value.diagnostics[0].code == "E0006"

    def test_windows_line_endings(self) -> None:
        text = 'grpo 1\r\ntask t {\r\n  p = """\r\n    x\r\n    y\r\n    """  # c\r\n}\r\n'
        program = parse(text)
        assert program.declarations[0].attributes[0].value == ast.String("x\ny")
        assert [c.text for c in program.comments] == ["# c"]


class TestCheckCommand:
    def test_syntax_error_is_printed_with_its_source_line(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.chdir(tmp_path)
        Path("bad.grpo").write_text('grpo 1\nmodel m { name "x" }\n')
        assert main(["check", "bad.grpo"]) == 1
        captured = capsys.readouterr()
        assert captured.out == (
            "bad.grpo:2:16: error[E0001]: expected `=` or `{` after the attribute name\n"
            "  |\n"
            '2 | model m { name "x" }\n'
            "  |                ^^^\n"
        )
        assert captured.err == "checked 1 file: 1 error, 0 warnings\n"

    def test_json_output(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "bad.grpo"
        path.write_text("grpo 1\nreward r = 0 < x < 1\n")
        assert main(["check", "--format", "json", str(path)]) == 1
        (diagnostic,) = json.loads(capsys.readouterr().out)
        assert diagnostic["code"] == "E0001"
        assert (diagnostic["line"], diagnostic["column"], diagnostic["end_column"]) == (2, 18, 19)
        assert diagnostic["message"] == "comparisons cannot be chained: combine them with `and`"

    def test_clean_program_exits_0(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "ok.grpo"
        path.write_text('grpo 1\n\nmodel m {\n  name = "x"\n}\n')
        assert main(["check", str(path)]) == 0
        assert "0 errors" in capsys.readouterr().err

    def test_missing_file_is_wrong_usage(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["check", str(tmp_path / "nope.grpo")]) == 2
        assert "no such file" in capsys.readouterr().err

    def test_bad_format_option_is_wrong_usage(self, tmp_path: Path) -> None:
        path = tmp_path / "ok.grpo"
        path.write_text("grpo 1\n")
        assert main(["check", "--format", "xml", str(path)]) == 2


@pytest.mark.parametrize(
    "text, code",
    [
        ("grpo " + "9" * 5000 + "\n", "E0005"),
        ("grpo 1\nevaluate e {\n  metrics = [pass@" + "9" * 5000 + "]\n}\n", "E0009"),
        ("grpo 1\nreward r = " + "-" * 120 + "1\n", "E0010"),
    ],
)
def test_extreme_input_gives_a_diagnostic_not_a_traceback(text: str, code: str) -> None:
    with pytest.raises(ProgramError) as error:
        parse(text, "extreme.grpo")
    assert code in {d.code for d in error.value.diagnostics}
