"""Files a program names: dataset files (E0104, E0403), the columns
`fields` maps to (E0404), datasets with no row (E0406) or two rows with one id
(E0407), the files of `python(...)` references (E0105), the files a task gives
its python tool (E0104, E0107), and a task's response schema (E0104, E0111). Every row is read, so what a run would reject is
rejected here. User code is never imported here."""

from __future__ import annotations

import json
from collections.abc import Iterator

from jsonschema import Draft202012Validator, SchemaError

from grpo_dsl.language import ast
from grpo_dsl.language.checks.context import Context, DatasetInfo, did_you_mean, error
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.queries import PYTHON_REFERENCE, walk

__all__ = ["check_data_files", "check_python_files", "check_response_schemas", "check_tool_files"]


def _dataset(info: DatasetInfo) -> Iterator[Diagnostic]:
    source = info.decl.get("source")
    if source is None or not isinstance(source.value, ast.String) or info.path is None:
        return
    if not info.path.is_file():
        yield error(
            "E0104",
            f"dataset file `{source.value.value}` not found",
            source.value.span,
            f"paths are relative to the file that contains them: looked for `{info.path}`",
        )
    elif info.problem is not None:
        where = f"line {info.problem.line}: " if info.problem.line is not None else ""
        yield error("E0403", f"cannot read dataset `{info.decl.name}`: {where}{info.problem.message}", source.value.span)
    elif info.columns is not None:
        if info.rows == 0:
            yield error(
                "E0406",
                f"dataset `{info.decl.name}` has no rows",
                source.value.span,
                f"`{source.value.value}` holds no question to learn or evaluate on",
            )
            return
        if info.duplicate is not None:
            same, first, second = info.duplicate
            yield error(
                "E0407",
                f"rows {first} and {second} of dataset `{info.decl.name}` have the same id `{same}`",
                source.value.span,
                "a row's id is its `id` column, or a hash of its content when it has none; "
                "a question twice would be sampled twice in one batch",
            )
        for name, column in info.mapping.items():
            if column.value not in info.columns:
                listed = ", ".join(f"`{c}`" for c in info.columns)
                yield error(
                    "E0404",
                    f"field `{name}` maps to column `{column.value}`, which `{source.value.value}` does not have",
                    column.span,
                    did_you_mean(column.value, info.columns) or f"the columns are {listed}",
                )


def check_data_files(context: Context) -> Iterator[Diagnostic]:
    """Every dataset file exists, reads, and has the columns `fields` maps to."""
    for info in context.datasets.values():
        yield from _dataset(info)


def _python_strings(expr: ast.Expr) -> Iterator[ast.String]:
    for node in walk(expr):
        if isinstance(node, ast.Call) and node.function == "python" and len(node.args) == 1:
            if isinstance(node.args[0], ast.String):
                yield node.args[0]


def check_python_files(context: Context) -> Iterator[Diagnostic]:
    """The file of every `python("file.py:function")` exists (it is not imported)."""
    for decl in context.workspace.all_declarations():
        expressions = [a.value for a in decl.attributes if not isinstance(a.value, ast.Block)]
        if isinstance(decl, ast.Reward) and decl.expression is not None:
            expressions.append(decl.expression)
        for expression in expressions:
            for literal in _python_strings(expression):
                match = PYTHON_REFERENCE.fullmatch(literal.value)
                if match is None:
                    continue
                path = context.workspace.folder_of(decl) / match["file"]
                if not path.is_file():
                    yield error(
                        "E0105",
                        f"python file `{match['file']}` not found",
                        literal.span,
                        f"paths are relative to the file that contains them: looked for `{path}`",
                    )


def check_tool_files(context: Context) -> Iterator[Diagnostic]:
    """Every file in a task's `files` exists, and no two share a name (each is copied
    into the python tool's folder under its own name)."""
    for decl in context.workspace.all_declarations():
        found = decl.get("files") if isinstance(decl, ast.Task) else None
        if found is None or not isinstance(found.value, ast.ListExpr):
            continue
        names: dict[str, ast.String] = {}
        for literal in found.value.items:
            if not isinstance(literal, ast.String):
                continue
            path = context.workspace.folder_of(decl) / literal.value
            if not path.is_file():
                what = "is a folder, not a file" if path.is_dir() else "not found"
                yield error(
                    "E0104",
                    f"file `{literal.value}` for the python tool {what}",
                    literal.span,
                    f"paths are relative to the file that contains them: looked for `{path}`",
                )
            elif path.name in names:
                yield error(
                    "E0107",
                    f"`{literal.value}` and `{names[path.name].value}` would both be `{path.name}` in the tool's folder",
                    literal.span,
                    "files are copied into the folder under their own names: rename one of them",
                )
            else:
                names[path.name] = literal


def check_response_schemas(context: Context) -> Iterator[Diagnostic]:
    """The file of every task's `response = schema("file.json")` exists and holds a JSON schema."""
    for decl in context.of_kind(ast.Task):
        found = decl.get("response")
        if found is None or not isinstance(found.value, ast.Call) or not found.value.args:
            continue
        literal = found.value.args[0]
        if not isinstance(literal, ast.String):
            continue
        path = context.workspace.folder_of(decl) / literal.value
        if not path.is_file():
            yield error("E0104", f"schema file `{literal.value}` not found", literal.span, f"paths are relative to the file that contains them: looked for `{path}`")
            continue
        try:
            Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, SchemaError) as exc:
            problem = exc.message if isinstance(exc, SchemaError) else str(exc)
            yield error("E0111", f"`{literal.value}` is not a JSON schema: {problem}", literal.span, "a response schema is a JSON file that follows JSON Schema (draft 2020-12)")
