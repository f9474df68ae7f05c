"""Declarations that no `learn`, `evaluate` or `emit` reaches (W0001).

Only the main file is checked, and only when it declares a `learn`, `evaluate` or
`emit` itself: a file without them is a library meant to be imported, and an
imported file may declare more than one program uses.
"""

from __future__ import annotations

from collections.abc import Iterator

from grpo_dsl.language import ast
from grpo_dsl.language.attributes import lookup
from grpo_dsl.language.checks.context import Context, warning
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.queries import names_in, walk

__all__ = ["check_unused"]

_ROOTS = (ast.Learn, ast.Evaluate, ast.Emit)


def _referenced(kind: str, attributes: tuple[ast.Attribute, ...]) -> Iterator[str]:
    for item in attributes:
        spec = lookup(kind, item.name)
        if spec is None:
            continue
        if isinstance(item.value, ast.Block):
            if spec.kind == "block":
                yield from _referenced(f"{kind}.{item.name}", item.value.attributes)
        elif spec.kind in ("ref", "library", "libraries", "tools"):
            for node in walk(item.value):
                if isinstance(node, ast.Name | ast.String):
                    yield node.name if isinstance(node, ast.Name) else node.value


def _references(decl: ast.Decl) -> Iterator[str]:
    yield from _referenced(decl.kind, decl.attributes)
    if isinstance(decl, ast.Reward) and decl.expression is not None:
        yield from (name.name for name in names_in(decl.expression))


def check_unused(context: Context) -> Iterator[Diagnostic]:
    """Warn about declarations of the main file that nothing uses."""
    workspace = context.workspace
    if not any(isinstance(d, _ROOTS) for d in workspace.program.declarations):
        return
    reached: set[str] = set()
    pending = [d.name for d in workspace.declarations.values() if isinstance(d, _ROOTS)]
    while pending:
        name = pending.pop()
        decl = workspace.declarations.get(name)
        if name in reached or decl is None:
            continue
        reached.add(name)
        pending.extend(_references(decl))
    for decl in workspace.program.declarations:
        if decl.name not in reached and not isinstance(decl, _ROOTS) and workspace.declarations.get(decl.name) is decl:
            yield warning(
                "W0001",
                f"{decl.kind} `{decl.name}` is never used",
                decl.name_span,
                "no learn, evaluate or emit reaches it; remove it or refer to it",
            )
