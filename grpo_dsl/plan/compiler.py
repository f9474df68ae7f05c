"""Compile a checked program into its execution plan (`grpo-plan/1`, docs/plan.md).

`compile` fills in every default (and lists it in `defaults_filled`), resolves
references, turns reward expressions into JSON trees, hashes every source and
data file, and adds a schedule and a cost estimate to each `learn` and `evaluate`.
A program with errors is never planned: `compile` raises `ProgramError`.

>>> plan = compile(workspace)                                   # doctest: +SKIP
>>> Plan.from_json(plan.to_json()) == plan                      # doctest: +SKIP
True
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from grpo_dsl._version import __version__
from grpo_dsl.core.datasets import DatasetError, dataset_format, read_rows
from grpo_dsl.core.files import sha256_file, sha256_text
from grpo_dsl.core.templating import template_variables
from grpo_dsl.language import ast
from grpo_dsl.language.attributes import AttributeSpec, attribute_names, lookup
from grpo_dsl.language.checks import Context, check
from grpo_dsl.language.diagnostics import Diagnostic, ProgramError
from grpo_dsl.language.fmt import format_program
from grpo_dsl.language.queries import PYTHON_REFERENCE, names_in, reference, walk
from grpo_dsl.language.toolschema import function_schema
from grpo_dsl.language.workspace import Workspace, build_workspace, load_sources
from grpo_dsl.plan.document import PLAN_SCHEMA, SECTIONS, Plan
from grpo_dsl.plan.estimate import DataRows, estimate_ablation, estimate_evaluate, estimate_learn, schedule

__all__ = ["compile", "expression_tree", "load_plan", "workspace_of"]














def expression_tree(expr: ast.Expr) -> dict[str, Any]:
    """A reward expression as a JSON tree of `{"node": ...}` objects (docs/plan.md)."""
    match expr:
        case ast.String(value=value) | ast.Number(value=value) | ast.Bool(value=value):
            return {"node": "literal", "value": value}
        case ast.Null():
            return {"node": "literal", "value": None}
        case ast.Name(name=name):
            return {"node": "name", "name": name}
        case ast.ListExpr(items=items):
            return {"node": "list", "items": [expression_tree(item) for item in items]}
        case ast.Call(function=function, args=args):
            return {"node": "call", "function": function, "args": [expression_tree(arg) for arg in args]}
        case ast.Unary(op=op, operand=operand):
            return {"node": "unary", "op": op, "operand": expression_tree(operand)}
        case ast.Binary(op=op, left=left, right=right):
            return {"node": "binary", "op": op, "left": expression_tree(left), "right": expression_tree(right)}
        case ast.Conditional(condition=condition, then=then, otherwise=otherwise):
            return {
                "node": "if",
                "condition": expression_tree(condition),
                "then": expression_tree(then),
                "else": expression_tree(otherwise),
            }
    raise ValueError(f"{type(expr).__name__} cannot appear in a reward expression")


def workspace_of(program: ast.Program) -> Workspace:
    """A workspace over a program and the files it imports (read from disk, relative
    to the program's folder); raises `ProgramError` when an import cannot be loaded."""
    programs = [program]
    sources = {program.path: program.source}
    folder = os.path.dirname(program.path)
    for item in program.imports:
        imported, problems, read = load_sources(os.path.normpath(os.path.join(folder, item.path.value)))
        sources.update(read)
        if imported is None:
            raise ProgramError(problems or _import_problem(item), sources)
        programs.extend(p for p in imported.files.values() if p.path != program.path)
    return build_workspace(programs, main=program.path)


def _import_problem(item: ast.Import) -> list[Diagnostic]:
    message = f"cannot find the imported file `{item.path.value}`"
    return [Diagnostic("E0101", "error", message, item.path.span, "imports are relative to the importing file")]


def compile(target: Workspace | ast.Program) -> Plan:
    """The execution plan of a program (a loaded workspace or a single `Program`).

    The program is checked first; if any check reports an error, `ProgramError`
    carries every diagnostic and nothing is planned.
    """
    workspace = target if isinstance(target, Workspace) else workspace_of(target)
    diagnostics = check(workspace)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        ordered = sorted(set(errors), key=lambda d: (d.span.path, d.span.line, d.span.column, d.code, d.message))
        raise ProgramError(ordered, workspace.sources)
    return Plan(_Compiler(workspace).plan())


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """The plan of the program at `path`, read with its imports and checked; raises
    `ProgramError` with every diagnostic when it has errors."""
    workspace, diagnostics, sources = load_sources(os.fspath(path))
    if workspace is None:
        raise ProgramError(diagnostics, sources)
    return compile(workspace)


def _specs(kind: str) -> tuple[AttributeSpec, ...]:
    return tuple(spec for name in attribute_names(kind) if (spec := lookup(kind, name)) is not None)


def _fills_something(value: object) -> bool:
    if isinstance(value, dict):
        return any(item is not None for item in value.values())
    return value is not None


class _Compiler:
    """One compilation: the workspace, the checks' shared facts, the defaults filled."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.context = Context.of(workspace)
        self.base_dir = workspace.base_dir or "."
        self.filled: list[str] = []
        self.rows: dict[str, DataRows] = {}

    def plan(self) -> dict[str, Any]:
        sections: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS.values()}
        for kind in ("model", "dataset", "task", "tool", "reward", "policy", "learn", "evaluate", "emit"):
            for decl in self.workspace.declarations.values():
                if decl.kind == kind:
                    sections[SECTIONS[kind]][decl.name] = self.declaration(decl, sections)
        data: dict[str, Any] = {
            "schema": PLAN_SCHEMA,
            "compiler": __version__,
            "sources": self.sources(),
            **sections,
        }
        for learn in data["learns"].values():
            learn["schedule"] = schedule(learn, self.rows[learn["data"]].count)
            learn["estimate"] = estimate_learn(data, learn, self.rows)
        for evaluate in data["evaluates"].values():
            evaluate["estimate"] = estimate_evaluate(data, evaluate, self.rows)
            evaluate["ablation_estimate"] = estimate_ablation(data, evaluate, self.rows)
        data["defaults_filled"] = sorted(set(self.filled))
        return data

    def sources(self) -> dict[str, str]:
        hashes: dict[str, str] = {}
        for path, program in self.workspace.files.items():
            text = self.workspace.sources.get(path) or program.source or format_program(program)
            hashes[self.relative(path)] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return hashes

    # ------------------------------------------------------------------ paths

    def relative(self, path: str) -> str:
        """`path` (relative to the working directory) relative to the main file's folder."""
        return PurePath(os.path.relpath(path, self.base_dir)).as_posix()

    def path(self, decl: ast.Decl, written: str) -> str:
        if os.path.isabs(written):
            return PurePath(written).as_posix()
        return self.relative(os.path.join(self.workspace.folder_of(decl), written))

    def python(self, decl: ast.Decl, call: ast.Expr) -> dict[str, str]:
        written, function = _python_reference(call)
        location = self.workspace.folder_of(decl) / written
        return {"path": self.path(decl, written), "function": function, "sha256": sha256_file(location)}

    # ------------------------------------------------------------ declarations

    def declaration(self, decl: ast.Decl, sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
        where = f"{SECTIONS[decl.kind]}.{decl.name}"
        if isinstance(decl, ast.Reward):
            return self.reward(decl, where)
        values = self.attributes(decl, decl.kind, decl.attributes, where, sections)
        if isinstance(decl, ast.Tool):
            return self.tool(decl, values)
        if isinstance(decl, ast.Dataset):
            source = decl.get("source")
            assert source is not None
            location = self.workspace.folder_of(decl) / _string(source.value)
            values["sha256"] = sha256_file(location)
            values["format"] = dataset_format(location)
            self.rows[decl.name] = self.read(decl, location, values)
        elif isinstance(decl, ast.Task):
            templates = [t for t in (values["system"], values["prompt"]) if t is not None]
            variables = set().union(*(template_variables(t) or set() for t in templates))
            values["variables"] = sorted(variables - {"experiences"})
        return values

    def tool(self, decl: ast.Tool, values: Mapping[str, Any]) -> dict[str, Any]:
        """A tool's plan entry: its function with the schema read from its source, or
        its MCP server, and the hash of all of it."""
        function, server = values["function"], values["mcp"] or {}
        schema = None
        if function is not None:
            written = decl.get("function")
            assert written is not None
            file, name = _python_reference(written.value)
            schema = function_schema(self.workspace.folder_of(decl) / file, name)
        entry = {
            "kind": "python" if function is not None else "mcp",
            "timeout": values["timeout"],
            "path": function and function["path"],
            "function": function and function["function"],
            "sha256": function and function["sha256"],
            "schema": schema,
            "command": server.get("command"),
            "url": server.get("url"),
        }
        return {**entry, "hash": sha256_text(json.dumps(entry, sort_keys=True))}

    def read(self, decl: ast.Dataset, location: Path, dataset: Mapping[str, Any]) -> DataRows:
        """The rows a dataset yields: mapped, and limited (a shuffled dataset keeps
        every row as a sample of the lengths, since its subset depends on the seed)."""
        try:
            rows = read_rows(location)
        except DatasetError as problem:
            source = decl.get("source")
            span = source.value.span if source is not None else decl.name_span
            where = f"line {problem.line}: " if problem.line is not None else ""
            message = f"cannot read dataset `{decl.name}`: {where}{problem.message}"
            raise ProgramError([Diagnostic("E0403", "error", message, span)], self.workspace.sources) from None
        mapping: Mapping[str, str] = dataset["fields"]
        mapped = set(mapping.values())
        fields = [
            {**{k: v for k, v in row.items() if k not in mapped}, **{name: row.get(column) for name, column in mapping.items()}}
            for row in rows
        ]
        limit = dataset["limit"]
        count = min(limit, len(fields)) if limit is not None else len(fields)
        return DataRows(count, tuple(fields if dataset["shuffle"] else fields[:count]))

    def reward(self, decl: ast.Reward, where: str) -> dict[str, Any]:
        expression = decl.expression
        if expression is None:
            values = self.attributes(decl, "reward", decl.attributes, where, {})
            return {"kind": "judge", "model": values["judge"], "rubric": values["rubric"]}
        if isinstance(expression, ast.Call) and expression.function == "python":
            return {"kind": "python", **self.python(decl, expression)}
        nested = next((n for n in walk(expression) if isinstance(n, ast.Call) and n.function == "python"), None)
        if nested is not None:
            message = "`python(...)` must be the whole reward, not part of an expression"
            hint = "declare it as its own reward and use that reward's name in this expression"
            raise ProgramError([Diagnostic("E0106", "error", message, nested.span, hint)], self.workspace.sources)
        return {
            "kind": "expression",
            "expression": expression_tree(expression),
            "reads": sorted({name.name for name in names_in(expression)}),
        }

    # -------------------------------------------------------------- attributes

    def attributes(
        self,
        decl: ast.Decl,
        kind: str,
        attributes: tuple[ast.Attribute, ...],
        where: str,
        sections: Mapping[str, Mapping[str, Any]],
    ) -> dict[str, Any]:
        given = {attribute.name: attribute.value for attribute in attributes}
        values: dict[str, Any] = {}
        for spec in _specs(kind):
            if spec.name in given:
                values[spec.name] = self.value(decl, kind, spec, given[spec.name], f"{where}.{spec.name}", sections)
                continue
            value = self.default(decl, kind, spec, sections)
            values[spec.name] = value
            if _fills_something(value):
                self.filled.append(f"{where}.{spec.name}")
        return values

    def default(self, decl: ast.Decl, kind: str, spec: AttributeSpec, sections: Mapping[str, Mapping[str, Any]]) -> Any:
        match (kind, spec.name):
            case ("learn", "learner"):
                task = self.context.resolve(reference(decl, "task"), ast.Task)
                return reference(task, "model") if task is not None else None
            case ("learn", "policy"):
                return self.default_policy()
            case ("evaluate", "reward"):
                assert isinstance(decl, ast.Evaluate)
                rewards = self.context.evaluation_reward(decl)
                return rewards[0] if len(rewards) == 1 else None
            case ("emit", "name"):
                return decl.name
        return copy.deepcopy(spec.default)

    def default_policy(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for spec in _specs("policy"):
            values[spec.name] = copy.deepcopy(spec.default)
        return values

    def value(
        self,
        decl: ast.Decl,
        kind: str,
        spec: AttributeSpec,
        value: ast.Expr | ast.Block,
        where: str,
        sections: Mapping[str, Mapping[str, Any]],
    ) -> Any:
        if isinstance(value, ast.Block):
            if spec.kind == "mapping":
                return {item.name: _string(item.value) for item in value.attributes}
            return self.attributes(decl, f"{kind}.{spec.name}", value.attributes, where, sections)
        match spec.kind:
            case "env_string":
                if isinstance(value, ast.Call):
                    default = value.args[1] if len(value.args) > 1 else None
                    return {"env": _string(value.args[0]), "default": _string(default) if default is not None else None}
                return _string(value)
            case "path":
                return self.path(decl, _string(value))
            case "strings":
                assert isinstance(value, ast.ListExpr)
                return [_string(item) for item in value.items]
            case "paths":
                assert isinstance(value, ast.ListExpr)
                return list(dict.fromkeys(self.path(decl, _string(item)) for item in value.items))
            case "number":
                assert isinstance(value, ast.Number)
                return float(value.value)
            case "ref" if kind == "learn" and spec.name == "policy":
                return copy.deepcopy(sections["policies"][_word(value)])
            case "ref" | "enum" | "library":
                return _word(value)
            case "words" | "metrics" | "libraries" | "tools":
                assert isinstance(value, ast.ListExpr)
                words = [_word(item) for item in value.items]
                return words if spec.kind == "libraries" else list(dict.fromkeys(words))
            case "python":
                return self.python(decl, value)
            case "schema":
                assert isinstance(value, ast.Call)
                written = _string(value.args[0])
                location = self.workspace.folder_of(decl) / written
                schema = json.loads(location.read_text(encoding="utf-8"))
                return {"path": self.path(decl, written), "sha256": sha256_file(location), "schema": schema}
        assert isinstance(value, ast.String | ast.Number | ast.Bool)
        return value.value


def _python_reference(call: ast.Expr | ast.Block) -> tuple[str, str]:
    """The file and the function of a checked `python("file.py:function")`."""
    assert isinstance(call, ast.Call) and isinstance(call.args[0], ast.String)
    match = PYTHON_REFERENCE.fullmatch(call.args[0].value)
    assert match is not None
    return match["file"], match["function"]


def _string(value: ast.Expr | ast.Block) -> str:
    assert isinstance(value, ast.String)
    return value.value


def _word(value: ast.Expr) -> str:
    """A name, a metric or a string written where a word is expected, as plan text."""
    match value:
        case ast.Name(name=name) | ast.String(value=name):
            return name
        case ast.Metric(name=name, k=k):
            return f"{name}@{k}"
    raise AssertionError(f"a checked program has no {type(value).__name__} here")



