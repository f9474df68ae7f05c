"""The canonical layout: examples, comments, idempotence, printing trees built in Python, `grpo fmt`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grpo_dsl.cli import main
from grpo_dsl.language import ast
from grpo_dsl.language.fmt import format_program
from grpo_dsl.language.parser import parse, parse_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fmt(text: str) -> str:
    return format_program(parse(text))


def source(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def assert_canonical(text: str) -> None:
    """`text` is already in the canonical layout, and formatting it changes nothing."""
    assert fmt(text) == text


class TestLayout:
    def test_indent_alignment_and_blank_lines(self) -> None:
        messy = 'grpo   1\nmodel deepseek{name="deepseek-chat" concurrency=64\nbase_url=env("URL")}dataset d{source="d.jsonl"}'
        assert fmt(messy) == source(
            """
            grpo 1

            model deepseek {
              name        = "deepseek-chat"
              concurrency = 64
              base_url    = env("URL")
            }

            dataset d {
              source = "d.jsonl"
            }
            """
        )

    def test_short_nested_blocks_stay_on_one_line(self) -> None:
        assert_canonical(
            source(
                """
                grpo 1

                model m {
                  name = "x"
                  price { input = 0.28  output = 0.42 }
                  empty {}
                }
                """
            )
        )

    def test_long_or_deep_nested_blocks_break(self) -> None:
        text = "grpo 1\nmodel m { outer { inner { a = 1 } } long { text = \"" + "x" * 80 + "\" } }"
        assert fmt(text) == source(
            f"""
            grpo 1

            model m {{
              outer {{
                inner {{ a = 1 }}
              }}
              long {{
                text = "{"x" * 80}"
              }}
            }}
            """
        )

    def test_consecutive_reward_lines_stay_together(self) -> None:
        assert_canonical(
            source(
                """
                grpo 1

                import "common.grpo"
                import "more.grpo"

                reward correct = math_equal(boxed(output), answer)
                reward concise = 0.9 * correct + 0.1 * (length(output) < 4000)

                reward judged {
                  judge  = m
                  rubric = "fair"
                }
                """
            )
        )

    def test_expressions_get_only_the_parentheses_they_need(self) -> None:
        text = "grpo 1\nreward r = ((a + (b * c)) - (d - e)) / ((f)) or (not (g == h)) and (if x then y else z) == 1"
        assert fmt(text) == (
            "grpo 1\n\nreward r = (a + b * c - (d - e)) / f or not g == h and (if x then y else z) == 1\n"
        )

    def test_multiline_strings_are_reindented(self) -> None:
        text = 'grpo 1\ntask t { prompt = """\n          Solve:\n            {{ question }}\n          """ }'
        assert fmt(text) == source(
            '''
            grpo 1

            task t {
              prompt = """
                Solve:
                  {{ question }}
                """
            }
            '''
        )

    def test_literals_keep_their_spelling(self) -> None:
        assert_canonical('grpo 1\n\nmodel m {\n  a = 1_000\n  b = 1e-6\n  c = "\\boxed{} \\\\boxed{}"\n  d = -2\n}\n')


class TestComments:
    def test_own_line_and_trailing_comments_are_kept(self) -> None:
        text = source(
            """
            # file comment
            grpo 1 # version
            # about m
            model m { name = "x"   # the name
              # before ops
              ops = [add,   # first
                modify]
              price { input = 1 } # usd
              # last words
            } # end of m
            # the end
            """
        )
        assert fmt(text) == source(
            """
            # file comment
            grpo 1  # version

            # about m
            model m {
              name = "x"  # the name
              # before ops
              # first
              ops  = [add, modify]
              price { input = 1 }  # usd
              # last words
            }  # end of m

            # the end
            """
        )

    def test_trailing_comments_align_within_a_block(self) -> None:
        assert_canonical(
            source(
                """
                grpo 1

                policy p {
                  ops      = [add, modify]  # keep is implied
                  capacity = 48             # experiences
                  style    = "short"
                }
                """
            )
        )

    def test_comment_characters_inside_strings_are_not_comments(self) -> None:
        assert_canonical('grpo 1\n\nmodel m {\n  name = "# not a comment"\n}\n')


class TestIdempotence:
    def test_full_example(self) -> None:
        program = parse_file(FIXTURES / "full.grpo")
        once = format_program(program)
        reparsed = parse(once, program.path)
        assert reparsed == program
        assert [c.text for c in reparsed.comments] == [c.text for c in program.comments]
        assert format_program(reparsed) == once

    @pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.grpo")))
    def test_every_fixture(self, name: str) -> None:
        program = parse_file(FIXTURES / name)
        once = format_program(program)
        assert parse(once, program.path) == program
        assert format_program(parse(once, program.path)) == once


class TestToSource:
    def test_program_built_in_python(self) -> None:
        program = ast.Program(
            "<python>",
            ast.Header(1),
            (ast.Import(ast.String("common.grpo")),),
            (
                ast.Model("m", (ast.Attribute("name", ast.String('say "hi"\\n')),)),
                ast.Task(
                    "t",
                    (
                        ast.Attribute("model", ast.Name("m")),
                        ast.Attribute("prompt", ast.String("Solve:\n  {{ question }}\n")),
                        ast.Attribute("temperature", ast.Number(0.1)),
                        ast.Attribute("budget", ast.Block((ast.Attribute("usd", ast.Number(-2)),))),
                    ),
                ),
                ast.Reward(
                    "r",
                    (),
                    expression=ast.Binary(
                        "*",
                        ast.Binary("+", ast.Number(1), ast.Name("x")),
                        ast.Conditional(ast.Bool(True), ast.Null(), ast.Metric("pass", 3)),
                    ),
                ),
            ),
        )
        text = format_program(program)
        assert text == source(
            '''
            grpo 1

            import "common.grpo"

            model m {
              name = "say \\"hi\\"\\\\n"
            }

            task t {
              model       = m
              prompt      = """
                Solve:
                  {{ question }}

                """
              temperature = 0.1
              budget { usd = -2 }
            }

            reward r = (1 + x) * (if true then null else pass@3)
            '''
        )
        assert parse(text, "<python>") == program

    @pytest.mark.parametrize(
        "value",
        ["  indented first\nsecond", "a\n   \nb", "tab\tand\nnewline", 'quotes """ and \\u{41}\n\\', "trailing \n  "],
    )
    def test_strings_that_cannot_be_a_block_still_round_trip(self, value: str) -> None:
        program = ast.Program("<python>", ast.Header(1), (), (ast.Task("t", (ast.Attribute("p", ast.String(value)),)),))
        reparsed = parse(format_program(program), "<python>")
        assert reparsed == program

    @pytest.mark.parametrize(
        "bad",
        [ast.Name("not a name"), ast.Name("then"), ast.Number(float("inf")), ast.Binary("**", ast.Null(), ast.Null())],
    )
    def test_trees_no_source_could_produce_are_refused(self, bad: ast.Expr) -> None:
        program = ast.Program("<python>", ast.Header(1), (), (ast.Reward("r", (), expression=bad),))
        with pytest.raises(ValueError):
            format_program(program)


