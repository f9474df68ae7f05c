"""Write a program in Python: the constructors here build the same syntax tree
(`grpo_dsl.language.ast`) the parser builds, so the two meet in one tree.

Attribute values are plain Python values, converted by the attribute table
(`grpo_dsl.language.attributes`): a string given for a reference or a word becomes a name,
`"pass@32"` in `metrics` a metric, a dict given for `price`, `budget` or `fields` a
nested block, and a string for `rule` a `python("file.py:function")` call.

>>> import grpo_dsl as g
>>> program = g.Program([
...     g.Model("local", name="qwen2.5-0.5b-instruct"),
...     g.Reward("correct", g.call("math_equal", g.call("boxed", g.ref("output")), g.ref("answer"))),
... ])
>>> print(g.to_source(program).splitlines()[-1])
reward correct = math_equal(boxed(output), answer)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Union

from grpo_dsl.language import ast
from grpo_dsl.language.attributes import AttributeSpec, lookup
from grpo_dsl.language.literals import is_name

__all__ = [
    "Value",
    "Dataset",
    "Emit",
    "Evaluate",
    "Learn",
    "Model",
    "Policy",
    "Program",
    "Reward",
    "Tool",
    "Task",
    "binary",
    "call",
    "conditional",
    "env",
    "expr",
    "metric",
    "python",
    "ref",
    "unary",
]

Value = Union[str, int, float, bool, None, ast.Expr, ast.Block, Sequence["Value"], Mapping[str, "Value"]]
"""What an attribute or an expression may be given as."""


def ref(name: str) -> ast.Name:
    """A bare name: a declaration, a dataset field, `output`, or a word such as `system`."""
    return ast.Name(name)


def env(variable: str, default: str | None = None) -> ast.Call:
    """`env("VAR")` or `env("VAR", "default")`: a value read at run time."""
    args: tuple[ast.Expr, ...] = (ast.String(variable),)
    return ast.Call("env", args if default is None else (*args, ast.String(default)))


def python(reference: str) -> ast.Call:
    """`python("file.py:function")`: user code, as a reward or a policy's rule."""
    return ast.Call("python", (ast.String(reference),))


def metric(name: str, k: int | None = None) -> ast.Name | ast.Metric:
    """A metric: `metric("mean")`, `metric("pass", 32)` (also written `"pass@32"`)."""
    return ast.Name(name) if k is None else ast.Metric(name, k)


def expr(value: Value) -> ast.Expr:
    """A plain value as an expression: strings, numbers, booleans, None and lists
    become literals; nodes pass through."""
    match value:
        case ast.Block():
            raise TypeError("a block is not an expression")
        case (
            ast.String() | ast.Number() | ast.Bool() | ast.Null() | ast.Name() | ast.Metric()
            | ast.ListExpr() | ast.Call() | ast.Unary() | ast.Binary() | ast.Conditional()
        ):
            return value
        case bool():
            return ast.Bool(value)
        case int() | float():
            return ast.Number(value)
        case str():
            return ast.String(value)
        case None:
            return ast.Null()
        case Mapping():
            raise TypeError("a dict is not an expression; it is a nested block of an attribute")
        case Sequence():
            return ast.ListExpr(tuple(expr(item) for item in value))
    raise TypeError(f"cannot use {type(value).__name__} in a program")


def call(function: str, *args: Value) -> ast.Call:
    """`function(args...)`, a built-in function of the language."""
    return ast.Call(function, tuple(expr(arg) for arg in args))


def unary(op: str, operand: Value) -> ast.Unary:
    """`-x` (`op="-"`) or `not x` (`op="not"`)."""
    return ast.Unary(op, expr(operand))


def binary(op: str, left: Value, right: Value) -> ast.Binary:
    """`left op right`, `op` one of `+ - * / == != < <= > >= and or`."""
    return ast.Binary(op, expr(left), expr(right))


def conditional(condition: Value, then: Value, otherwise: Value) -> ast.Conditional:
    """`if condition then then else otherwise`."""
    return ast.Conditional(expr(condition), expr(then), expr(otherwise))


def _word(value: Value) -> ast.Expr:
    """A word, a reference or a library: bare when it is a name, else a string."""
    if isinstance(value, str):
        return ast.Name(value) if is_name(value) else ast.String(value)
    return expr(value)


def _metric(value: Value) -> ast.Expr:
    if isinstance(value, str):
        name, at, k = value.partition("@")
        return ast.Metric(name, int(k)) if at and k.isdigit() else ast.Name(value)
    return expr(value)


