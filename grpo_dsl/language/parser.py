"""Parse `.grpo` source into the syntax tree.

`parse(text)` runs the LALR parser of `grammars/grpo.lark` and builds the AST;
every syntax problem becomes a `ProgramError` whose message is phrased in the
language's words ("expected `=` or `{` after the attribute name"), chosen by
matching the error against labelled examples of wrong programs.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from grpo_dsl.core.resources import resource_path
from grpo_dsl.language.ast import DECLARATION_KINDS, Program, Span
from grpo_dsl.language.diagnostics import Diagnostic, ProgramError
from grpo_dsl.language.literals import LANGUAGE_VERSIONS
from grpo_dsl.language.transform import Builder, build

__all__ = ["parse", "parse_bytes", "parse_file", "SYNTAX_EXAMPLES"]

_OPTIONS = {"start": "program", "parser": "lalr", "lexer": "contextual", "strict": True, "maybe_placeholders": False}


@functools.cache
def _grammar() -> str:
    return resource_path("grammars/grpo.lark").read_text(encoding="utf-8")


@functools.cache
def _lark() -> Lark:
    """The parser: its callbacks build the syntax tree while it parses."""
    builder = Builder()
    return Lark(
        _grammar(),
        **_OPTIONS,
        keep_all_tokens=True,
        transformer=builder,
        lexer_callbacks={"COMMENT": builder.comment},
    )


@functools.cache
def _tree_lark() -> Lark:
    """A parser into Lark trees with positions, to place the error of a program
    nested too deeply."""
    return Lark(_grammar(), **_OPTIONS, propagate_positions=True)


def _build(text: str, path: str) -> Program:
    return build(lambda: _lark().parse(text), path=path, source=text, parse_tree=lambda: _tree_lark().parse(text))


# ------------------------------------------------------------------ messages

_KINDS = ", ".join(f"`{kind}`" for kind in DECLARATION_KINDS)
_VERSION = LANGUAGE_VERSIONS[-1]


def _in_block(*bodies: str) -> list[str]:
    """Examples inside a declaration, each as a first and as a later attribute."""
    return [f"grpo 1\nmodel m {{ {form}{body} }}" for body in bodies for form in ("", "a = 1\n", "a { b = 1 }\n")]


def _in_value(*values: str) -> list[str]:
    return _in_block(*(f"a = {value}" for value in values)) + [f"grpo 1\nreward r = {value}" for value in values]


# Labelled examples of wrong programs: an error made in the same parser state as
# one of these gets its message. Order matters: the first label that matches wins.
SYNTAX_EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (label, tuple(examples))
    for label, examples in [
        (
            f"expected the language version after `grpo`, as in `grpo {_VERSION}`",
            ["grpo", "grpo model m {}", "grpo x", "grpo {"],
        ),
        (
            "expected a file name in quotes after `import`",
            ["grpo 1\nimport", "grpo 1\nimport x", 'grpo 1\nimport "a.grpo"\nimport model'],
        ),
        (
            f"expected a declaration: {_KINDS}",
            [
                "grpo 1\nmodle m {}",
                "grpo 1\nmodel m {}\nmodle m {}",
                'grpo 1\nimport "a"\nmodle m {}',
                "grpo 1\nreward r = 1\nmodle m {}",
                "grpo 1\n=",
                "grpo 1\nmodel m {}\n=",
            ],
        ),
        (
            f"the header `grpo {_VERSION}` comes once, at the top of the file",
            ["grpo 1\ngrpo 1", "grpo 1\nmodel m {}\ngrpo 1", 'grpo 1\nimport "a"\ngrpo 1'],
        ),
        (
            "`import` comes before the declarations",
            ["grpo 1\nmodel m {}\nimport", 'grpo 1\nreward r = 1\nimport "a"'],
        ),
        (
            "unexpected `}`: no block is open here",
            ["grpo 1\n}", "grpo 1\nmodel m {}\n}", 'grpo 1\nimport "a"\n}', "grpo 1\nreward r = 1\n}"],
        ),
        *(
            (f"expected a name after `{kind}`", [f"grpo 1\n{kind} {{}}", f"grpo 1\nmodel m {{}}\n{kind} = 1"])
            for kind in DECLARATION_KINDS
        ),
        (
            "expected `=` or `{` after the reward name",
            ["grpo 1\nreward r", "grpo 1\nreward r 1", "grpo 1\nreward r model"],
        ),
        *(
            (f"expected `{{` after the {kind} name", [f"grpo 1\n{kind} m", f"grpo 1\n{kind} m a = 1"])
            for kind in DECLARATION_KINDS
            if kind != "reward"
        ),
        (
            "expected `=` or `{` after the attribute name",
            _in_block(
                'name "x"',
                "name 1",
                "name\n}",
                "name name",
                "name [",
                "name :",
                *(f"{keyword} 1" for keyword in ("grpo", "import", *DECLARATION_KINDS)),
            ),
        ),
        (
            "expected an attribute name or `}`",
            _in_block("=", "1", '"x"', "[", "(", ")", ":"),
        ),
        (
            "attributes are separated by spaces or newlines, not commas",
            _in_block("a = 1,", "a = x,", 'a = "s",', "a = [x],", "a = f(x),", "a { b = 1 },", "a = x + 1,"),
        ),
        (
            "expected a value after `=`",
            _in_value("}", "=", ",", ")", "]"),
        ),
        (
            "expected a value after the operator",
            _in_value(*(f"1 {op} {bad}" for op in ("+", "-", "*", "/", "==", "<", "and", "or") for bad in ("}", ")"))),
        ),
        ("expected a value after `not`", _in_value("not }", "not )")),
        ("comparisons cannot be chained: combine them with `and`", _in_value("a < b < c", "a == b != c")),
        ("expected `then` after the condition of `if`", _in_value("if a b", "if a }", "if a else b")),
        ("expected `else` after the value of `then`", _in_value("if a then b }", "if a then b c")),
        ("expected `,` or `]` in the list", _in_value("[a b]", "[1 2]", '["x" "y"]', "[a }")),
        ("expected `,` or `)` in the arguments", _in_value("f(a b)", "f(1 2)", "f(a }")),
        ("expected `)` to close the parentheses", _in_value("(a b)", "(1 2)", "(a", "(a }")),
        ("expected a value or `]`", _in_value("[,]", "[a,,]", "[}", "[a,")),
        ("expected a value or `)`", _in_value("f(,)", "f(a,,)", "f(}", "f(a,")),
    ]
)

_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "NUMBER": "a number",
    "METRIC": "a metric such as `pass@8`",
    "COMPARE": "a comparison",
    "$END": "the end of the file",
}
_CONTINUATIONS = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "COMPARE", "AND", "OR", "LPAR"})
_EXPRESSION_STARTS = {"NAME", "STRING", "NUMBER", "METRIC", "TRUE", "FALSE", "NULL", "LSQB", "LPAR", "IF", "NOT"}
_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "COMPARE", "AND", "OR"}


def _terminal_word(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    terminal = next((t for t in _lark().terminals if t.name == name), None)
    return f"`{terminal.pattern.value}`" if terminal is not None else name.lower()


def _expected_words(accepts: Iterable[str]) -> str:
    names = set(accepts)
    words: list[str] = []
    if len(names & _EXPRESSION_STARTS) > 3:
        words.append("a value")
        names -= _EXPRESSION_STARTS | {"MINUS", "LONG_STRING"}
    if len(names & _OPERATORS) > 3:
        words.append("an operator")
        names -= _OPERATORS
    if "NAME" in names:
        names = {n for n in names if n == "NAME" or not _terminal_word(n).strip("`").isalpha()}
    for name in sorted(names, key=lambda n: (n == "$END", _terminal_word(n))):
        word = _terminal_word(name)
        if word not in words:
            words.append(word)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type in ("STRING", "LONG_STRING"):
        return "string"
    if token.type == "NAME":
        return f"name `{token}`"
    if token.type == "NUMBER":
        return f"number `{token}`"
    return f"`{token}`"


@dataclass(frozen=True, slots=True)
class _Failure:
    """Where a parse failed: the parser state, and what could really have come next."""

    state: int
    choices: frozenset[str]
    expected: frozenset[str]

    @property
    def specific(self) -> bool:
        """True if the state's lookahead is exactly what this context accepts.

        LALR merges the states that follow a complete value, whatever encloses
        it; in those the lookahead is wider than what may really come next.
        """
        return self.choices == self.expected

    @property
    def context(self) -> frozenset[str]:
        """What could have come next, less what would only have continued a value."""
        return self.expected - _CONTINUATIONS


def _failure(error: UnexpectedInput) -> _Failure:
    parser = error.interactive_parser
    actions: dict[str, object] = parser.choices()  # type: ignore[no-untyped-call]
    accepts: set[str] = parser.accepts()  # type: ignore[no-untyped-call]
    choices = frozenset(name for name in actions if name.isupper())
    return _Failure(parser.parser_state.position, choices, frozenset(accepts))


@dataclass(frozen=True, slots=True)
class _Labels:
    by_token: dict[tuple[int, frozenset[str], str, str], str]
    by_state: dict[tuple[int, frozenset[str]], str]
    by_context: dict[frozenset[str], str]


@functools.cache
def _labels() -> _Labels:
    """Where each example of `SYNTAX_EXAMPLES` fails, computed once.

    This is the technique of Lark's `match_examples` (an exact token first, then
    the parser state and what it accepts), keyed on the state alone rather than
    the depth of the parser's stack so that an example also labels the same
    mistake nested deeper. After a complete value, where LALR merges states,
    the label is also found by what the context accepts next.
    """
    labels = _Labels({}, {}, {})
    for label, examples in SYNTAX_EXAMPLES:
        for example in examples:
            try:
                _build(example, "<example>")
            except UnexpectedInput as error:
                failure = _failure(error)
                state = (failure.state, failure.expected)
                if isinstance(error, UnexpectedToken):
                    labels.by_token.setdefault((*state, error.token.type, str(error.token)), label)
                labels.by_state.setdefault(state, label)
                if not failure.specific:
                    labels.by_context.setdefault(failure.context, label)
    return labels


def _label(error: UnexpectedInput, failure: _Failure) -> str | None:
    labels = _labels()
    state = (failure.state, failure.expected)
    if isinstance(error, UnexpectedToken):
        exact = labels.by_token.get((*state, error.token.type, str(error.token)))
        if exact is not None:
            return exact
    return labels.by_state.get(state) or labels.by_context.get(failure.context)


def _syntax_diagnostic(error: UnexpectedInput, path: str, text: str) -> Diagnostic:
    if isinstance(error, UnexpectedCharacters):
        return _character_diagnostic(error, path, text)
    assert isinstance(error, UnexpectedToken)
    token = error.token
    if token.type == "$END":
        line, column = (token.end_line or 1), (token.end_column or 1)
        span = Span(path, line, column, line, column, len(text), len(text))
    else:
        span = Span(
            path,
            token.line or 1,
            token.column or 1,
            token.end_line or 1,
            token.end_column or 1,
            token.start_pos or 0,
            token.end_pos or 0,
        )
    failure = _failure(error)
    label = _label(error, failure)
    hint = None
    if label is None:
        label = f"unexpected {_describe(token)}; expected {_expected_words(failure.expected)}"
    elif token.type == "$END" and label.startswith("expected"):
        label = f"unexpected end of file; {label}"
    elif label.startswith("expected a declaration") and token.type == "NAME":
        close = difflib.get_close_matches(str(token), list(DECLARATION_KINDS), n=1)
        hint = f"did you mean `{close[0]}`?" if close else None
    return Diagnostic("E0001", "error", label, span, hint)


def _character_diagnostic(error: UnexpectedCharacters, path: str, text: str) -> Diagnostic:
    line, column, start = error.line or 1, error.column or 1, error.pos_in_stream or 0
    char = text[start] if start < len(text) else ""
    hint = None
    if char == '"' and text[max(start - 2, 0) : start + 1] == '"""':
        message, column, start = 'unterminated string: `"""` is never closed', column - 2, start - 2
    elif char == '"':
        message = "unterminated string: expected `\"` before the end of the line"
        hint = 'use `"""` for text over several lines'
    else:
        shown = f"`{char}`" if char.isprintable() and not char.isspace() else f"U+{ord(char):04X}"
        failure = _failure(error)
        label = _label(error, failure) or f"expected {_expected_words(failure.expected)}"
        message = f"unexpected character {shown}; {label}"
    return Diagnostic("E0001", "error", message, Span(path, line, column, line, column + 1, start, start + 1), hint)