class TestFmtCommand:
    def test_rewrites_in_place(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "p.grpo"
        path.write_text("grpo 1\nmodel m{name=\"x\"}")
        assert main(["fmt", str(path)]) == 0
        assert path.read_text() == 'grpo 1\n\nmodel m {\n  name = "x"\n}\n'
        assert main(["fmt", "--check", str(path)]) == 0
        assert capsys.readouterr().out == ""

    def test_check_lists_files_that_would_change(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        messy, tidy = tmp_path / "messy.grpo", tmp_path / "tidy.grpo"
        messy.write_text("grpo 1 model m {}")
        tidy.write_text("grpo 1\n\nmodel m {}\n")
        assert main(["fmt", "--check", str(messy), str(tidy)]) == 1
        assert capsys.readouterr().out == f"would reformat {messy}\n"
        assert messy.read_text() == "grpo 1 model m {}"

    def test_syntax_error_exits_1(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "bad.grpo"
        path.write_text("grpo 1\nmodel m { name }")
        assert main(["fmt", str(path)]) == 1
        assert "error[E0001]: expected `=` or `{` after the attribute name" in capsys.readouterr().out
        assert "\x1b[" not in capsys.readouterr().out

    def test_missing_file_is_wrong_usage(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["fmt", str(tmp_path / "nope.grpo")]) == 2
        assert "no such file" in capsys.readouterr().err

    def test_unknown_subcommand_and_missing_argument_are_wrong_usage(self) -> None:
        assert main(["frobnicate"]) == 2
        assert main(["fmt"]) == 2
