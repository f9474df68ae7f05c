"""Attributes against the attribute table: unknown, duplicate, missing, wrongly typed
or out of range (E0301-E0307, E0106, E0207)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from grpo_dsl.language import ast
from grpo_dsl.language.attributes import (
    METRIC_NAMES,
    SPECS,
    AttributeSpec,
    attribute_names,
    lookup,
    written_word,
)
from grpo_dsl.language.checks.context import (
    Context,
    did_you_mean,
    error,
    python_call_problems,
)
from grpo_dsl.language.diagnostics import Diagnostic

__all__ = ["check_attributes", "describe_value"]

_VERSION = re.compile(r"\d+\.\d+\.\d+")
_ENV_ATTRIBUTES = ", ".join(f"`{s.name}`" for s in SPECS["model"] if s.kind == "env_string")


def describe_value(value: ast.Expr | ast.Block) -> str:
    """A value in words, for "expected X, found Y"."""
    match value:
        case ast.String():
            return "a string"
        case ast.Number(value=number):
            return f"the number {number}"
        case ast.Bool(value=flag):
            return "`true`" if flag else "`false`"
        case ast.Null():
            return "`null`"
        case ast.Name(name=name):
            return f"the name `{name}`"
        case ast.Metric(name=name, k=k):
            return f"the metric `{name}@{k}`"
        case ast.ListExpr():
            return "a list"
        case ast.Call(function=function):
            return f"a call of `{function}(...)`"
        case ast.Block():
            return "a block"
    return "an expression"


def _type_error(attribute: str, spec: AttributeSpec, value: ast.Expr | ast.Block, hint: str | None = None) -> Diagnostic:
    message = f"`{attribute}` must be {spec.describe()}, found {describe_value(value)}"
    if hint is None and isinstance(value, ast.Null):
        hint = "leave the attribute out to use its default"
    return error("E0303", message, value.span, hint)


def _unquote_hint(value: ast.Expr | ast.Block) -> str | None:
    if isinstance(value, ast.String) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value.value):
        return f"write the name without quotes: `{value.value}`"
    return None


def _env_call(call: ast.Call) -> Iterator[Diagnostic]:
    strings = [arg for arg in call.args if isinstance(arg, ast.String)]
    if not 1 <= len(call.args) <= 2 or len(strings) != len(call.args):
        yield error(
            "E0207",
            "`env` takes the variable's name and an optional default, both strings",
            call.span,
            'write `env("VAR")` or `env("VAR", "default")`',
        )
    elif not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", strings[0].value):
        yield error("E0207", "`env` needs an environment variable name such as `API_KEY`", strings[0].span)


def _python_call(attribute: str, spec: AttributeSpec, value: ast.Expr | ast.Block) -> Iterator[Diagnostic]:
    if not (isinstance(value, ast.Call) and value.function == "python"):
        yield _type_error(attribute, spec, value)
    else:
        yield from python_call_problems(value, "rules.py:apply")


def _number(attribute: str, spec: AttributeSpec, value: ast.Expr | ast.Block) -> Iterator[Diagnostic]:
    integer = spec.kind == "integer"
    if not isinstance(value, ast.Number) or (integer and not isinstance(value.value, int)):
        yield _type_error(attribute, spec, value)
        return
    number = value.value
    low, high = spec.minimum, spec.maximum
    below = low is not None and (number <= low if spec.exclusive_minimum else number < low)
    if below or (high is not None and number > high):
        yield error("E0304", f"`{attribute}` must be {spec.describe()}, found {value.raw or number}", value.span)


def _word(attribute: str, spec: AttributeSpec, value: ast.Expr) -> Iterator[Diagnostic]:
    if isinstance(value, ast.String) and value.value in spec.words:
        if written_word(value.value) != value.value:
            return
        yield _type_error(attribute, spec, value, f"write the word without quotes: `{value.value}`")
    elif not isinstance(value, ast.Name):
        yield _type_error(attribute, spec, value)
    elif value.name not in spec.words:
        choices = ", ".join(f"`{written_word(w)}`" for w in spec.words)
        suggestion = did_you_mean(value.name, spec.words)
        yield error(
            "E0306",
            f"`{value.name}` is not allowed for `{attribute}`",
            value.span,
            (f"{suggestion} " if suggestion else "") + f"expected one of {choices}",
        )


def _metric(attribute: str, item: ast.Expr) -> Iterator[Diagnostic]:
    if isinstance(item, ast.Name) and item.name in METRIC_NAMES:
        if item.name == "pass":
            yield error("E0307", "`pass` needs a number of samples", item.span, "write `pass@1` or `pass@k`")
        return
    if isinstance(item, ast.Metric) and item.name in METRIC_NAMES:
        if item.k < 1:
            yield error("E0304", f"`{item.name}@{item.k}` must count at least one sample", item.span)
        return
    if isinstance(item, ast.Name | ast.Metric):
        name = item.name
        suggestion = did_you_mean(name, METRIC_NAMES)
        hint = f"{suggestion} " if suggestion else ""
        yield error("E0307", f"unknown metric `{name}`", item.span, hint + "metrics are `mean`, `mean@k` and `pass@k`")
        return
    yield error("E0303", f"`{attribute}` lists metrics, found {describe_value(item)}", item.span)


def _value(attribute: str, spec: AttributeSpec, value: ast.Expr | ast.Block, kind: str) -> Iterator[Diagnostic]:
    if spec.kind in ("block", "mapping"):
        if not isinstance(value, ast.Block):
            yield _type_error(attribute, spec, value, f"write `{attribute} {{ ... }}`")
        elif spec.kind == "block":
            yield from _attributes(f"{kind}.{attribute}", value.attributes, None)
        else:
            yield from _mapping(attribute, value)
        return
    if isinstance(value, ast.Block):
        yield _type_error(attribute, spec, value, f"write `{attribute} = ...`")
        return
    if isinstance(value, ast.Call) and value.function == "env":
        if spec.kind != "env_string":
            yield error(
                "E0207",
                f"`env(...)` cannot set `{attribute}`",
                value.span,
                f"env() is allowed only in {_ENV_ATTRIBUTES} of a model",
            )
        else:
            yield from _env_call(value)
        return
    match spec.kind:
        case "string" | "template" | "path" | "env_string":
            if not isinstance(value, ast.String):
                yield _type_error(attribute, spec, value)
        case "version":
            if not isinstance(value, ast.String) or not _VERSION.fullmatch(value.value):
                yield _type_error(attribute, spec, value)
        case "number" | "integer":
            yield from _number(attribute, spec, value)
        case "bool":
            if not isinstance(value, ast.Bool):
                yield _type_error(attribute, spec, value)
        case "ref":
            if not isinstance(value, ast.Name):
                yield _type_error(attribute, spec, value, _unquote_hint(value))
        case "enum":
            yield from _word(attribute, spec, value)
        case "words" | "metrics":
            if not isinstance(value, ast.ListExpr):
                yield _type_error(attribute, spec, value, f"write a list: `{attribute} = [...]`")
                return
            for item in value.items:
                yield from _word(attribute, spec, item) if spec.kind == "words" else _metric(attribute, item)
        case "tools":
            if not isinstance(value, ast.ListExpr):
                yield _type_error(attribute, spec, value, f"write a list: `{attribute} = [python, search]`")
                return
            for item in value.items:
                if not isinstance(item, ast.Name):
                    yield _type_error(attribute, spec, item, _unquote_hint(item))
        case "paths" | "strings":
            if not isinstance(value, ast.ListExpr):
                yield _type_error(attribute, spec, value, f'write a list: `{attribute} = ["file.csv"]`')
                return
            for item in value.items:
                if not isinstance(item, ast.String):
                    yield _type_error(attribute, spec, item)
        case "libraries":
            if not isinstance(value, ast.ListExpr):
                yield _type_error(attribute, spec, value, f"write a list: `{attribute} = [...]`")
                return
            for item in value.items:
                if not isinstance(item, ast.Name | ast.String):
                    yield _type_error(attribute, spec, item)
        case "library":
            if not isinstance(value, ast.Name | ast.String):
                yield _type_error(attribute, spec, value)
        case "python":
            yield from _python_call(attribute, spec, value)
        case "schema":
            if not (isinstance(value, ast.Call) and value.function == "schema" and len(value.args) == 1 and isinstance(value.args[0], ast.String)):
                yield _type_error(attribute, spec, value, 'write `response = schema("answer.schema.json")`')


def _mapping(attribute: str, block: ast.Block) -> Iterator[Diagnostic]:
    seen: dict[str, ast.Attribute] = {}
    for item in block.attributes:
        if item.name in seen:
            yield _duplicate(item, seen[item.name])
            continue
        seen[item.name] = item
        if not isinstance(item.value, ast.String):
            yield error(
                "E0303",
                f"`{attribute}.{item.name}` must be a column name in quotes, found {describe_value(item.value)}",
                item.value.span,
                f'write `{item.name} = "column"`',
            )


def _duplicate(item: ast.Attribute, first: ast.Attribute) -> Diagnostic:
    return error(
        "E0305",
        f"`{item.name}` is set twice",
        item.name_span,
        f"first set at line {first.name_span.line}; remove one of them",
    )


def _unknown(kind: str, item: ast.Attribute) -> Diagnostic:
    known = attribute_names(kind)
    suggestion = did_you_mean(item.name, known)
    where = kind.replace(".", " block `", 1) + "`" if "." in kind else f"a {kind}"
    if suggestion is None:
        owners = [other for other in SPECS if other != kind and item.name in attribute_names(other)]
        listed = ", ".join(f"`{name}`" for name in known)
        suggestion = f"`{item.name}` belongs in a {owners[0]}; " if owners else ""
        suggestion += f"the attributes of {where} are {listed}"
    return error("E0301", f"unknown attribute `{item.name}` in {where}", item.name_span, suggestion)


def _attributes(kind: str, attributes: tuple[ast.Attribute, ...], decl: ast.Declaration | None) -> Iterator[Diagnostic]:
    seen: dict[str, ast.Attribute] = {}
    for item in attributes:
        spec = lookup(kind, item.name)
        if spec is None:
            yield _unknown(kind, item)
        elif item.name in seen:
            yield _duplicate(item, seen[item.name])
        else:
            seen[item.name] = item
            yield from _value(item.name, spec, item.value, kind)
    if decl is not None:
        for spec in SPECS[kind]:
            if spec.required and spec.name not in seen:
                yield error(
                    "E0302",
                    f"{decl.kind} `{decl.name}` is missing the required attribute `{spec.name}`",
                    decl.name_span,
                    f"add `{spec.name} = ...` ({spec.describe()})",
                )


def check_attributes(context: Context) -> Iterator[Diagnostic]:
    """Every attribute of every declaration against the attribute table."""
    for decl in context.workspace.all_declarations():
        if isinstance(decl, ast.Reward) and decl.expression is not None:
            continue
        yield from _attributes(decl.kind, decl.attributes, decl)
