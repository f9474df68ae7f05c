"""What every check needs to know about a workspace, computed once.

`Context` holds the workspace, the columns of every dataset file (read once), and
answers the questions the checks share: which datasets a task or reward is used
with, which names a reward reads, where a diagnostic should point.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from grpo_dsl.core.datasets import DatasetError, read_table, row_id
from grpo_dsl.language import ast
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.queries import PYTHON_REFERENCE, names_in, reference
from grpo_dsl.language.workspace import Workspace

__all__ = [
    "Check",
    "Context",
    "DatasetInfo",
    "did_you_mean",
    "error",
    "python_call_problems",
    "span_in_string",
    "warning",
]



def error(code: str, message: str, span: ast.Span, hint: str | None = None) -> Diagnostic:
    """An error diagnostic."""
    return Diagnostic(code, "error", message, span, hint)


def warning(code: str, message: str, span: ast.Span, hint: str | None = None) -> Diagnostic:
    """A warning diagnostic."""
    return Diagnostic(code, "warning", message, span, hint)


def python_call_problems(call: ast.Call, example: str) -> Iterator[Diagnostic]:
    """What is wrong with a `python("file.py:function")` call (E0106), if anything."""
    if len(call.args) != 1 or not isinstance(call.args[0], ast.String):
        yield error("E0106", "`python` takes one string: the file and the function", call.span, f'write `python("{example}")`')
    elif not PYTHON_REFERENCE.fullmatch(call.args[0].value):
        yield error(
            "E0106",
            f'`"{call.args[0].value}"` is not a python reference',
            call.args[0].span,
            f'write the file and the function separated by a colon: `"{example}"`',
        )


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """`did you mean `x`?` for the candidate closest to `name`, or None."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.7)
    return f"did you mean `{close[0]}`?" if close else None








