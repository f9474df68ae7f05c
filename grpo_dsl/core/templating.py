"""The one Jinja environment every template of the project is parsed and rendered in.

Sandboxed (templates come from programs and learned libraries, never trusted),
strict (a missing variable is an error, not an empty string) and on a budget: one
render prints at most `RenderBudget.chars` characters, runs at most
`RenderBudget.iterations` loop iterations and lasts at most `RenderBudget.seconds`,
and no value it builds is larger than `chars`. A render past its budget stops with
`TemplateBudgetError` before it allocates the excess:

- every `{% for %}` counts its iterations, with the literal text of its body, and
  checks the clock (the loops are wrapped when a template is compiled);
- every call, filter, `~` and arithmetic operator checks the clock; the ones that
  can multiply a size (`*`, `**`, `%`, `join`, `replace`, `sum`, `indent`,
  `wordwrap`, `format`, `center`, `batch`, `slice`, `expandtabs`, `translate`, and
  the widths of `str.format` and `%`) are estimated before they run; every result
  is measured after (so a value grows at most one step past the budget);
- every printed value is measured before it is turned into text.

`lipsum` is removed from the globals: its size is the product of two arguments.

A value's size counts the characters of its text, with shared parts counted each
time they would be printed (`[s] * 3` is three times `s`).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateRuntimeError,
    TemplateSyntaxError,
    meta,
    nodes,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from grpo_dsl.core.errors import GrpoError

__all__ = [
    "BudgetedEnvironment",
    "RenderBudget",
    "TemplateBudgetError",
    "iterate",
    "measured",
    "sandbox",
    "size",
    "template_variables",
]


@dataclass(frozen=True, slots=True)
class RenderBudget:
    """What one render may spend: printed characters (also the largest value it may
    build), loop iterations and wall-clock seconds."""

    chars: int = 2_000_000
    iterations: int = 1_000_000
    seconds: float = 5.0


class TemplateBudgetError(GrpoError, TemplateRuntimeError):
    """A render went past its `RenderBudget`."""


class _Spending:
    """The running totals of one render, and the checks against its budget."""

    def __init__(self, budget: RenderBudget) -> None:
        self.budget = budget
        self.deadline = time.monotonic() + budget.seconds
        self.chars = 0
        self.iterations = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateBudgetError(f"the template took longer than {self.budget.seconds:g} s to render")

    def refuse(self, what: str, estimate: int) -> None:
        """Stop before `what` makes a value of `estimate` characters, past the budget."""
        if estimate > self.budget.chars:
            raise TemplateBudgetError(f"{what} would make a value of more than {self.budget.chars} characters")

    def measure(self, what: str, value: Any) -> Any:
        self.refuse(what, size(value, self.budget.chars))
        return value

    def print(self, chars: int) -> None:
        self.chars += chars
        if self.chars > self.budget.chars:
            raise TemplateBudgetError(f"the template printed more than {self.budget.chars} characters")

    def iterate(self, literal_chars: int) -> None:
        self.iterations += 1
        if self.iterations > self.budget.iterations:
            raise TemplateBudgetError(f"the template's loops ran more than {self.budget.iterations} times")
        self.print(literal_chars)
        self.tick()


_SPENDING: contextvars.ContextVar[_Spending | None] = contextvars.ContextVar("grpo_render_spending", default=None)


def _spending() -> _Spending:
    """The spending of the render in progress; outside a render (when the compiler
    folds a constant), a fresh one of the default budget."""
    return _SPENDING.get() or _Spending(RenderBudget())


# ---------------------------------------------------------------------- sizes


def size(value: Any, limit: int) -> int:
    """The characters `value` takes when printed (approximately: a container counts
    its items, each time they occur), or `limit + 1` once it is known to exceed `limit`."""
    total = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, Mapping):
            total += len(item)
            pending += item.keys()
            pending += item.values()
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            pending += item
        else:
            total += 1
        if total > limit:
            return limit + 1
    return total


def _count(value: Any) -> int:
    """A number argument as a count (a width given as text counts its characters)."""
    if isinstance(value, int):
        return abs(value)
    return len(value) if isinstance(value, str) else 0


def _join_size(separator: Any, items: Any, limit: int) -> int:
    return sum(size(item, limit) for item in items) + size(separator, limit) * max(len(items) - 1, 0)


def _replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    text, old, new = str(text), str(old), str(new)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _starred(values: Any) -> int:
    """What `*` widths taken from the values may add: every number among them."""
    items = values if isinstance(values, tuple) else (values,)
    return sum(_count(v) for v in items if isinstance(v, int))


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d*)(?:\.(\*|\d*))?")


def _percent_size(template: str, values: Any, limit: int) -> int:
    widths = 0
    for width, precision in _PERCENT_SPEC.findall(template):
        widths += sum(int(w) for w in (width, precision) if w.isdigit())
        if "*" in (width, precision):
            widths += _starred(values)
    return len(template) + widths + size(values, limit)


def _format_size(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], limit: int) -> int:
    widths = 0
    for _, _, spec, _ in string.Formatter().parse(template):
        widths += sum(int(n) for n in re.findall(r"\d+", spec or ""))
        if "{" in (spec or ""):
            widths += _starred((*args, *kwargs.values()))
    return len(template) + widths + size((args, kwargs), limit)


def _listed(value: Any) -> Any:
    """`value` as a list when it is a one-pass iterable (so it can be measured and then used)."""
    return value if isinstance(value, Sized) else list(value)


def _arg(values: Mapping[str, Any], name: str, default: Any = None) -> Any:
    found = values.get(name, default)
    return default if found is None else found


# The functions whose result can be far larger than their arguments, by name: each
# gives the size of its result from its arguments, before it runs.
_METHODS: dict[str, tuple[tuple[str, ...], Callable[[str, Mapping[str, Any], int], int]]] = {
    "join": (("iterable",), lambda text, a, limit: _join_size(text, a["iterable"], limit)),
    "replace": (("old", "new", "count"), lambda text, a, limit: _replace_size(text, a["old"], a["new"], a.get("count"))),
    "expandtabs": (("tabsize",), lambda text, a, limit: len(text) * (1 + _count(_arg(a, "tabsize", 8)))),
    "translate": (("table",), lambda text, a, limit: len(text) * (1 + size(a["table"], limit))),
    **{
        name: (("width",), lambda text, a, limit: max(len(text), _count(a.get("width"))))
        for name in ("center", "ljust", "rjust", "zfill")
    },
}

_FILTERS: dict[str, Callable[[Mapping[str, Any], int], int]] = {
    "join": lambda a, limit: _join_size(_arg(a, "d", ""), a["value"], limit),
    "sum": lambda a, limit: size(_arg(a, "start", 0), limit) + sum(size(i, limit) for i in a["iterable"]),
    "replace": lambda a, limit: _replace_size(a["s"], a["old"], a["new"], a.get("count")),
    "center": lambda a, limit: max(size(a["value"], limit), _count(_arg(a, "width", 80))),
    "indent": lambda a, limit: size(a["s"], limit) + (str(a["s"]).count("\n") + 1) * _count(_arg(a, "width", 4)),
    "wordwrap": lambda a, limit: size(a["s"], limit) * (1 + len(str(_arg(a, "wrapstring", "\n")))),
    "format": lambda a, limit: _percent_size(str(a["value"]), (*a.get("args", ()), *a.get("kwargs", {}).values()), limit),
    "batch": lambda a, limit: size(a["value"], limit) + _count(a["linecount"]) * (1 + size(a.get("fill_with"), limit)),
    "slice": lambda a, limit: size(a["value"], limit) + _count(a["slices"]) * (1 + size(a.get("fill_with"), limit)),
}
_LISTED = {"join": "value", "sum": "iterable"}
"""The argument of a filter that is measured item by item, so must be a list first."""


# --------------------------------------------------------------- compilation


def _literal_chars(body: list[nodes.Node]) -> int:
    """The literal text a loop body prints per iteration (nested loops count their own)."""
    total = 0
    pending: list[nodes.Node] = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            total += len(node.value)
        if not isinstance(node, nodes.For):
            pending += node.iter_child_nodes()
    return total


def _budgeted(node: nodes.Node, function: str, *args: nodes.Expr) -> nodes.Call:
    """`function(node, *args)`, calling a function of this module from compiled template code."""
    assert isinstance(node, nodes.Expr)
    return nodes.Call(nodes.ImportedName(f"{__name__}.{function}"), [node, *args], [], None, None, lineno=node.lineno)


def _count_loops(template: nodes.Template) -> None:
    """Wrap every loop's iterable in `iterate`, and every `~` concatenation in `measured`."""
    every = [template, *template.find_all(nodes.Node)]
    for loop in every:
        if isinstance(loop, nodes.For):
            loop.iter = _budgeted(loop.iter, "iterate", nodes.Const(_literal_chars(loop.body)))
    for parent in every:
        for field in parent.fields:
            value = getattr(parent, field, None)
            if isinstance(value, nodes.Concat):
                setattr(parent, field, _budgeted(value, "measured"))
            elif isinstance(value, list):
                setattr(parent, field, [_budgeted(v, "measured") if isinstance(v, nodes.Concat) else v for v in value])


