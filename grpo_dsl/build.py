"""Build the syntax tree of `grpo_dsl.ast` from Lark's parse tree.

This is where Lark stops: `build` returns frozen dataclasses with spans, and no
module downstream of it imports `lark`.
"""

from __future__ import annotations

from collections.abc import Sequence

from lark import Token, Transformer, Tree, v_args
from lark.tree import Meta

from . import ast
from .diagnostics import Diagnostic, ProgramError
from .literals import LANGUAGE_VERSIONS, RESERVED_WORDS, LiteralError, decode_number, decode_string

__all__ = ["MAX_DEPTH", "build"]

MAX_DEPTH = 100

_Child = ast.Expr | ast.Block | ast.Attribute | ast.Header | ast.Import | ast.Decl | Token


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


@v_args(meta=True)
class _Builder(Transformer[Token, ast.Program]):
    def __init__(self, path: str, source: str, comments: Sequence[Token]):
        super().__init__()
        self.path = path
        self.source = source
        self.comments = comments
        self.diagnostics: list[Diagnostic] = []

    def _span(self, meta: Meta) -> ast.Span:
        if meta.empty:
            return ast.Span(self.path, 1, 1, 1, 1)
        return ast.Span(
            self.path, meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos
        )

    def _error(self, code: str, message: str, span: ast.Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, "error", message, span, hint))

    def _name(self, token: Token) -> str:
        if token in RESERVED_WORDS:
            self._error(
                "E0008",
                f"`{token}` is a reserved word and cannot be used as a name",
                _token_span(self.path, token),
                f"reserved words: {', '.join(sorted(RESERVED_WORDS))}",
            )
        return str(token)

    # ---------------------------------------------------------------- top level

    def program(self, meta: Meta, children: list[_Child]) -> ast.Program:
        header = children[0] if children and isinstance(children[0], ast.Header) else None
        imports = tuple(c for c in children if isinstance(c, ast.Import))
        declarations = tuple(c for c in children if isinstance(c, ast.Declaration))
        if header is None:
            first = self._span(meta) if children else ast.Span(self.path, 1, 1, 1, 1)
            self._error(
                "E0004",
                "missing the language header",
                ast.Span(self.path, first.line, first.column, first.line, first.column + 1, first.start, first.start),
                f"start the file with `grpo {LANGUAGE_VERSIONS[-1]}`",
            )
        comments = tuple(ast.Comment(str(c).rstrip(), _token_span(self.path, c)) for c in self.comments)
        return ast.Program(self.path, header, imports, declarations, comments, self.source)

    def header(self, meta: Meta, children: list[Token]) -> ast.Header:
        (number,) = children
        version = int(number) if number.isdigit() else 0
        if version not in LANGUAGE_VERSIONS:
            known = ", ".join(str(v) for v in LANGUAGE_VERSIONS)
            self._error(
                "E0005",
                f"unknown language version `{number}`",
                _token_span(self.path, number),
                f"this compiler knows version {known}: write `grpo {LANGUAGE_VERSIONS[-1]}`",
            )
        return ast.Header(version, self._span(meta))

    def import_(self, meta: Meta, children: list[ast.String]) -> ast.Import:
        return ast.Import(children[0], self._span(meta))

    def _declaration(self, cls: type[ast.Declaration], meta: Meta, children: list[_Child]) -> ast.Decl:
        name, body = children
        assert isinstance(name, Token) and isinstance(body, ast.Block)
        return cls(self._name(name), body.attributes, self._span(meta), _token_span(self.path, name))  # type: ignore[return-value]

    def model(self, meta: Meta, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Model, meta, children)

    def dataset(self, meta: Meta, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Dataset, meta, children)

    def task(self, meta: Meta, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Task, meta, children)

    def policy(self, meta: Meta, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Policy, meta, children)

    def learn(self, meta: Meta, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Learn, meta, children)

    def evaluate(self, meta: Meta, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Evaluate, meta, children)

    def emit(self, meta: Meta, children: list[_Child]) -> ast.Decl:
        return self._declaration(ast.Emit, meta, children)

    def reward(self, meta: Meta, children: list[_Child]) -> ast.Decl:
        name, body = children
        assert isinstance(name, Token)
        if isinstance(body, ast.Block):
            return self._declaration(ast.Reward, meta, children)
        span, name_span = self._span(meta), _token_span(self.path, name)
        return ast.Reward(self._name(name), (), span, name_span, expression=body)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- attributes

    def block(self, meta: Meta, children: list[ast.Attribute]) -> ast.Block:
        return ast.Block(tuple(children), self._span(meta))

    def attribute(self, meta: Meta, children: list[_Child]) -> ast.Attribute:
        key, value = children
        assert isinstance(key, Token)
        return ast.Attribute(self._name(key), value, self._span(meta), _token_span(self.path, key))  # type: ignore[arg-type]

    # --------------------------------------------------------------- expressions

    def conditional(self, meta: Meta, children: list[ast.Expr]) -> ast.Conditional:
        condition, then, otherwise = children
        return ast.Conditional(condition, then, otherwise, self._span(meta))

    def binary(self, meta: Meta, children: list[ast.Expr | Token]) -> ast.Binary:
        left, op, right = children
        return ast.Binary(str(op), left, right, self._span(meta))  # type: ignore[arg-type]

    def unary(self, meta: Meta, children: list[ast.Expr | Token]) -> ast.Expr:
        op, operand = children
        if op == "-" and isinstance(operand, ast.Number):
            return ast.Number(-operand.value, self._span(meta), f"-{operand.raw}")
        return ast.Unary(str(op), operand, self._span(meta))  # type: ignore[arg-type]

    def string(self, meta: Meta, children: list[Token]) -> ast.String:
        (token,) = children
        try:
            value = decode_string(str(token))
        except LiteralError as error:
            self._error("E0003", error.message, _offset_span(self.path, token, error.start, error.end))
            value = ""
        return ast.String(value, self._span(meta), str(token))

    def number(self, meta: Meta, children: list[Token]) -> ast.Number:
        (token,) = children
        try:
            value = decode_number(str(token))
        except LiteralError as error:
            self._error("E0009", error.message, _token_span(self.path, token))
            value = 0
        return ast.Number(value, self._span(meta), str(token))

    def bool(self, meta: Meta, children: list[Token]) -> ast.Bool:
        return ast.Bool(children[0] == "true", self._span(meta))

    def null(self, meta: Meta, children: list[Token]) -> ast.Null:
        return ast.Null(self._span(meta))

    def name(self, meta: Meta, children: list[Token]) -> ast.Name:
        return ast.Name(self._name(children[0]), self._span(meta))

    def metric(self, meta: Meta, children: list[Token]) -> ast.Metric:
        name, _, k = str(children[0]).partition("@")
        return ast.Metric(name, int(k), self._span(meta))

    def list_expr(self, meta: Meta, children: list[ast.Expr]) -> ast.ListExpr:
        return ast.ListExpr(tuple(children), self._span(meta))

    def call(self, meta: Meta, children: list[ast.Expr | Token]) -> ast.Call:
        function, *args = children
        assert isinstance(function, Token)
        return ast.Call(self._name(function), tuple(args), self._span(meta))  # type: ignore[arg-type]


def _too_deep(tree: Tree[Token]) -> Tree[Token] | None:
    """The first subtree nested deeper than `MAX_DEPTH`, found without recursion."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return None


def build(tree: Tree[Token], *, path: str, source: str, comments: Sequence[Token] = ()) -> ast.Program:
    """Turn a parse tree of `grammars/grpo.lark` into an `ast.Program`.

    Raises `ProgramError` listing every problem found while building: malformed
    escapes and numbers, reserved words used as names, a missing or unknown header.
    """
    deep = _too_deep(tree)
    if deep is not None:
        span = ast.Span(path, deep.meta.line, deep.meta.column, deep.meta.line, deep.meta.column + 1)
        message = f"the program is nested more than {MAX_DEPTH} levels deep"
        raise ProgramError([Diagnostic("E0010", "error", message, span)], {path: source})
    builder = _Builder(path, source, comments)
    program = builder.transform(tree)
    if builder.diagnostics:
        raise ProgramError(builder.diagnostics, {path: source})
    return program
