"""What the editor asks of an analysed document, answered from the compiler's tables.

Each function takes an `Analysis` (and a character offset into its text) and
returns plain results with spans: hover text from the attribute table, the
built-in functions and the declarations; completions by what `cursor_at` says may
be written at the place; the declaration a name refers to and every reference to
it; the outline; the formatted text (`grpo fmt`); and the estimated calls and cost
of each `learn` and `evaluate` from the compiled plan. `server` turns them into
the protocol's types.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from lsprotocol import types

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.language import ast
from grpo_dsl.language.attributes import (
    METRIC_NAMES,
    AttributeSpec,
    attribute_names,
    lookup,
)
from grpo_dsl.language.builtins import BUILTINS, READ_NAMES
from grpo_dsl.language.checks.context import Context
from grpo_dsl.language.cursor import Cursor, cursor_at
from grpo_dsl.language.diagnostics import ProgramError
from grpo_dsl.language.fmt import format_expression, format_program
from grpo_dsl.language.parser import parse
from grpo_dsl.language.queries import walk
from grpo_dsl.language.workspace import Workspace
from grpo_dsl.lsp.analysis import Analysis, import_target
from grpo_dsl.plan import compile as compile_plan

__all__ = [
    "Lens",
    "Target",
    "code_lenses",
    "completions",
    "definition",
    "formatted",
    "hover",
    "references",
    "symbols",
    "target_at",
]

_SPECIAL_CALLS = {
    "env": ('env("VAR", "default")', "the value of the environment variable `VAR` when the program runs, or the default"),
    "python": ('python("file.py:function")', "a Python function, in a file relative to this one"),
}
_CALLS = {**{b.name: (b.signature, b.doc) for b in BUILTINS.values()}, **_SPECIAL_CALLS}
"""How each function that may be called is written, and what it does."""
_SYMBOL_KINDS = {
    "model": types.SymbolKind.Class,
    "dataset": types.SymbolKind.Struct,
    "task": types.SymbolKind.Function,
    "tool": types.SymbolKind.Method,
    "reward": types.SymbolKind.Function,
    "policy": types.SymbolKind.Object,
    "learn": types.SymbolKind.Event,
    "evaluate": types.SymbolKind.Event,
    "emit": types.SymbolKind.Package,
}
_SHOWN_VALUE = 60
"""Characters of an attribute's value shown in a declaration's summary."""


# ------------------------------------------------------------------ what is where


@dataclass(frozen=True, slots=True)
class Target:
    """What is at an offset: a declaration's name, a reference to a name, an
    attribute's name (with the blocks around it), a call or an import."""

    what: Literal["declaration", "name", "attribute", "call", "import"]
    span: ast.Span
    name: str
    blocks: tuple[str, ...] = ()
    node: object = None


def _inside(span: ast.Span, offset: int) -> bool:
    return span.start <= offset <= span.end


def _in_expression(expr: ast.Expr, offset: int, blocks: tuple[str, ...]) -> Target | None:
    for node in walk(expr):
        if not _inside(node.span, offset):
            continue
        if isinstance(node, ast.Name) and node.span.start <= offset:
            return Target("name", node.span, node.name, blocks, node)
        if isinstance(node, ast.Call) and offset <= node.span.start + len(node.function):
            span = ast.Span(node.span.path, node.span.line, node.span.column, node.span.line,
                            node.span.column + len(node.function), node.span.start, node.span.start + len(node.function))
            return Target("call", span, node.function, blocks, node)
    return None


def _in_attributes(attributes: Iterable[ast.Attribute], offset: int, blocks: tuple[str, ...]) -> Target | None:
    for attribute in attributes:
        if not _inside(attribute.span, offset):
            continue
        if _inside(attribute.name_span, offset):
            return Target("attribute", attribute.name_span, attribute.name, blocks, attribute)
        if isinstance(attribute.value, ast.Block):
            return _in_attributes(attribute.value.attributes, offset, (*blocks, attribute.name))
        return _in_expression(attribute.value, offset, (*blocks, attribute.name))
    return None


def target_at(program: ast.Program, offset: int) -> Target | None:
    """What is at `offset` in `program`, or None."""
    for item in program.imports:
        if _inside(item.path.span, offset):
            return Target("import", item.path.span, item.path.value, (), item)
    for decl in program.declarations:
        if not _inside(decl.span, offset):
            continue
        if _inside(decl.name_span, offset):
            return Target("declaration", decl.name_span, decl.name, (decl.kind,), decl)
        if isinstance(decl, ast.Reward) and decl.expression is not None:
            return _in_expression(decl.expression, offset, ("reward",))
        return _in_attributes(decl.attributes, offset, (decl.kind,))
    return None


