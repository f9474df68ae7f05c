"""Build the syntax tree of `grpo_dsl.language.ast` while Lark parses.

`Builder` has one callback per grammar rule, which Lark's LALR parser calls at
each reduction (`Lark(transformer=Builder(), keep_all_tokens=True)`), so no
intermediate parse tree is made. `build` runs such a parse and returns frozen
dataclasses with spans: this is where Lark stops, and no module downstream of it
imports `lark`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from lark import Token, Tree

from grpo_dsl.language import ast
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.literals import (
    LANGUAGE_VERSIONS,
    RESERVED_WORDS,
    LiteralError,
    decode_number,
    decode_string,
)

__all__ = ["MAX_DEPTH", "Builder", "build"]

MAX_DEPTH = 100


@dataclass(frozen=True, slots=True)
class _Grouped:
    """An expression in parentheses: the enclosing node starts or ends with them."""

    expr: ast.Expr
    span: ast.Span


_Node = ast.Expr | _Grouped | ast.Block | ast.Attribute | ast.Header | ast.Import | ast.Decl
_Child = _Node | Token


@dataclass
class _Parse:
    """What one parse collects besides the tree."""

    path: str
    source: str
    comments: list[Token] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


_current: ContextVar[_Parse] = ContextVar("grpo_parse")


def _token_span(path: str, token: Token) -> ast.Span:
    return ast.Span(
        path,
        token.line or 1,
        token.column or 1,
        token.end_line or token.line or 1,
        token.end_column or token.column or 1,
        token.start_pos or 0,
        token.end_pos or 0,
    )


def _between(path: str, first: _Child, last: _Child) -> ast.Span:
    """From the start of `first` to the end of `last` (parentheses included), where
    Lark's `propagate_positions` places a rule."""
    if isinstance(first, Token):
        line, column, start = first.line or 1, first.column or 1, first.start_pos or 0
    else:
        line, column, start = first.span.line, first.span.column, first.span.start
    if isinstance(last, Token):
        end_line, end_column, end = last.end_line or 1, last.end_column or 1, last.end_pos or 0
    else:
        end_line, end_column, end = last.span.end_line, last.span.end_column, last.span.end
    return ast.Span(path, line, column, end_line, end_column, start, end)


def _offset_span(path: str, token: Token, start: int, end: int) -> ast.Span:
    """The span of `token`'s characters `start:end`."""

    def position(offset: int) -> tuple[int, int]:
        before = str(token)[:offset]
        newlines = before.count("\n")
        if newlines == 0:
            return (token.line or 1), (token.column or 1) + offset
        return (token.line or 1) + newlines, offset - before.rfind("\n")

    line, column = position(start)
    end_line, end_column = position(end)
    base = token.start_pos or 0
    return ast.Span(path, line, column, end_line, end_column, base + start, base + end)


def _expr(child: _Child) -> ast.Expr:
    return child.expr if isinstance(child, _Grouped) else child  # type: ignore[return-value]


MAX_COUNT_DIGITS = 18
"""Digits a language version or a metric's `@k` may have."""


def _error(code: str, message: str, span: ast.Span, hint: str | None = None) -> None:
    _current.get().diagnostics.append(Diagnostic(code, "error", message, span, hint))


def _name(path: str, token: Token) -> str:
    if token in RESERVED_WORDS:
        _error(
            "E0008",
            f"`{token}` is a reserved word and cannot be used as a name",
            _token_span(path, token),
            f"reserved words: {', '.join(sorted(RESERVED_WORDS))}",
        )
    return str(token)


