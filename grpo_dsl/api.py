"""The Python host API (language.md §8, docs/python.md): load and check a program,
compile it to a plan, print it back as source, and run it: `learn` and `evaluate`,
and `alearn` and `aevaluate` that run in an event loop already running (Jupyter).

>>> import grpo_dsl as g
>>> program = g.load("programs/math.grpo")            # doctest: +SKIP
>>> plan = g.compile(program)                          # doctest: +SKIP
>>> g.to_source(program) == open("programs/math.grpo").read()   # doctest: +SKIP
True
>>> result = g.learn(program, runs="runs")             # doctest: +SKIP

`grpo run`, `grpo run --resume` and `grpo eval` call the functions of this module,
so a run started here is the run the command line would make. The runtime (the
client stack, which imports `openai`) is imported on the first run, not with the
package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, TypeAlias

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import atomic_write_text, sha256_text
from grpo_dsl.language import ast
from grpo_dsl.language.checks import check, check_path
from grpo_dsl.language.diagnostics import Diagnostic, ProgramError
from grpo_dsl.language.fmt import format_program
from grpo_dsl.language.parser import parse
from grpo_dsl.language.workspace import Workspace, load_sources
from grpo_dsl.plan import Plan, workspace_of
from grpo_dsl.plan import compile as compile_workspace
from grpo_dsl.runs.loop import LoopRunning, blocking

if TYPE_CHECKING:
    from grpo_dsl.evaluation.evaluate import EvaluationResult
    from grpo_dsl.learning.run import RunResult
    from grpo_dsl.rewards.functions import RewardFunction
    from grpo_dsl.rollout.tools import ToolFunction

__all__ = [
    "ApiError",
    "CheckedProgram",
    "DatasetInput",
    "LoopRunning",
    "ProgramInput",
    "aevaluate",
    "alearn",
    "aresume",
    "choose_block",
    "compile",
    "evaluate",
    "learn",
    "load",
    "loads",
    "resume",
    "to_source",
]


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


# ---------------------------------------------------------------------- running

ProgramInput: TypeAlias = "CheckedProgram | str | os.PathLike[str]"
"""A program to run: loaded (`load`, `loads`), a path, or `.grpo` source text (a
text with a line break; its paths are relative to the working directory)."""

DatasetInput: TypeAlias = "str | os.PathLike[str] | Sequence[Mapping[str, Any]]"
"""A dataset given from Python: a data file, or its rows as dicts."""

DATA_FOLDER = ".data"
"""The folder, in the runs folder, of the rows given from Python, one JSONL file per
distinct content (a name that no block can have, so no learn's runs are there)."""


class ApiError(GrpoError):
    """A run the API cannot start: no block to run, a dataset given for a name that is
    not one, rows that are not JSON objects."""


def choose_block(plan: Plan, kind: Literal["learn", "evaluate"], chosen: str | None) -> str:
    """The block of `kind` to run: `chosen`, or the program's only one.

    Raises `ApiError` naming the blocks there are when `chosen` is None and there
    are several (or none), or when there is no block `chosen`.
    """
    names = plan.names(kind)
    listed = ", ".join(names) or "none"
    if chosen is None and len(names) != 1:
        raise ApiError(f"the program has {len(names)} {kind} blocks; choose one with --{kind} ({listed}), or block= from Python")
    name = chosen or names[0]
    if name not in names:
        raise ApiError(f"no {kind} block `{name}`; the program has: {listed}")
    return name


def _workspace(program: ProgramInput) -> Workspace:
    """The program's files, parsed but not checked yet: the checks run when it is
    compiled, after the datasets given from Python are in place (so a program whose
    data comes only from Python needs no data file)."""
    if isinstance(program, CheckedProgram):
        return program.workspace
    if isinstance(program, str) and "\n" in program:
        return workspace_of(parse(program, "<string>"))
    workspace, diagnostics, sources = load_sources(os.fspath(program))
    if workspace is None:
        raise ProgramError(diagnostics, sources)
    return workspace


def _rows_file(name: str, rows: Sequence[Mapping[str, Any]], folder: Path) -> Path:
    """The rows of dataset `name` written as JSON lines into `folder`, in a file named by their content."""
    if isinstance(rows, (str, bytes, Mapping)):
        raise ApiError(f"dataset `{name}`: give a file path or a list of dicts, not {type(rows).__name__}")
    lines = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping) or not all(isinstance(key, str) for key in row):
            raise ApiError(f"dataset `{name}`: row {index} is {type(row).__name__}, not a dict with text keys")
        try:
            lines.append(json.dumps(dict(row), ensure_ascii=False, allow_nan=False) + "\n")
        except (TypeError, ValueError) as exc:
            raise ApiError(f"dataset `{name}`: row {index} is not JSON: {exc}") from None
    text = "".join(lines)
    path = folder / f"{name}-{sha256_text(text)[:16]}.jsonl"
    if not path.is_file():
        atomic_write_text(path, text)
    return path