def _declarations(analysis: Analysis) -> dict[str, ast.Decl]:
    if analysis.workspace is not None:
        return analysis.workspace.declarations
    program = analysis.program
    return {decl.name: decl for decl in reversed(program.declarations)} if program is not None else {}


def _resolved(analysis: Analysis, target: Target) -> ast.Decl | None:
    """The declaration a declaration name or a reference names."""
    if target.what == "declaration":
        assert isinstance(target.node, ast.Declaration)
        return target.node  # type: ignore[return-value]
    if target.what == "name":
        return _declarations(analysis).get(target.name)
    return None


# ------------------------------------------------------------------------- hover


def _default(spec: AttributeSpec) -> str:
    if spec.required:
        return "required"
    if spec.default is None:
        return "absent by default"
    value = spec.default
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, list):
        shown = "[" + ", ".join(value) + "]"
    elif isinstance(value, dict):
        shown = "{ " + "  ".join(f"{k} = {'absent' if v is None else v}" for k, v in value.items()) + " }"
    else:
        shown = value if isinstance(value, str) and spec.kind == "enum" else json.dumps(value)
    return f"default `{shown}`"


def _attribute_hover(blocks: tuple[str, ...], name: str) -> str | None:
    spec = lookup(".".join(blocks), name) if blocks and blocks[0] in _SYMBOL_KINDS else None
    if spec is None:
        return None
    where = " · ".join(blocks)
    return f"**`{name}`** ({where}): {spec.describe()}, {_default(spec)}\n\n{spec.doc}"


def _value(value: ast.Expr | ast.Block) -> str:
    if isinstance(value, ast.Block):
        return "{ " + "  ".join(f"{a.name} = {_value(a.value)}" for a in value.attributes) + " }"
    shown = " ".join(format_expression(value).split())
    return shown if len(shown) <= _SHOWN_VALUE else shown[: _SHOWN_VALUE - 1] + "…"


def _summary(decl: ast.Decl) -> str:
    head = f"{decl.kind} {decl.name}"
    if isinstance(decl, ast.Reward) and decl.expression is not None:
        lines = [f"{head} = {_value(decl.expression)}"]
    else:
        lines = [head + " {", *(f"  {a.name} = {_value(a.value)}" for a in decl.attributes), "}"]
    body = "\n".join(lines)
    return f"```grpo\n{body}\n```\n\ndeclared in `{decl.span.path}` line {decl.span.line}"


def hover(analysis: Analysis, offset: int) -> tuple[str, ast.Span] | None:
    """Markdown about what is at `offset`, and the span it is about."""
    target = target_at(analysis.program, offset) if analysis.program is not None else None
    if target is None:
        return None
    text: str | None = None
    if target.what == "attribute":
        text = _attribute_hover(target.blocks, target.name)
    elif target.what == "call" and target.name in _CALLS:
        signature, meaning = _CALLS[target.name]
        text = f"```grpo\n{signature}\n```\n\n{meaning}"
    elif (decl := _resolved(analysis, target)) is not None:
        text = _summary(decl)
    return (text, target.span) if text is not None else None


# -------------------------------------------------------------------- completion


def _item(label: str, kind: types.CompletionItemKind, detail: str | None = None, doc: str | None = None,
          insert: str | None = None) -> types.CompletionItem:
    documentation = types.MarkupContent(types.MarkupKind.Markdown, doc) if doc else None
    return types.CompletionItem(label, kind=kind, detail=detail, documentation=documentation, insert_text=insert)


def _names_of(analysis: Analysis, kinds: Iterable[str]) -> Iterator[types.CompletionItem]:
    wanted = set(kinds)
    for decl in _declarations(analysis).values():
        if decl.kind in wanted:
            yield _item(decl.name, types.CompletionItemKind.Reference, decl.kind, _summary(decl))


def _value_items(analysis: Analysis, spec: AttributeSpec) -> Iterator[types.CompletionItem]:
    if spec.kind == "ref":
        yield from _names_of(analysis, spec.refers_to)
    elif spec.kind in ("enum", "words"):
        yield from (_item(word, types.CompletionItemKind.EnumMember, spec.name) for word in spec.words)
    elif spec.kind == "tools":
        yield _item("python", types.CompletionItemKind.Keyword, "the built-in code interpreter")
        yield from _names_of(analysis, ("tool",))
    elif spec.kind == "bool":
        yield from (_item(word, types.CompletionItemKind.Keyword) for word in ("true", "false"))
    elif spec.kind in ("library", "libraries"):
        if spec.kind == "libraries":
            yield _item("none", types.CompletionItemKind.Keyword, "no library")
        yield from _names_of(analysis, ("learn",))
    elif spec.kind == "metrics":
        yield from (_item(f"{name}@", types.CompletionItemKind.EnumMember, "a metric") for name in METRIC_NAMES)
        yield _item("mean", types.CompletionItemKind.EnumMember, "a metric")
    elif spec.kind in ("python", "env_string"):
        signature, meaning = _SPECIAL_CALLS["python" if spec.kind == "python" else "env"]
        yield _item(signature, types.CompletionItemKind.Function, None, meaning)


