"""The built-in functions of reward expressions."""

from __future__ import annotations

import math
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from math_verify import parse, verify  # type: ignore[import-untyped]

from grpo_dsl.language.builtins import (
    BUILTINS,
    READ_NAMES,
    RewardError,
    as_text,
    boxed,
    clip,
    contains,
    exact,
    json_field,
    last_number,
    length,
    lower,
    matches,
    math_equal,
    maximum,
    minimum,
    normalized_exact,
    numeric_equal,
    strip,
)


class TestRegistry:
    def test_names_are_the_language_reference_set(self) -> None:
        assert set(BUILTINS) == {
            "exact", "normalized_exact", "numeric_equal", "math_equal", "contains", "matches", "boxed",
            "last_number", "json_field", "length", "lower", "strip", "min", "max", "clip",
        }

    def test_each_entry_is_named_by_its_key_and_documented(self) -> None:
        for name, builtin in BUILTINS.items():
            assert builtin.name == name
            assert builtin.doc
            assert builtin.max_args is None or builtin.min_args <= builtin.max_args

    def test_arity_errors(self) -> None:
        assert BUILTINS["clip"].arity_error(3) is None
        assert BUILTINS["clip"].arity_error(2) == "clip() takes 3 argument(s), got 2"
        assert BUILTINS["numeric_equal"].arity_error(4) == "numeric_equal() takes 2 to 3 argument(s), got 4"
        assert BUILTINS["max"].arity_error(7) is None
        assert BUILTINS["max"].arity_error(0) == "max() takes at least 1 argument(s), got 0"

    def test_read_names(self) -> None:
        assert READ_NAMES == ("output", "tokens", "tool_calls")


# Examples documented by math-verify: its README (sets) and the docstrings of
# `parse` (a fraction in LaTeX and in plain text) and `verify` (1/3 against 0.333333).
DOCUMENTED = [
    ("${1,2,3,4}$", "${1,3} \\cup {2,4}$", True),
    ("The answer is 1/2", "The answer is $\\frac{1}{2}$", True),
    ("0.333333", "$\\frac{1}{3}$", True),
]
# Further pairs on which math_equal must agree with math-verify called directly.
AGREEMENT = [
    ("\\frac{1}{2}", "0.5"),
    ("50\\%", "\\frac{1}{2}"),
    ("$(1,2]$", "$(1,2]$"),
    ("$[1,2)$", "$(1,2]$"),
    ("\\sqrt{8}", "2\\sqrt{2}"),
    ("x^2 + 2x + 1", "(x+1)^2"),
    ("3", "4"),
    ("-7", "-7.0"),
    ("\\{1, 2\\}", "\\{2, 1\\}"),
]


def _math_verify(answer: str, gold: str) -> bool:
    def expressions(text: str) -> Any:
        return parse(text) or parse(f"${text}$")

    return bool(verify(expressions(gold), expressions(answer)))


class TestMathEqual:
    @pytest.mark.parametrize(("answer", "gold", "documented"), DOCUMENTED)
    def test_documented_examples(self, answer: str, gold: str, documented: bool) -> None:
        assert math_equal(answer, gold) is documented
        assert _math_verify(answer, gold) is documented

    @pytest.mark.parametrize(("answer", "gold"), AGREEMENT)
    def test_agrees_with_math_verify(self, answer: str, gold: str) -> None:
        assert math_equal(answer, gold) is _math_verify(answer, gold)

    def test_numbers_from_data_are_compared_as_text(self) -> None:
        assert math_equal("\\frac{84}{2}", 42) is True
        assert math_equal(last_number("so it is 42."), "42") is True

    @pytest.mark.parametrize("empty", ["", None, "   "])
    def test_empty_side_is_false(self, empty: str | None) -> None:
        assert math_equal(empty, "1") is False
        assert math_equal("1", empty) is False

    def test_other_types_are_total(self) -> None:
        assert math_equal([1, 2], {"a": 1}) is False


class TestNumericEqual:
    @given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False),
           st.floats(min_value=0, max_value=10))
    def test_symmetric(self, a: float, b: float, tol: float) -> None:
        assert numeric_equal(a, b, tol) == numeric_equal(b, a, tol)

    @given(st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=0, max_value=10))
    def test_reflexive(self, a: float, tol: float) -> None:
        assert numeric_equal(a, a, tol)

    @given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0, 1), st.floats(0, 1))
    def test_tolerance_is_monotone(self, a: float, b: float, tol: float, extra: float) -> None:
        if numeric_equal(a, b, tol):
            assert numeric_equal(a, b, tol + extra)

    @given(st.integers(-10**12, 10**12))
    def test_texts_with_thousands_separators(self, n: int) -> None:
        assert numeric_equal(f"{n:,}", n, 0)

    def test_default_tolerance_and_fractions(self) -> None:
        assert numeric_equal("0.1", 0.1000000001)
        assert not numeric_equal(0.1, 0.11)
        assert numeric_equal("3/4", 0.75, 0)
        assert numeric_equal(True, 1, 0)

    @pytest.mark.parametrize("other", ["abc", None, [1], "", "nan", float("nan"), float("inf")])
    def test_non_numbers_are_not_equal(self, other: object) -> None:
        assert numeric_equal(other, 1) is False  # type: ignore[arg-type]

    def test_negative_tolerance_is_an_error(self) -> None:
        with pytest.raises(RewardError, match="tolerance >= 0"):
            numeric_equal(1, 1, -1)


balanced = st.recursive(
    st.text(st.characters(exclude_characters="{}\\"), max_size=8),
    lambda inner: st.tuples(inner, inner, inner).map(lambda t: f"{t[0]}{{{t[1]}}}{t[2]}"),
    max_leaves=8,
)


