"""Parse `.grpo` source into the syntax tree.

`parse(text)` runs the LALR parser of `grammars/grpo.lark` and builds the AST;
every syntax problem becomes a `ProgramError` whose message is phrased in the
language's words ("expected `=` or `{` after the attribute name"), chosen by
matching the error against labelled examples of wrong programs. After a syntax
error the parser resynchronises at the next declaration, attribute or `}` and
goes on (`_Recovery`), so one parse reports every syntax error of a file.
"""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import BasicLexer, LexerState, LineCounter, PatternStr
from lark.parsers.lalr_analysis import Shift
from lark.parsers.lalr_interactive_parser import InteractiveParser
from lark.parsers.lalr_parser_state import ParseConf
from lark.utils import TextSlice

from grpo_dsl.core.resources import resource_path
from grpo_dsl.language.ast import DECLARATION_KINDS, Program, Span
from grpo_dsl.language.diagnostics import Diagnostic, ProgramError
from grpo_dsl.language.literals import LANGUAGE_VERSIONS
from grpo_dsl.language.transform import Builder, build

__all__ = ["MAX_SYNTAX_ERRORS", "SYNTAX_EXAMPLES", "parse", "parse_bytes", "parse_file", "parse_partial", "scan", "word_types"]

MAX_SYNTAX_ERRORS = 50
"""Syntax errors reported for one file before the parser gives up."""

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


def _tree(text: str) -> Any:
    return _tree_lark().parse(text)


def _build(text: str, path: str) -> tuple[Program | None, tuple[Diagnostic, ...]]:
    """Parse without recovery: the first syntax error raises Lark's `UnexpectedInput`."""
    return build(lambda: (_lark().parse(text), ()), path=path, source=text, parse_tree=lambda: _tree(text))


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
                *(f"grpo 1\n{kind} x {{}}\nmodle m {{}}" for kind in DECLARATION_KINDS),
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
            [
                "grpo 1\n}",
                'grpo 1\nimport "a"\n}',
                "grpo 1\nreward r = 1\n}",
                *(f"grpo 1\n{kind} x {{}}\n}}" for kind in DECLARATION_KINDS),
            ],
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


# ------------------------------------------------------------------- recovery

_DECLARATION_KEYWORDS = frozenset(kind.upper() for kind in DECLARATION_KINDS)


@functools.cache
def word_types() -> frozenset[str]:
    """The token types that are words: names and every keyword."""
    keywords = {t.name for t in _lark().terminals if isinstance(t.pattern, PatternStr) and t.pattern.value.isalpha()}
    return frozenset({"NAME", *keywords})


@dataclass(frozen=True, slots=True)
class _Resume:
    """A place the parse can go on from: the offset of a token, and the token types
    that a parser state must accept there (the token and the one after it).

    An inexact point (a misspelt declaration keyword) is accepted only as the place
    of the next error, so it is never the token that failed.
    """

    offset: int
    types: tuple[tuple[str, ...], ...]
    exact: bool = True


def _is_word(token: Token) -> bool:
    return token.type in word_types()


def _resume_at(token: Token, after: Token | None, first_on_line: bool) -> _Resume | None:
    """The resynchronisation point that `token` (followed by `after`) starts, if any:
    a declaration that starts a line (`model m`, or `modle m` at its first column),
    an import, an attribute (`name =`, `price {`) or `}`."""
    start = token.start_pos or 0
    if token.type == "RBRACE":
        return _Resume(start, (("RBRACE",),))
    if after is None:
        return None
    if token.type in _DECLARATION_KEYWORDS and _is_word(after) and first_on_line:
        return _Resume(start, ((token.type,), ("NAME",)))
    if token.type == "IMPORT" and after.type in ("STRING", "LONG_STRING"):
        return _Resume(start, (("IMPORT",), (after.type,)))
    if _is_word(token) and after.type in ("EQUAL", "LBRACE"):
        # The contextual lexer reads a keyword in a key's place as a name.
        return _Resume(start, (tuple(dict.fromkeys((token.type, "NAME"))), (after.type,)))
    if token.type == "NAME" and token.column == 1 and after.type == "NAME":
        return _Resume(start, (tuple(sorted(_DECLARATION_KEYWORDS)), ("NAME",)), exact=False)
    return None