def _fields(analysis: Analysis, cursor: Cursor) -> set[str]:
    """The dataset fields a template or reward expression of the cursor's
    declaration may read: those of the datasets it runs on, or of every dataset
    when it is not used yet."""
    if analysis.workspace is None:
        return set()
    context = Context.of(analysis.workspace)
    name = cursor.declaration or ""
    used = context.task_datasets(name) if cursor.blocks[:1] == ("task",) else context.reward_datasets(name)
    fields: set[str] = set()
    for dataset in used or list(context.datasets):
        fields |= set(context.fields_of(dataset) or ())
    return fields


def completions(analysis: Analysis, offset: int) -> list[types.CompletionItem]:
    """What may be written at `offset`."""
    cursor = cursor_at(analysis.text, offset)
    items: list[types.CompletionItem] = []
    if cursor.place == "declaration":
        words = ["import", *_SYMBOL_KINDS] if analysis.program is None or not analysis.program.declarations else list(_SYMBOL_KINDS)
        items = [_item(word, types.CompletionItemKind.Keyword) for word in words]
    elif cursor.place == "attribute" and cursor.blocks[0] in _SYMBOL_KINDS:
        kind = ".".join(cursor.blocks)
        for name in attribute_names(kind):  # none for a mapping such as `fields`
            spec = lookup(kind, name)
            assert spec is not None
            insert = f"{spec.name} {{ " if spec.kind in ("block", "mapping") else f"{spec.name} = "
            items.append(_item(spec.name, types.CompletionItemKind.Property, spec.describe(), spec.doc, insert))
    elif cursor.place == "value" and cursor.blocks and cursor.attribute is not None:
        spec = lookup(".".join(cursor.blocks), cursor.attribute) if cursor.blocks[0] in _SYMBOL_KINDS else None
        items = list(_value_items(analysis, spec)) if spec is not None else []
    elif cursor.place == "expression":
        items = [_item(b.signature, types.CompletionItemKind.Function, None, b.doc, b.name) for b in BUILTINS.values()]
        items += [_item(name, types.CompletionItemKind.Variable, "what the answer gives") for name in READ_NAMES]
        items += [i for i in _names_of(analysis, ("reward",)) if i.label != cursor.declaration]
        items += [_item(name, types.CompletionItemKind.Field, "a dataset field") for name in sorted(_fields(analysis, cursor))]
    elif cursor.place == "template":
        extra = {"output"} if cursor.blocks[:1] == ("reward",) else set()
        names = sorted(_fields(analysis, cursor) | extra | {"experiences"})
        items = [
            _item(name, types.CompletionItemKind.Field, None if name in ("output", "experiences") else "a dataset field")
            for name in names
        ]
    return items


# -------------------------------------------------------------------- navigation


def definition(analysis: Analysis, offset: int) -> tuple[str, ast.Span] | None:
    """Where the name (or the imported file) at `offset` is declared."""
    target = target_at(analysis.program, offset) if analysis.program is not None else None
    if target is None:
        return None
    if target.what == "import":
        assert isinstance(target.node, ast.Import)
        path = import_target(analysis.path, target.node)
        return path, ast.Span(path, 1, 1, 1, 1)
    decl = _resolved(analysis, target)
    return (decl.span.path, decl.name_span) if decl is not None else None


def _referring_names(program: ast.Program, name: str, kind: str) -> Iterator[ast.Name]:
    """The names in `program` that refer to a declaration `name` of `kind`: values of
    reference attributes, libraries compared or started from, names read by rewards."""

    def in_attributes(attributes: Iterable[ast.Attribute], block: str) -> Iterator[ast.Name]:
        for attribute in attributes:
            if isinstance(attribute.value, ast.Block):
                yield from in_attributes(attribute.value.attributes, f"{block}.{attribute.name}")
                continue
            spec = lookup(block, attribute.name) if block.split(".")[0] in _SYMBOL_KINDS else None
            if spec is not None and spec.kind in ("ref", "library", "libraries", "tools"):
                yield from (node for node in walk(attribute.value) if isinstance(node, ast.Name) and node.name == name)

    for decl in program.declarations:
        if isinstance(decl, ast.Reward) and decl.expression is not None:
            if kind == "reward":
                yield from (node for node in walk(decl.expression) if isinstance(node, ast.Name) and node.name == name)
        else:
            yield from in_attributes(decl.attributes, decl.kind)