class TestBoxed:
    @given(st.text(max_size=30), balanced, st.text(st.characters(exclude_characters="\\"), max_size=30))
    def test_round_trips_an_inserted_box(self, before: str, content: str, after: str) -> None:
        assert boxed(f"{before}\\boxed{{{content}}}{after}") == content

    def test_returns_the_last(self) -> None:
        assert boxed("\\boxed{1} then \\boxed{\\frac{2}{3}}.") == "\\frac{2}{3}"

    def test_nested_and_escaped_braces(self) -> None:
        assert boxed("\\boxed{\\{1, \\{2\\}\\}}") == "\\{1, \\{2\\}\\}"
        assert boxed("\\boxed{a{b{c}}d}") == "a{b{c}}d"

    def test_unclosed_last_box_falls_back_to_the_previous(self) -> None:
        assert boxed("\\boxed{7} and \\boxed{8") == "7"

    @pytest.mark.parametrize("text", ["", "no box", "\\boxed{", None, 42])
    def test_none(self, text: object) -> None:
        assert boxed(text) == ""  # type: ignore[arg-type]


DECIMAL_DIGITS: tuple[Literal["Nd"]] = ("Nd",)
no_digits = st.text(st.characters(exclude_categories=DECIMAL_DIGITS), max_size=40)


class TestLastNumber:
    @given(no_digits, st.integers(-10**15, 10**15))
    def test_finds_an_appended_integer(self, text: str, n: int) -> None:
        assert last_number(f"{text} {n}") == n

    @given(no_digits, st.floats(allow_nan=False, allow_infinity=False))
    def test_finds_an_appended_float(self, text: str, x: float) -> None:
        assert last_number(f"{text} {x!r}") == x

    @given(no_digits, st.integers(-10**9, 10**9))
    def test_thousands_separators(self, text: str, n: int) -> None:
        assert last_number(f"{text} {n:,} dollars") == n

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("x = -5", -5),
            ("pages 3-5", 5),
            ("it is 3/4.", 0.75),
            ("50%", 50),
            ("−2.5", -2.5),
            ("1e-3", 0.001),
            ("2 eggs and 3eggs", 3),
            ("1,2,3", 3),
            ("none", None),
            ("", None),
        ],
    )
    def test_examples(self, text: str, expected: float | None) -> None:
        assert last_number(text) == expected

    def test_numbers_pass_through(self) -> None:
        assert last_number(7) == 7
        assert last_number(None) is None


class TestJsonField:
    def test_object_inside_prose_and_fences(self) -> None:
        text = 'Sure!\n```json\n{"a": {"b": [10, {"c": "x"}]}}\n```\nDone.'
        assert json_field(text, "a.b.1.c") == "x"
        assert json_field(text, "a.b.0") == 10

    def test_first_object_that_has_the_path(self) -> None:
        assert json_field('{"x": 1} and {"y": 2}', "y") == 2

    @pytest.mark.parametrize("text", ["", "no json", "{broken", "[" * 50_000, '{"a": 1}', None])
    def test_missing_is_null(self, text: str | None) -> None:
        assert json_field(text, "b.c") is None

    def test_whole_text(self) -> None:
        assert json_field('{"score": 0.5}', "score") == 0.5


class TestTextFunctions:
    def test_exact_compares_text_forms(self) -> None:
        assert exact("42", 42)
        assert exact(2.0, "2")
        assert not exact(" 42", "42")
        assert exact(None, "")
        assert exact(True, "true")

    def test_normalized_exact(self) -> None:
        assert normalized_exact("  The   ANSWER is Paris. ", "the answer is paris")
        assert normalized_exact("$x+1$", "x+1")
        assert normalized_exact("ｆｕｌｌ", "full")
        assert not normalized_exact("paris", "london")

    def test_contains_and_matches(self) -> None:
        assert contains("hello world", "o w")
        assert not contains("hello", "z")
        assert contains(["a", 1], "1")
        assert matches("answer: 42", r"answer:\s*\d+")
        assert not matches("answer: x", r"^\d+$")

    def test_invalid_regex_is_an_error(self) -> None:
        with pytest.raises(RewardError, match="invalid regular expression"):
            matches("x", "(")

    def test_length_lower_strip(self) -> None:
        assert length("héllo") == 5
        assert length([1, 2, 3]) == 3
        assert length(None) == 0
        assert lower("ÀB") == "àb"
        assert strip("  a b \n") == "a b"
        assert as_text({"b": 1, "a": [1.5]}) == '{"a": [1.5], "b": 1}'


class TestNumberFunctions:
    def test_min_max(self) -> None:
        assert minimum(3, 1.5, True) == 1
        assert maximum(3, "4", 2) == 4
        assert maximum([1, 9, 2]) == 9

    @pytest.mark.parametrize("args", [(), ([],), ("abc", 1), (None,)])
    def test_min_max_need_numbers(self, args: tuple[object, ...]) -> None:
        with pytest.raises(RewardError):
            minimum(*args)  # type: ignore[arg-type]

    @given(st.floats(-1e9, 1e9), st.floats(-1e9, 1e9), st.floats(0, 1e9))
    def test_clip_stays_in_bounds(self, x: float, lo: float, width: float) -> None:
        hi = lo + width
        result = clip(x, lo, hi)
        assert lo <= result <= hi
        assert result == x or not (lo <= x <= hi)

    def test_clip_needs_ordered_bounds(self) -> None:
        with pytest.raises(RewardError, match="lo <= hi"):
            clip(1, 2, 0)
        assert math.isclose(clip("0.5", 0, 1), 0.5)