class Builder:
    """The callbacks of Lark's LALR parser: one per grammar rule, named after it,
    given the rule's children with every token kept (`keep_all_tokens=True`).

    They only run inside `build`, which holds the file's path and collects its
    comments and diagnostics.
    """

    @staticmethod
    def comment(token: Token) -> Token:
        """The lexer callback of `COMMENT` tokens: keep them for the formatter."""
        state = _current.get(None)
        if state is not None:
            state.comments.append(token)
        return token

    # ---------------------------------------------------------------- top level

    def program(self, children: list[_Node]) -> ast.Program:
        state = _current.get()
        path = state.path
        header = children[0] if children and isinstance(children[0], ast.Header) else None
        imports = tuple(c for c in children if isinstance(c, ast.Import))
        declarations = tuple(c for c in children if isinstance(c, ast.Declaration))
        if header is None:
            first = _between(path, children[0], children[-1]) if children else ast.Span(path, 1, 1, 1, 1)
            _error(
                "E0004",
                "missing the language header",
                ast.Span(path, first.line, first.column, first.line, first.column + 1, first.start, first.start),
                f"start the file with `grpo {LANGUAGE_VERSIONS[-1]}`",
            )
        comments = tuple(ast.Comment(str(c).rstrip(), _token_span(path, c)) for c in state.comments)
        return ast.Program(path, header, imports, declarations, comments, state.source)

    def header(self, children: list[Token]) -> ast.Header:
        keyword, number = children
        path = _current.get().path
        version = int(number) if number.isdigit() and len(number) <= MAX_COUNT_DIGITS else 0
        if version not in LANGUAGE_VERSIONS:
            known = ", ".join(str(v) for v in LANGUAGE_VERSIONS)
            _error(
                "E0005",
                f"unknown language version `{number}`",
                _token_span(path, number),
                f"this compiler knows version {known}: write `grpo {LANGUAGE_VERSIONS[-1]}`",
            )
        return ast.Header(version, _between(path, keyword, number))

    def import_(self, children: list[_Child]) -> ast.Import:
        keyword, literal = children
        assert isinstance(literal, ast.String)
        return ast.Import(literal, _between(_current.get().path, keyword, literal))

    @staticmethod
    def _declaration(kind: type[ast.Declaration], children: list[_Child]) -> ast.Decl:
        keyword, name, body = children
        assert isinstance(name, Token) and isinstance(body, ast.Block)
        path = _current.get().path
        return kind(_name(path, name), body.attributes, _between(path, keyword, body), _token_span(path, name))  # type: ignore[return-value]

    def model(self, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Model, children)

    def dataset(self, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Dataset, children)

    def task(self, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Task, children)

    def tool(self, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Tool, children)

    def policy(self, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Policy, children)

    def learn(self, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Learn, children)

    def evaluate(self, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Evaluate, children)

    def emit(self, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Emit, children)

    def reward(self, children: list[_Child]) -> ast.Decl:
        if len(children) == 3:
            return self._declaration(ast.Reward, children)
        keyword, name, _, value = children
        assert isinstance(name, Token)
        path = _current.get().path
        span, name_span = _between(path, keyword, value), _token_span(path, name)
        return ast.Reward(_name(path, name), (), span, name_span, expression=_expr(value))

    # ---------------------------------------------------------------- attributes

    def block(self, children: list[_Child]) -> ast.Block:
        attributes = children[1:-1]
        return ast.Block(tuple(attributes), _between(_current.get().path, children[0], children[-1]))  # type: ignore[arg-type]

    def attribute(self, children: list[_Child]) -> ast.Attribute:
        key, last = children[0], children[-1]
        assert isinstance(key, Token)
        path = _current.get().path
        value = last if isinstance(last, ast.Block) else _expr(last)
        return ast.Attribute(_name(path, key), value, _between(path, key, last), _token_span(path, key))

    # --------------------------------------------------------------- expressions

    def atom(self, children: list[_Child]) -> _Grouped:
        opening, inner, closing = children
        return _Grouped(_expr(inner), _between(_current.get().path, opening, closing))

    def conditional(self, children: list[_Child]) -> ast.Conditional:
        _, condition, _, then, _, otherwise = children
        span = _between(_current.get().path, children[0], otherwise)
        return ast.Conditional(_expr(condition), _expr(then), _expr(otherwise), span)

    def binary(self, children: list[_Child]) -> ast.Binary:
        left, op, right = children
        return ast.Binary(str(op), _expr(left), _expr(right), _between(_current.get().path, left, right))

    def unary(self, children: list[_Child]) -> ast.Expr:
        op, operand = children
        value, span = _expr(operand), _between(_current.get().path, op, operand)
        if op == "-" and isinstance(value, ast.Number):
            return ast.Number(-value.value, span, f"-{value.raw}")
        return ast.Unary(str(op), value, span)

    def string(self, children: list[Token]) -> ast.String:
        (token,) = children
        path = _current.get().path
        try:
            value = decode_string(str(token))
        except LiteralError as error:
            _error("E0003", error.message, _offset_span(path, token, error.start, error.end))
            value = ""
        return ast.String(value, _token_span(path, token), str(token))

    def number(self, children: list[Token]) -> ast.Number:
        (token,) = children
        path = _current.get().path
        try:
            value = decode_number(str(token))
        except LiteralError as error:
            _error("E0009", error.message, _token_span(path, token))
            value = 0
        return ast.Number(value, _token_span(path, token), str(token))

    def bool(self, children: list[Token]) -> ast.Bool:
        (token,) = children
        return ast.Bool(token == "true", _token_span(_current.get().path, token))

    def null(self, children: list[Token]) -> ast.Null:
        (token,) = children
        return ast.Null(_token_span(_current.get().path, token))

    def name(self, children: list[Token]) -> ast.Name:
        (token,) = children
        path = _current.get().path
        return ast.Name(_name(path, token), _token_span(path, token))

    def metric(self, children: list[Token]) -> ast.Metric:
        (token,) = children
        name, _, k = str(token).partition("@")
        span = _token_span(_current.get().path, token)
        if len(k) > MAX_COUNT_DIGITS:
            _error("E0009", f"the sample count of `{name}@{k[:12]}...` has too many digits", span)
            return ast.Metric(name, 0, span)
        return ast.Metric(name, int(k), span)

    def list_expr(self, children: list[_Child]) -> ast.ListExpr:
        items = tuple(_expr(c) for c in children[1:-1] if not isinstance(c, Token))
        return ast.ListExpr(items, _between(_current.get().path, children[0], children[-1]))

    def call(self, children: list[_Child]) -> ast.Call:
        function = children[0]
        assert isinstance(function, Token)
        args = tuple(_expr(c) for c in children[2:-1] if not isinstance(c, Token))
        path = _current.get().path
        return ast.Call(_name(path, function), args, _between(path, function, children[-1]))


