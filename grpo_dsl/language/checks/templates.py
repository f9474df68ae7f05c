"""Jinja templates: syntax errors pointing into the string (E0401), variables that
are not fields of every dataset the template is rendered with (E0402), and literal
ranges and repetitions past the render budget (E0405)."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import MAX_RANGE, SandboxedEnvironment

from grpo_dsl.core.templating import RenderBudget, sandbox
from grpo_dsl.language import ast
from grpo_dsl.language.checks.context import (
    Context,
    did_you_mean,
    error,
    span_in_string,
)
from grpo_dsl.language.diagnostics import Diagnostic

__all__ = ["check_templates"]

_ALWAYS_AVAILABLE = frozenset({"experiences"})
_TAGS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


@functools.cache
def _environment() -> SandboxedEnvironment:
    """The environment every template is parsed in (parsing leaves it unchanged)."""
    return sandbox()


def _line_span(context: Context, literal: ast.String, lineno: int) -> ast.Span:
    raw = literal.raw or ""
    source = context.source(literal.span)
    if not raw.startswith('"""'):
        return span_in_string(literal, source, 1, max(1, len(raw) - 1))
    lines = literal.value.splitlines() or [""]
    target = lines[min(lineno, len(lines)) - 1].strip()
    raw_lines = raw.split("\n")
    for index in [*range(min(lineno, len(raw_lines) - 1), len(raw_lines)), *range(len(raw_lines))]:
        column = raw_lines[index].find(target) if target else -1
        if column >= 0:
            start = sum(len(line) + 1 for line in raw_lines[:index]) + column
            return span_in_string(literal, source, start, start + len(target))
    return literal.span


def _variable_span(context: Context, literal: ast.String, variable: str) -> ast.Span:
    raw = literal.raw or ""
    word = re.compile(rf"\b{re.escape(variable)}\b")
    for tag in _TAGS.finditer(raw):
        found = word.search(tag.group())
        if found is not None:
            start = tag.start() + found.start()
            return span_in_string(literal, context.source(literal.span), start, start + len(variable))
    return literal.span


def _syntax_error(context: Context, attribute: str, literal: ast.String, problem: TemplateSyntaxError) -> Diagnostic:
    return error(
        "E0401",
        f"template syntax error in `{attribute}`: {problem.message}",
        _line_span(context, literal, problem.lineno),
        "variables are written `{{ name }}` and statements `{% if ... %} ... {% endif %}`",
    )


def _renamed(mapping: dict[str, ast.String], column: str) -> str | None:
    renamed = [name for name, literal in mapping.items() if literal.value == column]
    return f"`fields` renames the column `{column}` to `{renamed[0]}`: write `{renamed[0]}`" if renamed else None


def _first_use(literal: ast.String, variable: str) -> int:
    found = re.search(rf"\b{re.escape(variable)}\b", literal.raw or literal.value)
    return found.start() if found else 0


def _variables(
    context: Context, attribute: str, literal: ast.String, variables: set[str], datasets: list[str], extra: frozenset[str]
) -> Iterator[Diagnostic]:
    for variable in sorted(variables - extra - _ALWAYS_AVAILABLE, key=lambda v: _first_use(literal, v)):
        lacking = [d for d in datasets if variable not in (context.fields_of(d) or {variable})]
        if not lacking:
            continue
        known = sorted(context.fields_of(lacking[0]) or ())
        suggestion = _renamed(context.datasets[lacking[0]].mapping, variable) or did_you_mean(variable, known)
        listed = ", ".join(f"`{f}`" for f in known) or "none"
        names = ", ".join(f"`{d}`" for d in lacking)
        yield error(
            "E0402",
            f"`{attribute}` uses `{variable}`, which is not a field of dataset{'s' if len(lacking) > 1 else ''} {names}",
            _variable_span(context, literal, variable),
            suggestion or f'the fields are {listed}; map a column with `fields {{ {variable} = "column" }}`',
        )


_HUGE = 10**30
"""Constants are capped here: any larger amount is past every budget alike."""


@dataclass(frozen=True, slots=True)
class _Constant:
    """A constant expression of a template: a number, or text (a string or a list) of
    `amount` characters or items."""

    kind: Literal["number", "text"]
    amount: int


