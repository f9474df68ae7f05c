"""Jinja templates: syntax errors pointing into the string (E0401), and variables
that are not fields of every dataset the template is rendered with (E0402)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from jinja2 import TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from grpo_dsl.core.templating import sandbox
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


def _strings(decl: ast.Declaration, names: tuple[str, ...]) -> Iterator[tuple[str, ast.String]]:
    for name in names:
        found = decl.get(name)
        if found is not None and isinstance(found.value, ast.String):
            yield name, found.value


def check_templates(context: Context) -> Iterator[Diagnostic]:
    """Task prompts and judge rubrics parse, and read only dataset fields."""
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