def _inner(node: object) -> tuple[object, ...]:
    if isinstance(node, ast.Program):
        return (*node.imports, *node.declarations)
    if isinstance(node, ast.Reward) and node.expression is not None:
        return (node.expression,)
    if isinstance(node, ast.Declaration | ast.Block):
        return node.attributes
    if isinstance(node, ast.Attribute):
        return (node.value,)
    if isinstance(node, ast.Call):
        return node.args
    if isinstance(node, ast.ListExpr):
        return node.items
    if isinstance(node, ast.Unary):
        return (node.operand,)
    if isinstance(node, ast.Binary):
        return (node.left, node.right)
    if isinstance(node, ast.Conditional):
        return (node.condition, node.then, node.otherwise)
    return ()


def _depth(program: ast.Program) -> int:
    """How many levels the syntax tree has (the program is the first), counting the
    levels of a negative number's `-` signs, without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(program, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.Number) and node.raw is not None:
            depth += len(node.raw) - len(node.raw.lstrip("-"))
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _inner(node))
    return deepest


def _too_deep(tree: Tree[Token]) -> Tree[Token] | None:
    """The first subtree nested deeper than `MAX_DEPTH`, found without recursion."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return None


def build(
    parse: Callable[[], tuple[object | None, Sequence[Diagnostic]]],
    *,
    path: str,
    source: str,
    parse_tree: Callable[[], Tree[Token]],
) -> tuple[ast.Program | None, tuple[Diagnostic, ...]]:
    """Run `parse`, a parse of `source` by a Lark parser whose callbacks are a
    `Builder` that returns the tree it built (None if it stopped early) and the
    syntax errors it recovered from; return the `ast.Program` and every problem.

    The problems come in source order: syntax errors, malformed escapes and
    numbers, reserved words used as names, a missing or unknown header; or only
    that the program is nested more than `MAX_DEPTH` levels deep (E0010, with no
    program), which `parse_tree`, a parse of `source` into a Lark tree with
    positions, places. Lark's errors (`UnexpectedInput`) pass through.
    """
    state = _Parse(path, source)
    reset = _current.set(state)
    try:
        program, syntax = parse()
    finally:
        _current.reset(reset)
    built = state.diagnostics
    if syntax:
        # A file cut short by a syntax error may have lost its header to it.
        built = [d for d in built if d.code != "E0004"]
    found = tuple(sorted([*syntax, *built], key=lambda d: (d.span.start, d.code)))
    if program is None:
        return None, found
    assert isinstance(program, ast.Program)
    # A Lark tree has one more level than the program: the block of a declaration.
    too_deep = _depth(program) + 1 > MAX_DEPTH
    if too_deep and syntax:
        return None, found  # the syntax errors are reported; a tree that deep is not handed on
    if too_deep and (deep := _too_deep(parse_tree())) is not None:
        span = ast.Span(path, deep.meta.line, deep.meta.column, deep.meta.line, deep.meta.column + 1)
        message = f"the program is nested more than {MAX_DEPTH} levels deep"
        return None, (Diagnostic("E0010", "error", message, span),)
    return program, found