def references(analysis: Analysis, offset: int, others: Iterable[Workspace], include_declaration: bool) -> list[ast.Span]:
    """Every place that refers to the declaration named at `offset`: in this
    document and its imports, and in the workspaces of `others` (other files of
    the project) that see the same declaration."""
    target = target_at(analysis.program, offset) if analysis.program is not None else None
    decl = _resolved(analysis, target) if target is not None else None
    if decl is None:
        return []
    found: dict[tuple[str, int], ast.Span] = {}
    if include_declaration:
        found[(decl.span.path, decl.name_span.start)] = decl.name_span
    mine = [analysis.workspace] if analysis.workspace is not None else []
    for workspace in (*mine, *others):
        same = workspace.declarations.get(decl.name)
        if same is None or (same.span.path, same.name_span.start) != (decl.span.path, decl.name_span.start):
            continue
        for program in workspace.files.values():
            for node in _referring_names(program, decl.name, decl.kind):
                found.setdefault((node.span.path, node.span.start), node.span)
    return [found[key] for key in sorted(found)]


def symbols(analysis: Analysis, to_range: Callable[[ast.Span], types.Range]) -> list[types.DocumentSymbol]:
    """The outline of the document: declarations, their attributes and nested blocks
    (`to_range` places a span in the document, as `Lines.range` does)."""

    def attribute_symbols(attributes: Iterable[ast.Attribute]) -> list[types.DocumentSymbol]:
        out = []
        for attribute in attributes:
            nested = attribute.value.attributes if isinstance(attribute.value, ast.Block) else ()
            kind = types.SymbolKind.Struct if isinstance(attribute.value, ast.Block) else types.SymbolKind.Property
            detail = None if isinstance(attribute.value, ast.Block) else _value(attribute.value)
            out.append(types.DocumentSymbol(attribute.name, kind, to_range(attribute.span), to_range(attribute.name_span),
                                            detail=detail, children=attribute_symbols(nested)))
        return out

    program = analysis.program
    if program is None:
        return []
    return [
        types.DocumentSymbol(decl.name, _SYMBOL_KINDS[decl.kind], to_range(decl.span), to_range(decl.name_span),
                             detail=decl.kind, children=attribute_symbols(decl.attributes))
        for decl in program.declarations
    ]


# ---------------------------------------------------------------- fmt and lenses


def formatted(analysis: Analysis) -> str | None:
    """The document in the canonical layout of `grpo fmt`, or None when it does not parse."""
    try:
        return format_program(parse(analysis.text, analysis.path))
    except ProgramError:
        return None


@dataclass(frozen=True, slots=True)
class Lens:
    """A line above a declaration: a title, and the editor command it runs."""

    span: ast.Span
    title: str
    command: str
    arguments: tuple[str, ...]


def _estimate_title(calls: int, max_calls: int, tokens: int, usd: float, upper_bound: bool) -> str:
    counted = f"{calls:,} to {max_calls:,} calls" if max_calls > calls else f"{calls:,} calls"
    return f"estimate: {'at most ' if upper_bound else ''}{counted}, {tokens:,} tokens, ${usd:,.2f}"


def code_lenses(analysis: Analysis) -> list[Lens]:
    """For each `learn` and `evaluate` of a document that compiles: its estimated
    calls, tokens and cost from the plan (showing `grpo plan --explain`), and a
    command to run it."""
    program, workspace = analysis.program, analysis.workspace
    if program is None or workspace is None or any(d.severity == "error" for d in analysis.diagnostics):
        return []
    try:
        plan = compile_plan(workspace)
    except GrpoError:
        return []
    lenses: list[Lens] = []
    for decl in program.declarations:
        if isinstance(decl, ast.Learn | ast.Evaluate):
            kind: Literal["learn", "evaluate"] = "learn" if isinstance(decl, ast.Learn) else "evaluate"
            cost = plan.estimate(kind, decl.name)
            title = _estimate_title(cost.calls, cost.max_calls, cost.prompt_tokens + cost.completion_tokens, cost.usd, cost.upper_bound)
            lenses.append(Lens(decl.name_span, title, "grpo.explainPlan", (analysis.path,)))
            verb = "run" if kind == "learn" else "evaluate"
            lenses.append(Lens(decl.name_span, f"▶ {verb} {decl.name}", "grpo.run", (analysis.path, kind, decl.name)))
    return lenses
