"""Print a `Program` in the canonical layout of `.grpo` source.

Two-space indent, `=` aligned within a block, one blank line between
declarations (consecutive one-line rewards stay together), short nested blocks on
one line, comments kept where they were. `format_program` is idempotent and
`parse(format_program(p)) == parse(p)`; it also prints programs built in Python,
which carry no spans, raw text or comments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from grpo_dsl.language import ast
from grpo_dsl.language.literals import (
    LANGUAGE_VERSIONS,
    LiteralError,
    decode_number,
    decode_string,
    encode_long_string,
    encode_number,
    encode_string,
    is_name,
)

__all__ = ["format_program", "format_expression", "INDENT", "INLINE_WIDTH"]

INDENT = "  "
INLINE_WIDTH = 80

_BINARY_PRECEDENCE = {
    "or": 1,
    "and": 2,
    **dict.fromkeys(("==", "!=", "<", "<=", ">", ">="), 4),
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
}
_NOT, _COMPARISON, _NEGATIVE, _ATOM = 3, 4, 7, 8
_KEYWORD_KEYS = frozenset({"grpo", "import", *ast.DECLARATION_KINDS})


# ------------------------------------------------------------------ expressions


def _name(text: str, what: str) -> str:
    if not is_name(text):
        raise ValueError(f"{what} {text!r} cannot be written as a .grpo name")
    return text


def _precedence(expr: ast.Expr) -> int:
    if isinstance(expr, ast.Conditional):
        return 0
    if isinstance(expr, ast.Binary):
        return _BINARY_PRECEDENCE.get(expr.op, 0)
    if isinstance(expr, ast.Unary):
        return _NOT if expr.op == "not" else _NEGATIVE
    if isinstance(expr, ast.Number) and expr.value < 0:
        return _NEGATIVE
    return _ATOM


def _operand(expr: ast.Expr, lowest: int) -> str:
    text = format_expression(expr)
    return f"({text})" if _precedence(expr) < lowest else text


def _string(node: ast.String, *, long_indent: str | None = None) -> str:
    raw = node.raw
    if raw is not None and not raw.startswith('"""'):
        try:
            if decode_string(raw) == node.value:
                return raw
        except LiteralError:
            pass
    wants_long = raw.startswith('"""') if raw is not None else "\n" in node.value
    if wants_long and long_indent is not None:
        long = encode_long_string(node.value, long_indent)
        if long is not None:
            return long
    return encode_string(node.value)


def _number(node: ast.Number) -> str:
    if node.raw is not None:
        try:
            if decode_number(node.raw) == node.value:
                return node.raw
        except LiteralError:
            pass
    return encode_number(node.value)


def format_expression(expr: ast.Expr, *, long_indent: str | None = None) -> str:
    """`expr` as source text. A string may take the `\"\"\"` form, its lines
    indented by `long_indent`, only when `long_indent` is given."""
    match expr:
        case ast.String():
            return _string(expr, long_indent=long_indent)
        case ast.Number():
            return _number(expr)
        case ast.Bool(value=value):
            return "true" if value else "false"
        case ast.Null():
            return "null"
        case ast.Name(name=name):
            return _name(name, "name")
        case ast.Metric(name=name, k=k):
            if not (isinstance(k, int) and k >= 0):
                raise ValueError(f"metric {name}@{k!r} needs a non-negative integer")
            return f"{_name(name, 'metric')}@{k}"
        case ast.ListExpr(items=items):
            return "[" + ", ".join(_operand(item, 0) for item in items) + "]"
        case ast.Call(function=function, args=args):
            return f"{_name(function, 'function')}(" + ", ".join(_operand(arg, 0) for arg in args) + ")"
        case ast.Unary(op="not", operand=operand):
            return f"not {_operand(operand, _NOT)}"
        case ast.Unary(op="-", operand=operand):
            return f"-{_operand(operand, _NEGATIVE)}"
        case ast.Binary(op=op, left=left, right=right) if op in _BINARY_PRECEDENCE:
            level = _BINARY_PRECEDENCE[op]
            if level == _COMPARISON:
                return f"{_operand(left, level + 1)} {op} {_operand(right, level + 1)}"
            return f"{_operand(left, level)} {op} {_operand(right, level + 1)}"
        case ast.Conditional(condition=condition, then=then, otherwise=otherwise):
            return f"if {_operand(condition, 1)} then {_operand(then, 1)} else {_operand(otherwise, 0)}"
    raise ValueError(f"cannot write {expr!r} as a .grpo expression")


# ------------------------------------------------------------------------ layout

_UnitKind = Literal["leaf", "open", "close"]


@dataclass
class _Unit:
    """One printed line (or a few, for a `\"\"\"` string) and the source lines it came from."""

    indent: str
    text: str
    kind: _UnitKind
    first_line: int
    last_line: int
    blank_before: bool = False
    leading: list[str] = field(default_factory=list)
    trailing: str | None = None


def _key(name: str) -> str:
    if name in _KEYWORD_KEYS:
        return name
    return _name(name, "attribute")


def _value(value: ast.Expr, indent: str) -> str:
    return format_expression(value, long_indent=indent + INDENT)


def _inline_block(block: ast.Block, comment_starts: list[int]) -> str | None:
    if any(block.span.start < start < block.span.end for start in comment_starts):
        return None
    if not block.attributes:
        return "{}"
    parts = []
    for attribute in block.attributes:
        if isinstance(attribute.value, ast.Block):
            return None
        text = format_expression(attribute.value)
        if "\n" in text:
            return None
        parts.append(f"{_key(attribute.name)} = {text}")
    return "{ " + "  ".join(parts) + " }"


