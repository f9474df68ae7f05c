"""Names: one declaration per name across all files (E0103), and every reference
resolving to a declaration of the right kind (E0203, E0201)."""

from __future__ import annotations

from collections.abc import Iterator

from grpo_dsl.language import ast
from grpo_dsl.language.attributes import lookup
from grpo_dsl.language.checks.context import Context, did_you_mean, error
from grpo_dsl.language.diagnostics import Diagnostic

__all__ = ["check_duplicates", "check_references"]


def _place(span: ast.Span) -> str:
    return f"{span.path}:{span.line}"


def check_duplicates(context: Context) -> Iterator[Diagnostic]:
    """A name declared twice, in one file or across imported files."""
    first: dict[str, ast.Decl] = {}
    for decl in context.workspace.all_declarations():
        earlier = first.setdefault(decl.name, decl)
        if earlier is decl:
            continue
        yield error(
            "E0103",
            f"`{decl.name}` is declared twice",
            decl.name_span,
            f"first declared as a {earlier.kind} at {_place(earlier.name_span)}; rename one of them",
        )


def _resolve(context: Context, name: ast.Name, kinds: tuple[str, ...], what: str) -> Iterator[Diagnostic]:
    found = context.workspace.declarations.get(name.name)
    if found is not None and found.kind in kinds:
        return
    same_kind = [d.name for d in context.workspace.declarations.values() if d.kind in kinds]
    suggestion = did_you_mean(name.name, same_kind)
    listing = _choices(kinds[0], same_kind) if same_kind else None
    if found is None:
        hint = suggestion or listing or f"declare a {kinds[0]} `{name.name}`"
        yield error("E0203", f"unknown {what} `{name.name}`", name.span, hint)
    else:
        yield error(
            "E0201",
            f"`{name.name}` is a {found.kind}, but {_article(what)} is expected here",
            name.span,
            suggestion or listing,
        )


def _article(what: str) -> str:
    """`a model`, `an evaluate`: the indefinite article for a kind."""
    return f"an {what}" if what[0] in "aeiou" else f"a {what}"


def _choices(kind: str, names: list[str]) -> str:
    listed = ", ".join(f"`{n}`" for n in sorted(names)[:6])
    return f"the {kind}s declared are {listed}"


def _references(context: Context, kind: str, attributes: tuple[ast.Attribute, ...]) -> Iterator[Diagnostic]:
    for item in attributes:
        spec = lookup(kind, item.name)
        if spec is None:
            continue
        value = item.value
        if spec.kind == "ref" and isinstance(value, ast.Name):
            yield from _resolve(context, value, spec.refers_to, " or ".join(spec.refers_to))
        elif spec.kind == "library" and isinstance(value, ast.Name):
            yield from _resolve(context, value, ("learn",), "learn")
        elif spec.kind == "libraries" and isinstance(value, ast.ListExpr):
            for library in value.items:
                if isinstance(library, ast.Name) and library.name != "none":
                    yield from _resolve(context, library, ("learn",), "learn")
        elif spec.kind == "tools" and isinstance(value, ast.ListExpr):
            for tool in value.items:
                if isinstance(tool, ast.Name) and tool.name != "python":
                    yield from _resolve(context, tool, ("tool",), "tool")
        elif spec.kind == "block" and isinstance(value, ast.Block):
            yield from _references(context, f"{kind}.{item.name}", value.attributes)


def check_references(context: Context) -> Iterator[Diagnostic]:
    """Every reference in an attribute names a declaration of the kind it needs."""
    for decl in context.workspace.all_declarations():
        yield from _references(context, decl.kind, decl.attributes)