def iterate(iterable: Iterable[Any], literal_chars: int) -> Iterator[Any]:
    """An iterable of a template's loop, spending one iteration (and the body's literal
    text) of the render's budget per item."""
    spending = _spending()
    for item in iterable:
        spending.iterate(literal_chars)
        yield item


def measured(value: Any) -> Any:
    """`value` itself; the environment measures it as the result of a call."""
    return value


class _CodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _count_loops(node)
        super().visit_Template(node, frame)


class _Template(Template):
    def render(self, *args: Any, **kwargs: Any) -> str:
        """Render with a fresh spending of the environment's budget."""
        budget: RenderBudget = getattr(self.environment, "budget", RenderBudget())
        token = _SPENDING.set(_Spending(budget))
        try:
            return super().render(*args, **kwargs)
        except (MemoryError, RecursionError, OverflowError) as exc:
            raise TemplateBudgetError(f"the template went past what it may use: {type(exc).__name__}: {exc}") from None
        finally:
            _SPENDING.reset(token)


@functools.cache
def _checked_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Filter `name` within the budget: estimated first when it can multiply a size."""
    estimate = _FILTERS.get(name)
    signature = inspect.signature(function) if estimate is not None else None
    listed = _LISTED.get(name)
    what = f"the `{name}` filter"

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        spending = _spending()
        spending.tick()
        if estimate is not None and signature is not None:
            bound = signature.bind(*args, **kwargs)
            if listed is not None:
                bound.arguments[listed] = _listed(bound.arguments[listed])
            spending.refuse(what, estimate(bound.arguments, spending.budget.chars))
            args, kwargs = bound.args, bound.kwargs
        return spending.measure(what, function(*args, **kwargs))

    return checked


class BudgetedEnvironment(SandboxedEnvironment):
    """The sandboxed, strict Jinja environment with a `RenderBudget` for every render."""

    code_generator_class = _CodeGenerator
    template_class = _Template
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, budget: RenderBudget = RenderBudget(), **options: Any) -> None:
        super().__init__(finalize=_printed, **options)
        self.budget = budget
        self.globals.pop("lipsum", None)
        self.filters = {name: _checked_filter(name, function) for name, function in self.filters.items()}

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """Call `__obj` from a template, within the budget."""
        spending = _spending()
        spending.tick()
        name = getattr(__obj, "__name__", "")
        what = "`~`" if __obj is measured else f"`{name or 'a call'}`"
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and name in _METHODS:
            parameters, estimate = _METHODS[name]
            if name == "join" and args:
                args = (_listed(args[0]), *args[1:])
            spending.refuse(what, estimate(owner, dict(zip(parameters, args)) | kwargs, spending.budget.chars))
        return spending.measure(what, super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """`+`, `*`, `**` and `%` in a template, within the budget."""
        spending = _spending()
        spending.tick()
        limit = spending.budget.chars
        what = f"`{operator}`"
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(count, int) and not isinstance(sequence, int | float):
                    spending.refuse(what, size(sequence, limit) * max(count, 0))
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            spending.refuse(what, right * abs(left).bit_length() // 3)
        elif operator == "%" and isinstance(left, str):
            spending.refuse(what, _percent_size(left, right, limit))
        return spending.measure(what, super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `str.format_map`, sandboxed, with their widths within the budget."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            spending = _spending()
            spending.refuse("`format`", _format_size(template, args, kwargs, spending.budget.chars))
            return wrapped(*args, **kwargs)

        return checked


def _printed(value: Any) -> Any:
    """The environment's `finalize`: every printed value is counted before it is text."""
    spending = _spending()
    spending.print(size(value, spending.budget.chars))
    return value


def sandbox(budget: RenderBudget = RenderBudget()) -> BudgetedEnvironment:
    """The Jinja environment every template of the project renders in."""
    return BudgetedEnvironment(budget, undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


@functools.cache
def _parser() -> BudgetedEnvironment:
    return sandbox()


def template_variables(text: str) -> set[str] | None:
    """The variables a template reads, or None when it does not parse."""
    try:
        return set(meta.find_undeclared_variables(_parser().parse(text)))
    except TemplateSyntaxError:
        return None