def _lexer_at(text: str, offset: int) -> LineCounter:
    """A line counter of Lark's lexer placed at `offset`."""
    counter = LineCounter("\n")  # type: ignore[no-untyped-call]
    counter.char_pos = offset
    counter.line = text.count("\n", 0, offset) + 1
    counter.line_start_pos = text.rfind("\n", 0, offset) + 1
    counter.column = offset - counter.line_start_pos + 1
    return counter


def _accepts(conf: ParseConf[Any], stack: list[Any], types: tuple[tuple[str, ...], ...]) -> bool:
    """True if the LALR automaton, in `stack`, accepts a token of one of `types[0]`,
    then one of `types[1]`, ... Only the parse table is used: no callback runs."""
    for choices in types:
        for kind in choices:
            trial = _fed(conf, stack, kind)
            if trial is not None:
                stack = trial
                break
        else:
            return False
    return True


def _fed(conf: ParseConf[Any], stack: list[Any], kind: str) -> list[Any] | None:
    """The state stack after shifting a token of type `kind` (after reaching the end
    state, for `$END`), or None if it is refused."""
    stack = list(stack)
    while True:
        if kind == "$END" and stack[-1] == conf.end_state:
            return stack
        action = conf.states[stack[-1]].get(kind)
        if action is None:
            return None
        operation, argument = action
        if operation is Shift:
            return [*stack, argument]
        size = len(argument.expansion)
        if size:
            del stack[-size:]
        stack.append(conf.states[stack[-1]][argument.origin.name][1])


@dataclass
class _Recovery:
    """Lark's `on_error` callback: report the syntax error, then resynchronise.

    Panic mode over the LALR stacks: from the offending token on, the first token
    that starts a declaration, an import or an attribute, or is a `}`, and that
    some prefix of the parser's stack accepts, is where the parse goes on; the
    stack is cut back to the longest such prefix that ends with a whole node or
    a block's `{`, dropping the half-built nodes above it. A file gets at most
    `MAX_SYNTAX_ERRORS` errors.
    """

    text: str
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    last_offset: int = -1

    def __call__(self, error: UnexpectedInput) -> bool:
        if isinstance(error, UnexpectedToken):
            at_end = error.token.type == "$END"
            offset = len(self.text) if at_end else (error.token.start_pos or 0)
        else:
            at_end, offset = False, error.pos_in_stream or 0
        if offset <= self.last_offset:
            return False  # the parse met an error it already reported: stop rather than loop
        self.diagnostics.append(_syntax_diagnostic(error, self.path, self.text))
        if len(self.diagnostics) >= MAX_SYNTAX_ERRORS:
            return False
        self.last_offset = offset
        parser = error.interactive_parser
        if at_end:
            # Close the parse after the last whole declaration, so that the
            # declarations before an unclosed block still make a program.
            return self._resynchronise(parser, [_Resume(offset, (("$END",),))])
        # The unexpected token may itself be where the parse goes on; the rest of a
        # line with an unterminated string is read as that string.
        candidates = self._candidates(offset)
        return self._resynchronise(parser, (c for c in candidates if c.exact or c.offset > offset))

    def _resynchronise(self, parser: InteractiveParser, candidates: Iterable[_Resume]) -> bool:
        """Go on from the first of `candidates` that a cut of the parser's stack accepts."""
        state = parser.parser_state
        lexer = parser.lexer_thread.state
        assert lexer is not None
        for resume in candidates:
            for cut in range(len(state.state_stack), 0, -1):
                # Cut only between whole nodes, or just inside a block's `{`: a
                # cut after a bare keyword or name would graft the rest of the
                # file onto a half-written declaration.
                top = state.value_stack[cut - 2] if cut > 1 else None
                if isinstance(top, Token) and top.type != "LBRACE":
                    continue
                if _accepts(state.parse_conf, state.state_stack[:cut], resume.types):
                    del state.state_stack[cut:]
                    del state.value_stack[cut - 1 :]
                    lexer.line_ctr = _lexer_at(self.text, resume.offset)
                    return True
        return False

    def _candidates(self, offset: int) -> Iterable[_Resume]:
        """Resynchronisation points, nearest first: the declaration keyword just before
        the error if it starts its line at the first column (`task t {` read as an
        attribute because the block above lacks its `}`), then every point from the
        error on."""
        line_start = self.text.rfind("\n", 0, offset) + 1
        tokens = scan(self.text, line_start)
        first, second = next(tokens, None), next(tokens, None)
        if first is not None and first.type in _DECLARATION_KEYWORDS and first.start_pos == line_start:
            if second is not None and second.start_pos == offset and _is_word(second):
                yield _Resume(line_start, ((first.type,), ("NAME",)))
        tokens = scan(self.text, offset)
        current = next(tokens, None)
        while current is not None:
            after = next(tokens, None)
            resume = _resume_at(current, after, self._starts_line(current))
            if resume is not None:
                yield resume
            current = after

    def _starts_line(self, token: Token) -> bool:
        start = token.start_pos or 0
        return not self.text[self.text.rfind("\n", 0, start) + 1 : start].strip()


