"""The Python host API (language.md §8): load and check a program, compile it to a
plan, print it back as source.

>>> import grpo_dsl as g
>>> program = g.load("programs/math.grpo")            # doctest: +SKIP
>>> plan = g.compile(program)                          # doctest: +SKIP
>>> g.to_source(program) == open("programs/math.grpo").read()   # doctest: +SKIP
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from grpo_dsl.language import ast
from grpo_dsl.language.checks import check, check_path
from grpo_dsl.language.diagnostics import Diagnostic, ProgramError
from grpo_dsl.language.fmt import format_program
from grpo_dsl.language.parser import parse
from grpo_dsl.language.workspace import Workspace
from grpo_dsl.plan import Plan, workspace_of
from grpo_dsl.plan import compile as compile_workspace

__all__ = ["CheckedProgram", "compile", "load", "loads", "to_source"]


@dataclass(frozen=True)
class CheckedProgram:
    """A program that passed every check: the main file with its imports, and the
    warnings the checks reported."""

    workspace: Workspace
    warnings: tuple[Diagnostic, ...] = ()

    @property
    def program(self) -> ast.Program:
        """The main file's syntax tree."""
        return self.workspace.program

    @property
    def path(self) -> str:
        """The main file's path."""
        return self.workspace.main

    @property
    def declarations(self) -> dict[str, ast.Decl]:
        """Every declaration of the program and its imports, by name."""
        return dict(self.workspace.declarations)

    def get(self, name: str) -> ast.Decl | None:
        """The declaration called `name`, or None."""
        return self.workspace.declarations.get(name)


def _checked(workspace: Workspace, diagnostics: tuple[Diagnostic, ...] | list[Diagnostic], sources: dict[str, str]) -> CheckedProgram:
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise ProgramError(errors, sources)
    return CheckedProgram(workspace, tuple(d for d in diagnostics if d.severity == "warning"))


def load(path: str | os.PathLike[str]) -> CheckedProgram:
    """Parse and check the program at `path` with everything it imports.

    Raises `ProgramError` with every diagnostic when the program has errors.
    """
    result = check_path(os.fspath(path))
    if result.workspace is None:
        raise ProgramError(result.diagnostics, result.sources)
    return _checked(result.workspace, result.diagnostics, result.sources)


def loads(text: str, path: str = "<string>") -> CheckedProgram:
    """Parse and check program text; `path` names it in diagnostics, and the paths
    it mentions (data, imports) are relative to the folder of `path`."""
    workspace = workspace_of(parse(text, path))
    return _checked(workspace, check(workspace), workspace.sources)


def compile(program: CheckedProgram | ast.Program | Workspace) -> Plan:
    """The execution plan of a program: loaded, parsed, or built in Python.

    Raises `ProgramError` when the program has errors; they are never planned.
    """
    return compile_workspace(program.workspace if isinstance(program, CheckedProgram) else program)


def to_source(program: CheckedProgram | ast.Program) -> str:
    """The program's main file as `.grpo` source in the canonical layout."""
    return format_program(program.program if isinstance(program, CheckedProgram) else program)