def _constant(node: nodes.Node) -> _Constant | None:
    """The value of a constant expression, or None when it is not constant."""
    match node:
        case nodes.Const(value=bool()):
            return None
        case nodes.Const(value=int() as value):
            return _Constant("number", min(value, _HUGE))
        case nodes.Const(value=str() as value):
            return _Constant("text", len(value))
        case nodes.List(items=items) | nodes.Tuple(items=items):
            values = [_constant(item) for item in items]
            return None if None in values else _Constant("text", len(items) + sum(v.amount for v in values if v))
        case nodes.Neg(node=inner):
            negated = _constant(inner)
            return _Constant("number", -negated.amount) if negated and negated.kind == "number" else None
        case nodes.Add(left=left, right=right) | nodes.Sub(left=left, right=right):
            a, b = _constant(left), _constant(right)
            if a is None or b is None or a.kind != b.kind:
                return None
            return _Constant(a.kind, min(a.amount + (b.amount if isinstance(node, nodes.Add) else -b.amount), _HUGE))
        case nodes.Mul(left=left, right=right):
            a, b = _constant(left), _constant(right)
            if a is None or b is None or "number" not in (a.kind, b.kind):
                return None
            kind: Literal["number", "text"] = "text" if "text" in (a.kind, b.kind) else "number"
            return _Constant(kind, max(min(a.amount * b.amount, _HUGE), -_HUGE))
        case nodes.Pow(left=left, right=right):
            a, b = _constant(left), _constant(right)
            if a is None or b is None or a.kind != "number" or b.kind != "number" or b.amount < 0:
                return None
            if abs(a.amount) > 1 and b.amount * math.log2(abs(a.amount)) > 100:
                return _Constant("number", _HUGE)
            return _Constant("number", a.amount**b.amount)
    return None


def _range_length(call: nodes.Call) -> int | None:
    """How many numbers a `range(...)` of constants gives, or None when it is not constant."""
    if not (isinstance(call.node, nodes.Name) and call.node.name == "range") or call.kwargs or call.dyn_args:
        return None
    values = [_constant(arg) for arg in call.args]
    if not 1 <= len(values) <= 3 or any(v is None or v.kind != "number" for v in values):
        return None
    numbers = [v.amount for v in values if v is not None]
    start, stop, step = (0, numbers[0], 1) if len(numbers) == 1 else (*numbers[:2], numbers[2] if len(numbers) == 3 else 1)
    if step == 0:
        return None
    return max(0, -(-(stop - start) // step))


def _loop_runs(node: nodes.Node, enclosing: int) -> Iterator[tuple[nodes.Node, str]]:
    """Literal loops nested past the iteration budget: (the inner loop, a message)."""
    limit = RenderBudget().iterations
    for child in node.iter_child_nodes():
        runs = enclosing
        if isinstance(child, nodes.For) and isinstance(child.iter, nodes.Call):
            length = _range_length(child.iter)
            if length is not None:
                runs = enclosing * length
                if enclosing > 1 and runs > limit and length <= MAX_RANGE:
                    yield child, f"these nested loops run {runs} times, past the render budget of {limit} loop iterations"
                    continue
        yield from _loop_runs(child, runs)


def _budget_problems(template: nodes.Template) -> Iterator[tuple[nodes.Node, str]]:
    """Literal ranges and repetitions that a render would stop at: (node, message)."""
    chars = RenderBudget().chars
    for call in template.find_all(nodes.Call):
        length = _range_length(call)
        if length is not None and length > MAX_RANGE:
            yield call, f"`range` of {length} numbers is past the limit of {MAX_RANGE} numbers per range"
    for product in template.find_all(nodes.Mul):
        made = _constant(product)
        if made is not None and made.kind == "text" and made.amount > chars:
            yield product, f"this repetition makes {made.amount} characters or items, past the render budget of {chars}"
    yield from _loop_runs(template, 1)


def _budget(context: Context, attribute: str, literal: ast.String, template: nodes.Template) -> Iterator[Diagnostic]:
    for node, message in _budget_problems(template):
        yield error(
            "E0405",
            f"`{attribute}`: {message}",
            _line_span(context, literal, node.lineno),
            "a render past its budget stops with an error; loop over the data's fields instead of literal counts",
        )


def _strings(decl: ast.Declaration, names: tuple[str, ...]) -> Iterator[tuple[str, ast.String]]:
    for name in names:
        found = decl.get(name)
        if found is not None and isinstance(found.value, ast.String):
            yield name, found.value


def check_templates(context: Context) -> Iterator[Diagnostic]:
    """Task prompts and judge rubrics parse, read only dataset fields, and stay within
    the render budget where their ranges and repetitions are literal."""
    for decl in context.workspace.all_declarations():
        if isinstance(decl, ast.Task):
            datasets = context.task_datasets(decl.name)
            extra: frozenset[str] = frozenset()
            templates = list(_strings(decl, ("system", "prompt")))
        elif isinstance(decl, ast.Reward) and decl.expression is None:
            datasets = context.reward_datasets(decl.name)
            extra = frozenset({"output"})
            templates = list(_strings(decl, ("rubric",)))
        else:
            continue
        for attribute, literal in templates:
            try:
                template = _environment().parse(literal.value)
            except TemplateSyntaxError as problem:
                yield _syntax_error(context, attribute, literal, problem)
                continue
            if context.workspace.declarations.get(decl.name) is decl:
                variables = set(meta.find_undeclared_variables(template))
                yield from _variables(context, attribute, literal, variables, datasets, extra)
                yield from _budget(context, attribute, literal, template)