def _items(value: Value, convert: Callable[[Value], ast.Expr]) -> ast.Expr:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ast.ListExpr(tuple(convert(item) for item in value))
    return expr(value)


def _value(kind: str, name: str, value: Value) -> ast.Expr | ast.Block:
    spec: AttributeSpec | None = lookup(kind, name) if kind.partition(".")[0] in _KINDS else None
    if isinstance(value, ast.Block):
        return value
    if isinstance(value, Mapping):
        inner = f"{kind}.{name}" if spec is not None and spec.kind == "block" else ""
        return ast.Block(tuple(ast.Attribute(key, _value(inner, key, item)) for key, item in value.items()))
    match spec.kind if spec is not None else None:
        case "ref" | "enum" | "library":
            return _word(value)
        case "words" | "libraries" | "tools":
            return _items(value, _word)
        case "metrics":
            return _items(value, _metric)
        case "python" if isinstance(value, str):
            return python(value)
        case "schema" if isinstance(value, str):
            return ast.Call("schema", (ast.String(value),))
    return expr(value)


_KINDS = frozenset(ast.DECLARATION_KINDS)


def _attributes(kind: str, attributes: Mapping[str, Value]) -> tuple[ast.Attribute, ...]:
    return tuple(ast.Attribute(name, _value(kind, name, value)) for name, value in attributes.items())


def Model(name: str, /, **attributes: Value) -> ast.Model:
    """`model NAME { ... }`: e.g. `Model("deepseek", name="deepseek-chat", price={"input": 0.28})`."""
    return ast.Model(name, _attributes("model", attributes))


def Dataset(name: str, /, **attributes: Value) -> ast.Dataset:
    """`dataset NAME { ... }`: e.g. `Dataset("train", source="data/train.jsonl", fields={"question": "problem"})`."""
    return ast.Dataset(name, _attributes("dataset", attributes))


def Task(name: str, /, **attributes: Value) -> ast.Task:
    """`task NAME { ... }`: e.g. `Task("math", model="deepseek", prompt="{{ question }}", tools=["python"])`."""
    return ast.Task(name, _attributes("task", attributes))


def Tool(name: str, /, **attributes: Value) -> ast.Tool:
    """`tool NAME { ... }`: e.g. `Tool("search", function="tools.py:search", timeout=5)` or
    `Tool("docs", mcp={"command": ["python3", "server.py"]})`."""
    return ast.Tool(name, _attributes("tool", attributes))


def Reward(name: str, expression: Value = None, /, **attributes: Value) -> ast.Reward:
    """`reward NAME = EXPR` (give the expression) or `reward NAME { judge = ... rubric = ... }`
    (give the attributes)."""
    if attributes:
        return ast.Reward(name, _attributes("reward", attributes))
    return ast.Reward(name, (), expression=expr(expression))


def Policy(name: str, /, **attributes: Value) -> ast.Policy:
    """`policy NAME { ... }`: e.g. `Policy("lessons", ops=["add", "modify"], capacity=48)`."""
    return ast.Policy(name, _attributes("policy", attributes))


def Learn(name: str, /, **attributes: Value) -> ast.Learn:
    """`learn NAME { ... }`: e.g. `Learn("lessons", task="math", data="train", reward="correct", group_size=5)`."""
    return ast.Learn(name, _attributes("learn", attributes))


def Evaluate(name: str, /, **attributes: Value) -> ast.Evaluate:
    """`evaluate NAME { ... }`: e.g. `Evaluate("test", task="math", data="test", metrics=["mean", "pass@4"])`."""
    return ast.Evaluate(name, _attributes("evaluate", attributes))


def Emit(name: str, /, **attributes: Value) -> ast.Emit:
    """`emit NAME { ... }`: e.g. `Emit("prompts", library="lessons", path="prompts/math")`."""
    return ast.Emit(name, _attributes("emit", attributes))


def Program(
    declarations: Iterable[ast.Decl], /, *, base_dir: str | os.PathLike[str] = ".", name: str = "main.grpo", imports: Iterable[str] = ()
) -> ast.Program:
    """A program of `declarations`, as if written in the file `base_dir/name`: the
    paths it names are relative to `base_dir`."""
    return ast.Program(
        path=os.path.join(os.fspath(base_dir), name),
        header=ast.Header(1),
        imports=tuple(ast.Import(ast.String(path)) for path in imports),
        declarations=tuple(declarations),
    )
