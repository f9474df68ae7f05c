"""Questions the checks and the compiler ask of the AST: the expressions inside an
expression, the names it reads, what an attribute refers to, python references."""

from __future__ import annotations

import re
from collections.abc import Iterator

from grpo_dsl.language import ast

__all__ = ["PYTHON_REFERENCE", "names_in", "reference", "walk"]


PYTHON_REFERENCE = re.compile(r"(?P<file>[^:]+\.py):(?P<function>[A-Za-z_][A-Za-z0-9_]*)")


def reference(decl: ast.Declaration, attribute: str) -> str | None:
    """The name an attribute refers to (`task = math` gives `math`), or None."""
    found = decl.get(attribute)
    return found.value.name if found is not None and isinstance(found.value, ast.Name) else None


def walk(expr: ast.Expr) -> Iterator[ast.Expr]:
    """`expr` and every expression inside it, depth first, left to right."""
    yield expr
    children: tuple[ast.Expr, ...] = ()
    if isinstance(expr, ast.Call):
        children = expr.args
    elif isinstance(expr, ast.ListExpr):
        children = expr.items
    elif isinstance(expr, ast.Unary):
        children = (expr.operand,)
    elif isinstance(expr, ast.Binary):
        children = (expr.left, expr.right)
    elif isinstance(expr, ast.Conditional):
        children = (expr.condition, expr.then, expr.otherwise)
    for child in children:
        yield from walk(child)


def names_in(expr: ast.Expr) -> Iterator[ast.Name]:
    """Every bare name read by an expression (not function names)."""
    return (node for node in walk(expr) if isinstance(node, ast.Name))
