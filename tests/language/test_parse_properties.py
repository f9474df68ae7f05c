"""Properties of the front end over generated and mutated programs.

Parsing either succeeds or raises `ProgramError`, whatever the input; formatting
a program that parses gives the same tree back and is a fixed point; recovering
from syntax errors keeps the first error as it was and reports the rest in order.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark.exceptions import UnexpectedInput
from lark.lexer import PatternStr

from grpo_dsl.language.ast import Program
from grpo_dsl.language.diagnostics import ProgramError
from grpo_dsl.language.fmt import format_program
from grpo_dsl.language.parser import (
    _build,
    _lark,
    _syntax_diagnostic,
    parse,
    parse_bytes,
)

FIXTURES = sorted((Path(__file__).resolve().parents[1] / "fixtures").glob("*.grpo"))


def _spaced_tokens() -> dict[str, st.SearchStrategy[str]]:
    """Every terminal followed by a separator, so generated programs mostly lex as intended."""
    strategies: dict[str, st.SearchStrategy[str]] = {}
    for terminal in _lark().terminals:
        pattern = terminal.pattern
        if isinstance(pattern, PatternStr):
            token = st.just(pattern.value)
        else:
            token = st.from_regex(pattern.to_regexp(), fullmatch=True)
        separator = "\n" if terminal.name == "COMMENT" else " "
        strategies[terminal.name] = st.tuples(token, st.just(separator)).map("".join)
    return strategies


RAW_GENERATED = from_lark(_lark(), start="program")
GENERATED = st.lists(from_lark(_lark(), start="declaration", explicit=_spaced_tokens()), max_size=4).map(
    lambda declarations: "grpo 1\n" + "\n".join(declarations)
)


def parse_or_none(text: str) -> Program | None:
    try:
        return parse(text, "generated.grpo")
    except ProgramError as error:
        assert error.diagnostics
        assert error.sources == {"generated.grpo": text}
        return None


def assert_formatting_round_trips(program: Program) -> None:
    once = format_program(program)
    again = parse(once, program.path)
    assert again == program
    assert format_program(again) == once


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RAW_GENERATED)
def test_strings_of_the_grammar_parse_or_raise_program_error(text: str) -> None:
    parse_or_none(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(GENERATED)
def test_generated_programs_format_to_the_same_tree(text: str) -> None:
    program = parse_or_none(text)
    assume(program is not None)
    assert program is not None
    assert_formatting_round_trips(program)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(FIXTURES)).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(("insert", "delete", "replace")))
        if kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=3))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            data[position : position + 1] = draw(st.binary(min_size=1, max_size=1))
    return bytes(data)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixture())
def test_mutated_programs_raise_only_program_error_and_format_when_valid(data: bytes) -> None:
    try:
        program = parse_bytes(data, "mutated.grpo")
    except ProgramError as error:
        assert error.diagnostics
        assert all(d.code.startswith("E00") for d in error.diagnostics)
        return
    assert_formatting_round_trips(program)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixture())
def test_recovery_keeps_the_first_syntax_error_and_reports_the_rest_in_order(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        _build(text, "mutated.grpo")
    except UnexpectedInput as error:
        first = _syntax_diagnostic(error, "mutated.grpo", text)
    except ProgramError:
        return
    else:
        return
    try:
        parse(text, "mutated.grpo")
    except ProgramError as error:
        found = error.diagnostics
    syntax = [d for d in found if d.code == "E0001"]
    assert syntax[0] == first
    starts = [d.span.start for d in found]
    assert starts == sorted(starts)
    assert len(set(found)) == len(found)
    assert all(0 <= d.span.start <= len(text) for d in found)