def _attributes(
    attributes: tuple[ast.Attribute, ...], indent: str, comment_starts: list[int]
) -> Iterator[_Unit]:
    width = max((len(a.name) for a in attributes if not isinstance(a.value, ast.Block)), default=0)
    for attribute in attributes:
        key, span = _key(attribute.name), attribute.span
        if not isinstance(attribute.value, ast.Block):
            text = f"{key.ljust(width)} = {_value(attribute.value, indent)}"
            yield _Unit(indent, text, "leaf", span.line, span.end_line)
            continue
        block = attribute.value
        inline = _inline_block(block, comment_starts)
        if inline is not None and len(indent) + len(key) + 1 + len(inline) <= INLINE_WIDTH:
            yield _Unit(indent, f"{key} {inline}", "leaf", span.line, span.end_line)
            continue
        yield _Unit(indent, f"{key} {{", "open", span.line, attribute.name_span.end_line)
        yield from _attributes(block.attributes, indent + INDENT, comment_starts)
        yield _Unit(indent, "}", "close", span.end_line, span.end_line)


def _is_reward_line(declaration: ast.Decl) -> bool:
    return isinstance(declaration, ast.Reward) and declaration.expression is not None


def _units(program: ast.Program) -> Iterator[_Unit]:
    comment_starts = [comment.span.start for comment in program.comments]
    header = program.header
    version = header.version if header is not None else LANGUAGE_VERSIONS[-1]
    header_span = header.span if header is not None else ast.NO_SPAN
    yield _Unit("", f"grpo {version}", "leaf", header_span.line, header_span.end_line)
    for number, item in enumerate(program.imports):
        text = f"import {_string(item.path)}"
        yield _Unit("", text, "leaf", item.span.line, item.span.end_line, blank_before=number == 0)
    previous: ast.Decl | None = None
    for declaration in program.declarations:
        span, name = declaration.span, _name(declaration.name, f"{declaration.kind} name")
        head = f"{declaration.kind} {name}"
        blank = not (previous is not None and _is_reward_line(previous) and _is_reward_line(declaration))
        previous = declaration
        if isinstance(declaration, ast.Reward) and declaration.expression is not None:
            text = f"{head} = {_value(declaration.expression, '')}"
            yield _Unit("", text, "leaf", span.line, span.end_line, blank_before=blank)
        elif not declaration.attributes:
            yield _Unit("", f"{head} {{}}", "leaf", span.line, span.end_line, blank_before=blank)
        else:
            yield _Unit("", f"{head} {{", "open", span.line, declaration.name_span.end_line, blank_before=blank)
            yield from _attributes(declaration.attributes, INDENT, comment_starts)
            yield _Unit("", "}", "close", span.end_line, span.end_line)


# ---------------------------------------------------------------------- comments


def _is_trailing(comment: ast.Comment, lines: list[str]) -> bool:
    line = comment.span.line
    return 1 <= line <= len(lines) and bool(lines[line - 1][: comment.span.column - 1].strip())


def _attach_comments(program: ast.Program, units: list[_Unit]) -> list[str]:
    """Give each comment to the unit it belongs to; return those left for the end."""
    lines = program.source.split("\n")
    at_end: list[str] = []
    for comment in sorted(program.comments, key=lambda c: c.span.start):
        line, text = comment.span.line, comment.text
        if _is_trailing(comment, lines):
            owner = next((u for u in reversed(units) if u.last_line == line and u.trailing is None), None)
            if owner is not None:
                owner.trailing = text
                continue
        covering = next((u for u in units if u.kind == "leaf" and u.first_line <= line <= u.last_line), None)
        following = covering or next((u for u in units if u.first_line > line), None)
        if following is None:
            at_end.append(text)
        elif following.kind == "close":
            following.leading.append(INDENT + following.indent + text)
        else:
            following.leading.append(following.indent + text)
    return at_end


def _trailing_columns(units: list[_Unit]) -> list[int]:
    """The column each unit's trailing comment starts at: aligned within a run of
    units at the same indentation, with no blank line or comment between them."""
    columns = [0] * len(units)
    start = 0
    for end in range(1, len(units) + 1):
        if end < len(units) and units[end].indent == units[start].indent and not (units[end].leading or units[end].blank_before):
            continue
        run = range(start, end)
        widths = [len(units[i].indent + units[i].text) for i in run if units[i].trailing and "\n" not in units[i].text]
        column = max(widths, default=0) + 2
        for i in run:
            last_line = (units[i].indent + units[i].text).rsplit("\n", 1)[-1]
            columns[i] = column if "\n" not in units[i].text else len(last_line) + 2
        start = end
    return columns


def format_program(program: ast.Program) -> str:
    """The canonical source text of `program`, ending with a newline.

    Raises `ValueError` for a tree that no source could produce (a name that is
    not an identifier, an infinite number, an unknown operator).

    >>> from grpo_dsl.language.parser import parse
    >>> print(format_program(parse('grpo 1 model m {name="x" concurrency=4}')), end="")
    grpo 1
    <BLANKLINE>
    model m {
      name        = "x"
      concurrency = 4
    }
    """
    units = list(_units(program))
    at_end = _attach_comments(program, units)
    columns = _trailing_columns(units)
    out: list[str] = []
    for unit, column in zip(units, columns):
        if unit.blank_before:
            out.append("")
        out.extend(unit.leading)
        text = unit.indent + unit.text
        if unit.trailing is not None:
            last = text.rsplit("\n", 1)[-1]
            text += " " * (column - len(last)) + unit.trailing
        out.append(text)
    if at_end:
        out.append("")
        out.extend(at_end)
    return "\n".join(out) + "\n"