def _with_datasets(workspace: Workspace, datasets: Mapping[str, DatasetInput], folder: Path) -> Workspace:
    """The program with the `source` of each dataset named in `datasets` replaced by the
    given file (absolute) or by a file of the given rows in `folder`; checked when it
    is compiled, so rows that lack a field the task reads are reported as in a file."""
    for name, given in datasets.items():
        decl = workspace.declarations.get(name)
        source = decl.get("source") if isinstance(decl, ast.Dataset) else None
        if decl is None or source is None:
            known = ", ".join(n for n, d in workspace.declarations.items() if isinstance(d, ast.Dataset)) or "none"
            raise ApiError(f"`{name}` is not a dataset of the program (its datasets: {known})")
        path = Path(given).resolve() if isinstance(given, (str, os.PathLike)) else _rows_file(name, given, folder).resolve()
        value = ast.String(str(path), span=source.value.span)
        changed = replace(decl, attributes=tuple(replace(a, value=value) if a is source else a for a in decl.attributes))
        files = {
            path_: replace(p, declarations=tuple(changed if d is decl else d for d in p.declarations))
            for path_, p in workspace.files.items()
        }
        workspace = replace(workspace, files=files, declarations={**workspace.declarations, name: changed})
    return workspace


def _planned(program: ProgramInput, datasets: Mapping[str, DatasetInput] | None, runs: Path) -> tuple[Plan, Path]:
    """The plan to run and the folder its paths are relative to; `ProgramError` when the program has errors."""
    workspace = _workspace(program)
    if datasets:
        workspace = _with_datasets(workspace, datasets, runs / DATA_FOLDER)
    return compile_workspace(workspace), Path(workspace.base_dir).resolve()


async def alearn(
    program: ProgramInput,
    *,
    block: str | None = None,
    runs: str | os.PathLike[str] = "runs",
    datasets: Mapping[str, DatasetInput] | None = None,
    rewards: Mapping[str, RewardFunction] | None = None,
    tools: Mapping[str, ToolFunction] | None = None,
    stream: TextIO | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> RunResult:
    """Run learn block `block` of `program` (default: its only one) in the running event loop.

    The run directory is made under `runs` (`runs/<learn>/<run-id>/`), as by `grpo
    run`. `datasets` replaces the data of the program's datasets by name: a file, or
    a list of dicts (written to `runs/.data/` so that the run can be resumed).
    `rewards` replaces the program's rewards by name with Python functions
    `fn(output, row) -> number`, and `tools` answers the task's Python tools by name
    with Python functions called with the model's arguments (docs/python.md).
    Progress goes to `stream` (None: quiet); `on_start` is told the run directory
    once it exists.

    Returns the `RunResult` (status, library, step outcomes, usage; `.emit()` writes
    a prompt module); a run that stopped or failed says so in `status` and
    `message`. Raises `ProgramError` for a program with errors, `ApiError` when the
    block or a dataset is unclear. A learn with `repeats` runs once, as `grpo run
    --repeats 1` runs it.
    """
    from grpo_dsl.learning.run import astart_run  # the runtime, with `openai`: loaded on the first run, not with the API

    plan, base_dir = _planned(program, datasets, Path(runs))
    name = choose_block(plan, "learn", block)
    return await astart_run(
        plan, name, base_dir=base_dir, runs_root=Path(runs), stream=stream, on_start=on_start, rewards=rewards, tools=tools
    )


async def aevaluate(
    program: ProgramInput,
    *,
    block: str | None = None,
    runs: str | os.PathLike[str] = "runs",
    datasets: Mapping[str, DatasetInput] | None = None,
    rewards: Mapping[str, RewardFunction] | None = None,
    stream: TextIO | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> EvaluationResult:
    """Run evaluate block `block` of `program` (default: its only one) in the running event loop.

    A learn named in its `compare` means the library of that learn's newest
    completed run under `runs`. `datasets`, `rewards`, `stream` and `on_start` are
    as for `alearn`. Returns the `EvaluationResult` (each library's metrics with
    intervals, the paired comparisons, the usage; `.to_json()` is evaluation.json).
    """
    from grpo_dsl.evaluation.evaluate import astart_evaluation

    plan, base_dir = _planned(program, datasets, Path(runs))
    name = choose_block(plan, "evaluate", block)
    return await astart_evaluation(plan, name, base_dir=base_dir, runs_root=Path(runs), stream=stream, on_start=on_start, rewards=rewards)


async def aresume(
    run_dir: str | os.PathLike[str],
    *,
    budget: Mapping[str, float] | None = None,
    rewards: Mapping[str, RewardFunction] | None = None,
    tools: Mapping[str, ToolFunction] | None = None,
    stream: TextIO | None = None,
) -> RunResult:
    """Continue a learning run after its last completed step, in the running event loop,
    as `grpo run --resume` does; `budget` raises its limits (`usd`, `tokens`,
    `calls`), `rewards` and `tools` give again the functions it started with."""
    from grpo_dsl.learning.run import aresume_run

    return await aresume_run(Path(run_dir), stream=stream, budget=budget, rewards=rewards, tools=tools)


learn = blocking(alearn, "grpo_dsl.alearn")
evaluate = blocking(aevaluate, "grpo_dsl.aevaluate")
resume = blocking(aresume, "grpo_dsl.aresume")
