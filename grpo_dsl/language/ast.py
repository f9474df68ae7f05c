"""The syntax tree of a `.grpo` program.

Every node is a frozen, slotted dataclass with a `span`. Spans, and the raw source
text of literals, take no part in equality, so two programs that differ only in
layout compare equal (`parse(fmt(p)) == parse(p)`). Nothing here imports `lark`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Union

__all__ = [
    "Span",
    "String",
    "Number",
    "Bool",
    "Null",
    "Name",
    "Metric",
    "ListExpr",
    "Call",
    "Unary",
    "Binary",
    "Conditional",
    "Expr",
    "Block",
    "Attribute",
    "Header",
    "Import",
    "Comment",
    "Declaration",
    "Model",
    "Dataset",
    "Task",
    "Reward",
    "Tool",
    "Policy",
    "Learn",
    "Evaluate",
    "Emit",
    "Decl",
    "DECLARATION_KINDS",
    "Program",
]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file: 1-based lines and columns, 0-based offsets.

    `end_column` is exclusive, like Lark's `end_column`.
    """

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0
    end: int = 0


NO_SPAN = Span("<python>", 0, 0, 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class String:
    """A string literal; `value` has escapes resolved and `\"\"\"` text dedented."""

    value: str
    span: Span = _span()
    raw: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Number:
    value: int | float
    span: Span = _span()
    raw: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Null:
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Name:
    """A bare identifier: a reference to a declaration, a field, or an enum word."""

    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric token such as `pass@32` (`name="pass", k=32`) or a bare `mean`."""

    name: str
    k: int
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    """`function(args...)`: a built-in, `env(...)` or `python(...)`."""

    function: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Unary:
    """`op` is `"-"` or `"not"`."""

    op: str
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Binary:
    """`op` is one of `+ - * / == != < <= > >= and or`."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Conditional:
    """`if condition then then else otherwise`."""

    condition: Expr
    then: Expr
    otherwise: Expr
    span: Span = _span()


Expr = Union[String, Number, Bool, Null, Name, Metric, ListExpr, Call, Unary, Binary, Conditional]


# ------------------------------------------------------------ attributes


@dataclass(frozen=True, slots=True)
class Block:
    """A nested block value: `price { input = 0.28  output = 0.42 }`."""

    attributes: tuple[Attribute, ...]
    span: Span = _span()

    def get(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)


@dataclass(frozen=True, slots=True)
class Attribute:
    """`name = value` or `name { ... }` (then `value` is a `Block`)."""

    name: str
    value: Expr | Block
    span: Span = _span()
    name_span: Span = _span()


# ---------------------------------------------------------------- top level


@dataclass(frozen=True, slots=True)
class Header:
    """`grpo 1`: the language version."""

    version: int
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Import:
    path: String
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Comment:
    """A `#` comment, kept for the formatter; `text` includes the `#`."""

    text: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Declaration:
    """A named declaration: `kind name { attributes }`."""

    kind: ClassVar[str] = ""
    name: str
    attributes: tuple[Attribute, ...]
    span: Span = _span()
    name_span: Span = _span()

    def get(self, name: str) -> Attribute | None:
        """The attribute called `name`, or None."""
        return next((a for a in self.attributes if a.name == name), None)


@dataclass(frozen=True, slots=True)
class Model(Declaration):
    kind: ClassVar[str] = "model"


@dataclass(frozen=True, slots=True)
class Dataset(Declaration):
    kind: ClassVar[str] = "dataset"


@dataclass(frozen=True, slots=True)
class Task(Declaration):
    kind: ClassVar[str] = "task"


@dataclass(frozen=True, slots=True)
class Tool(Declaration):
    """`tool NAME { function = python("file.py:f") }` or `tool NAME { mcp { ... } }`."""

    kind: ClassVar[str] = "tool"


@dataclass(frozen=True, slots=True)
class Reward(Declaration):
    """`reward NAME = EXPR` (then `expression` is set and `attributes` empty) or
    `reward NAME { judge = MODEL  rubric = "..." }`."""

    kind: ClassVar[str] = "reward"
    expression: Expr | None = None


@dataclass(frozen=True, slots=True)
class Policy(Declaration):
    kind: ClassVar[str] = "policy"


@dataclass(frozen=True, slots=True)
class Learn(Declaration):
    kind: ClassVar[str] = "learn"


@dataclass(frozen=True, slots=True)
class Evaluate(Declaration):
    kind: ClassVar[str] = "evaluate"


@dataclass(frozen=True, slots=True)
class Emit(Declaration):
    kind: ClassVar[str] = "emit"


Decl = Union[Model, Dataset, Task, Tool, Reward, Policy, Learn, Evaluate, Emit]

DECLARATION_KINDS: dict[str, type[Declaration]] = {
    cls.kind: cls for cls in (Model, Dataset, Task, Tool, Reward, Policy, Learn, Evaluate, Emit)
}


@dataclass(frozen=True, slots=True)
class Program:
    """One parsed file. `declarations` are in source order; imports are not
    resolved here (the checks load them)."""

    path: str
    header: Header | None
    imports: tuple[Import, ...]
    declarations: tuple[Decl, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)
    source: str = field(default="", compare=False, repr=False)

    def get(self, name: str) -> Decl | None:
        """The declaration called `name` in this file, or None."""
        return next((d for d in self.declarations if d.name == name), None)