# ------------------------------------------------------------------- entry points


def parse(text: str, path: str = "<string>") -> Program:
    """Parse one `.grpo` file into a `Program`.

    Raises `ProgramError` (with `text` in its `sources`) for any syntax problem; no
    other exception escapes for any input.

    >>> parse('grpo 1\\nmodel m { name = "x" }').declarations[0].name
    'm'
    """
    try:
        return _build(text, path)
    except UnexpectedInput as error:
        raise ProgramError([_syntax_diagnostic(error, path, text)], {path: text}) from None


def parse_bytes(data: bytes, path: str = "<bytes>") -> Program:
    """Parse the bytes of a `.grpo` file; text that is not UTF-8 raises `ProgramError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = data[: error.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        span = Span(path, line, column, line, column + 1, error.start, error.start + 1)
        message = f"the file is not valid UTF-8 (byte 0x{data[error.start]:02X} at offset {error.start})"
        readable = data.decode("utf-8", errors="replace")
        raise ProgramError(
            [Diagnostic("E0002", "error", message, span, "save the file as UTF-8")], {path: readable}
        ) from None
    return parse(text.removeprefix("\ufeff"), path)


def parse_file(path: str | Path) -> Program:
    """Read and parse a `.grpo` file; unreadable or non-UTF-8 files raise `ProgramError`."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        message = f"cannot read `{name}`: {error.strerror or error}"
        raise ProgramError([Diagnostic("E0006", "error", message, Span(name, 0, 0, 0, 0))]) from None
    return parse_bytes(data, name)
