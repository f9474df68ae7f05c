"""The JSON schema of a Python tool, read from its source without importing it.

A tool `function = python("tools.py:search")` is offered to the model with the
OpenAI tools protocol: a name, a description and a JSON schema of its arguments.
They come from the function's signature and docstring, read with Python's `ast`
module, so checking and compiling a program never runs user code:

- the description is the docstring's first paragraph;
- each parameter is a property; its type comes from its annotation (`str`, `int`,
  `float`, `bool`, `list[...]`, `dict[...]`, `X | None`, `Optional[X]`,
  `Literal[...]`; anything else accepts any JSON value), and its description from
  a Google-style `Args:` section (`name: text` or `name (type): text`);
- a parameter without a default is required; `*args`, `**kwargs` and
  positional-only parameters cannot be passed by name, so they are refused.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "tools.py").write_text('def add(a: int, b: int = 1) -> int:\\n    "Add two numbers."\\n    return a + b\\n')
>>> schema = function_schema(folder / "tools.py", "add")
>>> schema["description"], schema["parameters"]["required"]
('Add two numbers.', ['a'])
"""

from __future__ import annotations

import ast as pyast
import re
from pathlib import Path
from typing import Any

from grpo_dsl.core.errors import GrpoError

__all__ = ["ToolSchemaError", "function_schema"]

_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array"},
    "tuple": {"type": "array"},
    "dict": {"type": "object"},
    "None": {"type": "null"},
}
_ARGS_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s+(?P<name>\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*:\s*(?P<text>.*)$")


class ToolSchemaError(GrpoError):
    """The function of a Python tool is missing, or its signature cannot become a schema."""


def function_schema(path: Path, function: str) -> dict[str, Any]:
    """The `{"description", "parameters"}` of `function` in the Python file `path`.

    Raises `ToolSchemaError` when the file does not parse, has no top-level function
    of that name, or the function takes `*args`, `**kwargs` or positional-only parameters.
    """
    try:
        module = pyast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise ToolSchemaError(f"cannot read `{path.name}`: {exc}") from None
    found = next(
        (n for n in module.body if isinstance(n, pyast.FunctionDef | pyast.AsyncFunctionDef) and n.name == function),
        None,
    )
    if found is None:
        raise ToolSchemaError(f"`{path.name}` has no top-level function `{function}`")
    args = found.args
    if args.vararg or args.kwarg or args.posonlyargs:
        raise ToolSchemaError(f"`{function}` takes `*args`, `**kwargs` or positional-only parameters; a tool's arguments are passed by name")
    docstring = pyast.get_docstring(found) or ""
    described = _argument_docs(docstring)
    positional = args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for arg, default in [*zip(positional, defaults), *zip(args.kwonlyargs, args.kw_defaults)]:
        prop = _annotation(arg.annotation)
        if arg.arg in described:
            prop = {**prop, "description": described[arg.arg]}
        properties[arg.arg] = prop
        if default is None:
            required.append(arg.arg)
    return {
        "description": docstring.split("\n\n")[0].strip() or f"the function `{function}` of {path.name}",
        "parameters": {"type": "object", "properties": properties, "required": required, "additionalProperties": False},
    }


def _argument_docs(docstring: str) -> dict[str, str]:
    """Parameter descriptions from a Google-style `Args:` section."""
    docs: dict[str, str] = {}
    inside = False
    for line in docstring.splitlines():
        if _ARGS_SECTION.match(line):
            inside = True
        elif inside and (match := _ARG_LINE.match(line)):
            docs[match["name"].lstrip("*")] = match["text"].strip()
        elif inside and line.strip() and not line.startswith((" ", "\t")):
            inside = False
    return docs


def _annotation(node: pyast.expr | None) -> dict[str, Any]:
    """The JSON schema of a type annotation; `{}` (any value) when it is unknown."""
    match node:
        case pyast.Name(id=name) | pyast.Attribute(attr=name):
            return dict(_SCALARS.get(name, {}))
        case pyast.Constant(value=None):
            return {"type": "null"}
        case pyast.Constant(value=str(text)):
            try:
                return _annotation(pyast.parse(text, mode="eval").body)
            except SyntaxError:
                return {}
        case pyast.BinOp(op=pyast.BitOr(), left=left, right=right):
            return _union([left, right])
        case pyast.Subscript(value=base, slice=inner):
            name = base.id if isinstance(base, pyast.Name) else base.attr if isinstance(base, pyast.Attribute) else ""
            items = list(inner.elts) if isinstance(inner, pyast.Tuple) else [inner]
            if name in ("list", "List", "Sequence", "tuple", "Tuple", "set"):
                return {"type": "array", "items": _annotation(items[0])} if len(items) == 1 else {"type": "array"}
            if name in ("dict", "Dict", "Mapping"):
                return {"type": "object"}
            if name == "Optional":
                return _union([items[0], pyast.Constant(None)])
            if name == "Union":
                return _union(items)
            if name == "Literal" and all(isinstance(i, pyast.Constant) for i in items):
                return {"enum": [i.value for i in items if isinstance(i, pyast.Constant)]}
    return {}


def _union(members: list[pyast.expr]) -> dict[str, Any]:
    schemas = [_annotation(m) for m in members]
    if any(not s for s in schemas):
        return {}
    return {"anyOf": schemas}
