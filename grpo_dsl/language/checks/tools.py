"""Tool declarations: each is one Python function or one MCP server (E0109, E0110),
is not called `python` (E0208), and a Python tool's function exists and has a
signature that becomes a JSON schema (E0108, read from the source, never imported)."""

from __future__ import annotations

from collections.abc import Iterator

from grpo_dsl.language import ast
from grpo_dsl.language.checks.context import Context, error
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.queries import PYTHON_REFERENCE
from grpo_dsl.language.toolschema import ToolSchemaError, function_schema

__all__ = ["check_tools"]


_WRITTEN = {"function": 'function = python("file.py:name")', "mcp": 'mcp { command = ["python3", "server.py"] }', "command": 'command = ["python3", "server.py"]', "url": 'url = "http://host/mcp"'}


def _one_of(decl: ast.Declaration, owner: str, block: ast.Block | ast.Declaration, names: tuple[str, str], code: str) -> Iterator[Diagnostic]:
    """Exactly one of the attributes `names` is set in `block`."""
    given = [name for name in names if any(a.name == name for a in block.attributes)]
    if len(given) == 1:
        return
    first, second = names
    if given:
        where = next(a for a in block.attributes if a.name == second).name_span
        yield error(code, f"{owner} sets both `{first}` and `{second}`", where, "keep one of them; declare another tool for the other")
    else:
        yield error(code, f"{owner} sets neither `{first}` nor `{second}`", decl.name_span, f"add `{_WRITTEN[first]}` or `{_WRITTEN[second]}`")


def _function(context: Context, decl: ast.Decl) -> Iterator[Diagnostic]:
    found = decl.get("function")
    if found is None or not isinstance(found.value, ast.Call) or not found.value.args:
        return
    literal = found.value.args[0]
    match = PYTHON_REFERENCE.fullmatch(literal.value) if isinstance(literal, ast.String) else None
    if match is None:
        return
    path = context.workspace.folder_of(decl) / match["file"]
    if not path.is_file():
        return  # E0105 says so
    try:
        function_schema(path, match["function"])
    except ToolSchemaError as exc:
        yield error("E0108", f"tool `{decl.name}`: {exc}", literal.span, "a tool is a top-level function whose parameters are passed by name")


def check_tools(context: Context) -> Iterator[Diagnostic]:
    """Every tool declaration is one Python function or one MCP server, with a usable signature."""
    for decl in context.of_kind(ast.Tool):
        if decl.name == "python":
            yield error("E0208", "a tool cannot be called `python`", decl.name_span, "`python` is the built-in code interpreter; rename this tool")
        yield from _one_of(decl, f"tool `{decl.name}`", decl, ("function", "mcp"), "E0109")
        server = decl.get("mcp")
        if server is not None and isinstance(server.value, ast.Block):
            yield from _one_of(decl, f"the `mcp` block of tool `{decl.name}`", server.value, ("command", "url"), "E0110")
            command = next((a for a in server.value.attributes if a.name == "command"), None)
            if command is not None and isinstance(command.value, ast.ListExpr) and not command.value.items:
                yield error("E0110", "the `command` of an MCP server is empty", command.value.span, 'write the program and its arguments: `command = ["python3", "server.py"]`')
        yield from _function(context, decl)