@functools.cache
def _scanner() -> BasicLexer:
    """Lark's lexer of every terminal, without the comment callback of a parse (a
    scan during a parse must not add the comments it reads to the parse's)."""
    conf = copy.copy(_lark().lexer_conf)
    conf.callbacks = {}
    conf.skip_validation = True
    return BasicLexer(conf)


def scan(text: str, offset: int = 0) -> Iterator[Token]:
    """The tokens of `text` from `offset`, read by the lexer of every terminal, in a
    file that may not parse: a character no terminal matches is skipped, and a `"`
    that opens no string opens an `UNCLOSED_STRING` to the end of its line (after
    `""`, to the end of the file), as the user sees it while typing."""
    lexer = _scanner()
    state = LexerState(TextSlice.cast_from(text), _lexer_at(text, offset))
    while True:
        try:
            yield lexer.next_token(state)
        except EOFError:
            return
        except UnexpectedCharacters as error:
            start = error.pos_in_stream or 0
            if text[start] != '"':
                state.line_ctr.feed(text[start])
                continue
            line_end = text.find("\n", start)
            end = len(text) if line_end < 0 or text.startswith('"""', start - 2) else line_end
            token = Token("UNCLOSED_STRING", text[start:end], start, error.line, error.column, end_pos=end)
            state.line_ctr = _lexer_at(text, end)
            yield token


# ------------------------------------------------------------------- entry points


def parse_partial(text: str, path: str = "<string>") -> tuple[Program | None, tuple[Diagnostic, ...]]:
    """Parse as much of one `.grpo` file as can be parsed: the program, without the
    declarations cut short by a syntax error, and every problem found, in source
    order. The program is None when the parse could not reach the end of the file
    (a multi-line string never closed, too many errors) or it is nested too deeply.

    This is what an editor needs while a file is being typed; `parse` is the
    all-or-nothing form.

    >>> program, problems = parse_partial('grpo 1\\nmodel m { name "x" }\\ntask t {}')
    >>> [d.name for d in program.declarations], [d.message for d in problems]
    (['m', 't'], ['expected `=` or `{` after the attribute name'])
    """
    recovery = _Recovery(text, path)

    def run() -> tuple[object | None, list[Diagnostic]]:
        try:
            return _lark().parse(text, on_error=recovery), recovery.diagnostics
        except UnexpectedInput:
            # Recovery gave up (past `MAX_SYNTAX_ERRORS`, or in a string that never
            # ends); the error that stopped it is already reported.
            return None, recovery.diagnostics

    return build(run, path=path, source=text, parse_tree=lambda: _tree(text))


def parse(text: str, path: str = "<string>") -> Program:
    """Parse one `.grpo` file into a `Program`.

    Raises `ProgramError` (with `text` in its `sources`) listing every syntax
    problem, in source order; no other exception escapes for any input.

    >>> parse('grpo 1\\nmodel m { name = "x" }').declarations[0].name
    'm'
    """
    program, problems = parse_partial(text, path)
    if problems or program is None:
        raise ProgramError(problems, {path: text})
    return program


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
