"""Reward expressions: functions and their arity (E0204, E0205), `python(...)` and
`env(...)` (E0106, E0207), the names a reward may read (E0202), cycles (E0206)."""

from __future__ import annotations

from collections.abc import Iterator

from grpo_dsl.language import ast
from grpo_dsl.language.builtins import BUILTINS, READ_NAMES
from grpo_dsl.language.checks.context import (
    Context,
    did_you_mean,
    error,
    python_call_problems,
)
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.queries import names_in, walk

__all__ = ["check_functions", "check_reward_names", "check_reward_cycles"]

_SPECIAL_FUNCTIONS = ("python", "env")


def _expression_rewards(context: Context) -> Iterator[tuple[ast.Reward, ast.Expr]]:
    for decl in context.workspace.all_declarations():
        if isinstance(decl, ast.Reward) and decl.expression is not None:
            yield decl, decl.expression


def _check_call(call: ast.Call) -> Iterator[Diagnostic]:
    if call.function == "env":
        yield error(
            "E0207",
            "`env(...)` cannot be used in a reward expression",
            call.span,
            "env() sets model attributes; a reward reads `output`, dataset fields and other rewards",
        )
    elif call.function == "python":
        yield from python_call_problems(call, "rewards.py:score")
    elif (builtin := BUILTINS.get(call.function)) is None:
        suggestion = did_you_mean(call.function, [*BUILTINS, *_SPECIAL_FUNCTIONS])
        known = ", ".join(f"`{name}`" for name in BUILTINS)
        yield error("E0204", f"unknown function `{call.function}`", call.span, suggestion or f"the built-in functions are {known}")
    elif (problem := builtin.arity_error(len(call.args))) is not None:
        yield error("E0205", problem, call.span, f"{builtin.name}: {builtin.doc}")


def check_functions(context: Context) -> Iterator[Diagnostic]:
    """Every call in a reward is a built-in with the right number of arguments, or
    a well-formed `python("file.py:function")`."""
    for _, expression in _expression_rewards(context):
        for node in walk(expression):
            if isinstance(node, ast.Call):
                yield from _check_call(node)


def _visible_fields(context: Context, reward: str) -> tuple[list[tuple[str, frozenset[str]]], bool]:
    """The readable datasets a reward is evaluated on with their fields, and whether
    the reward is used at all (an unused reward may read a field of any dataset)."""
    used = context.reward_datasets(reward)
    names = used or list(context.datasets)
    known = [(name, fields) for name in names if (fields := context.fields_of(name)) is not None]
    return known, bool(used)


def _check_name(context: Context, reward: ast.Reward, name: ast.Name) -> Iterator[Diagnostic]:
    if name.name in READ_NAMES:
        return
    declared = context.workspace.declarations.get(name.name)
    if isinstance(declared, ast.Reward):
        return
    if declared is not None:
        yield error(
            "E0202",
            f"`{name.name}` is a {declared.kind}, which a reward cannot read",
            name.span,
            "a reward reads `output`, `tokens`, `tool_calls`, dataset fields and other rewards",
        )
        return
    known, used = _visible_fields(context, reward.name)
    if not known:
        return
    lacking = [dataset for dataset, fields in known if name.name not in fields]
    having = len(known) - len(lacking)
    if not lacking or (not used and having):
        return
    if used and having:
        dataset = lacking[0]
        yield error(
            "E0202",
            f"`{name.name}` is not a field of dataset `{dataset}`, which reward `{reward.name}` is evaluated on",
            name.span,
            f'map a column to it in dataset `{dataset}`: `fields {{ {name.name} = "column" }}`',
        )
        return
    visible = {*READ_NAMES, *(f for _, fields in known for f in fields)}
    visible |= {d.name for d in context.of_kind(ast.Reward)}
    hint = did_you_mean(name.name, visible) or "a reward reads `output`, `tokens`, `tool_calls`, dataset fields and other rewards"
    yield error("E0202", f"unknown name `{name.name}` in reward `{reward.name}`", name.span, hint)


def check_reward_names(context: Context) -> Iterator[Diagnostic]:
    """Every name a reward reads is `output`, `tokens`, `tool_calls`, a field of each
    dataset the reward is evaluated on, or another reward."""
    for reward, expression in _expression_rewards(context):
        for node in walk(expression):
            if isinstance(node, ast.Name):
                yield from _check_name(context, reward, node)
            elif isinstance(node, ast.Metric):
                yield error(
                    "E0202",
                    f"`{node.name}@{node.k}` is a metric, which a reward cannot read",
                    node.span,
                    "metrics are listed in the `metrics` of an evaluate",
                )


def check_reward_cycles(context: Context) -> Iterator[Diagnostic]:
    """A reward that depends on itself, directly or through other rewards."""
    rewards = {d.name: d for d in context.of_kind(ast.Reward) if isinstance(d, ast.Reward)}
    edges = {
        name: [n for n in names_in(decl.expression) if n.name in rewards] if decl.expression is not None else []
        for name, decl in rewards.items()
    }
    done: set[str] = set()
    reported: set[frozenset[str]] = set()
    path: list[str] = []

    def visit(name: str) -> Iterator[Diagnostic]:
        path.append(name)
        for reference in edges[name]:
            if reference.name in path:
                cycle = path[path.index(reference.name) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    chain = " -> ".join(f"`{n}`" for n in [*cycle, reference.name])
                    yield error(
                        "E0206",
                        f"reward `{reference.name}` depends on itself: {chain}",
                        reference.span,
                        "a reward may read other rewards, but not in a circle",
                    )
            elif reference.name not in done:
                yield from visit(reference.name)
        path.pop()
        done.add(name)

    for name in rewards:
        if name not in done:
            yield from visit(name)