def span_in_string(literal: ast.String, source: str | None, start: int, end: int) -> ast.Span:
    """The span of characters `start:end` of a string literal's raw text (quotes
    included), or the literal's span when its position in `source` is unknown."""
    span = literal.span
    raw = literal.raw
    if source is None or raw is None or source[span.start : span.start + len(raw)] != raw:
        return span
    begin, stop = span.start + start, span.start + end
    line = source.count("\n", 0, begin) + 1
    column = begin - (source.rfind("\n", 0, begin) + 1) + 1
    end_line = source.count("\n", 0, stop) + 1
    end_column = stop - (source.rfind("\n", 0, stop) + 1) + 1
    return ast.Span(span.path, line, column, end_line, end_column, begin, stop)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's file, columns, number of rows and rows sharing an id. `columns` is None
    when the file cannot be read (then `problem` says why, unless the source is not a
    string at all). `duplicate` is the first id two rows share, with their row numbers."""

    decl: ast.Dataset
    path: Path | None
    columns: tuple[str, ...] | None
    problem: DatasetError | None
    mapping: dict[str, ast.String]
    rows: int = 0
    duplicate: tuple[str, int, int] | None = None

    @property
    def fields(self) -> frozenset[str] | None:
        """The names the program may use: mapped names and unmapped columns (None when
        unknown: the file cannot be read, or has no row and no header to tell)."""
        if self.columns is None or not (self.columns or self.rows):
            return None
        mapped = {literal.value for literal in self.mapping.values()}
        return frozenset(self.mapping) | frozenset(c for c in self.columns if c not in mapped)


def _dataset_info(workspace: Workspace, decl: ast.Dataset) -> DatasetInfo:
    mapping: dict[str, ast.String] = {}
    fields = decl.get("fields")
    if fields is not None and isinstance(fields.value, ast.Block):
        for attribute in fields.value.attributes:
            if isinstance(attribute.value, ast.String):
                mapping.setdefault(attribute.name, attribute.value)
    source = decl.get("source")
    if source is None or not isinstance(source.value, ast.String):
        return DatasetInfo(decl, None, None, None, mapping)
    path = workspace.folder_of(decl) / source.value.value
    try:
        table = read_table(path)
    except DatasetError as problem:
        return DatasetInfo(decl, path, None, problem, mapping)
    return DatasetInfo(decl, path, table.columns, None, mapping, len(table.rows), _duplicate(table.rows))


def _duplicate(rows: list[dict[str, Any]]) -> tuple[str, int, int] | None:
    """The first id (`id` column, or the content's hash) two rows share, with both row numbers (from 1)."""
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        first = seen.setdefault(row_id(row), number)
        if first != number:
            return row_id(row), first, number
    return None


@dataclass(frozen=True)
class Context:
    """A workspace with the facts the checks share."""

    workspace: Workspace
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)

    @classmethod
    def of(cls, workspace: Workspace) -> Context:
        """Read the dataset columns of `workspace` once."""
        datasets = {
            decl.name: _dataset_info(workspace, decl)
            for decl in workspace.declarations.values()
            if isinstance(decl, ast.Dataset)
        }
        return cls(workspace, datasets)

    def source(self, span: ast.Span) -> str | None:
        """The text of the file `span` points into."""
        return self.workspace.sources.get(span.path)

    def of_kind(self, kind: type[ast.Declaration]) -> list[ast.Decl]:
        """The declarations of one kind (first declaration of each name)."""
        return [decl for decl in self.workspace.declarations.values() if isinstance(decl, kind)]

    def resolve(self, name: str | None, kind: type[ast.Declaration]) -> ast.Decl | None:
        """The declaration `name` if it exists and is of `kind`."""
        found = self.workspace.declarations.get(name) if name is not None else None
        return found if isinstance(found, kind) else None

    def task_datasets(self, task: str) -> list[str]:
        """Datasets whose rows fill the templates of `task` (learn data and validate,
        evaluate data), in declaration order, without repeats."""
        return list(self._task_datasets.get(task, ()))

    @cached_property
    def _task_datasets(self) -> dict[str, dict[str, None]]:
        used: dict[str, dict[str, None]] = {}
        for decl in self.workspace.declarations.values():
            if isinstance(decl, ast.Learn | ast.Evaluate) and (task := reference(decl, "task")) is not None:
                for attribute in ("data", "validate"):
                    name = reference(decl, attribute)
                    if name is not None and self.resolve(name, ast.Dataset) is not None:
                        used.setdefault(task, {})[name] = None
        return used

    def evaluation_reward(self, decl: ast.Evaluate) -> list[str]:
        """The rewards an evaluation scores with: its own, or those of the compared learns."""
        own = reference(decl, "reward")
        if own is not None or decl.get("reward") is not None:
            return [own] if own is not None else []
        compare = decl.get("compare")
        items = compare.value.items if compare is not None and isinstance(compare.value, ast.ListExpr) else ()
        rewards: dict[str, None] = {}
        for item in items:
            learn = self.resolve(item.name, ast.Learn) if isinstance(item, ast.Name) else None
            if learn is not None and (name := reference(learn, "reward")) is not None:
                rewards[name] = None
        return list(rewards)

    def reward_uses(self, reward: str) -> list[tuple[ast.Learn | ast.Evaluate, str]]:
        """The learns and evaluations scored by `reward`, directly or through other
        rewards that read it, each with the task they run."""
        uses: dict[int, tuple[ast.Learn | ast.Evaluate, str]] = {}
        for name in self.rewards_reading(reward):
            uses.update(self._direct_uses.get(name, {}))
        return [uses[place] for place in sorted(uses)]

    @cached_property
    def _direct_uses(self) -> dict[str, dict[int, tuple[ast.Learn | ast.Evaluate, str]]]:
        """For each reward, the learns and evaluations that score with it by name,
        with their task, keyed by their place among the declarations."""
        uses: dict[str, dict[int, tuple[ast.Learn | ast.Evaluate, str]]] = {}
        for place, decl in enumerate(self.workspace.declarations.values()):
            if isinstance(decl, ast.Learn):
                direct = [reference(decl, "reward")]
            elif isinstance(decl, ast.Evaluate):
                direct = list(self.evaluation_reward(decl))
            else:
                continue
            task = reference(decl, "task")
            for name in direct:
                if task is not None and name is not None:
                    uses.setdefault(name, {})[place] = (decl, task)
        return uses

    def reward_datasets(self, reward: str) -> list[str]:
        """Datasets whose rows a reward is evaluated on."""
        used: dict[str, None] = {}
        for decl, _ in self.reward_uses(reward):
            for attribute in ("data", "validate") if isinstance(decl, ast.Learn) else ("data",):
                name = reference(decl, attribute)
                if self.resolve(name, ast.Dataset) is not None:
                    used[name or ""] = None
        return list(used)

    def rewards_reading(self, reward: str) -> set[str]:
        """`reward` and every reward that reads it, directly or not."""
        readers = {reward}
        pending = [reward]
        while pending:
            for reader in self._readers.get(pending.pop(), ()):
                if reader not in readers:
                    readers.add(reader)
                    pending.append(reader)
        return readers

    @cached_property
    def _readers(self) -> dict[str, list[str]]:
        """For each name, the rewards whose expression reads it."""
        readers: dict[str, list[str]] = {}
        for decl in self.of_kind(ast.Reward):
            assert isinstance(decl, ast.Reward)
            if decl.expression is not None:
                for name in dict.fromkeys(n.name for n in names_in(decl.expression)):
                    readers.setdefault(name, []).append(decl.name)
        return readers

    def fields_of(self, dataset: str) -> frozenset[str] | None:
        """The field names of a dataset, or None when its file cannot be read."""
        info = self.datasets.get(dataset)
        return info.fields if info is not None else None


Check = Callable[[Context], Iterable[Diagnostic]]
