"""Check a program: every rule of the language, each problem a `Diagnostic`.

`check_path("programs/math.grpo")` loads the program and its imports, and, when
they parse, runs `CHECKS` (an ordered tuple of functions, one module per topic)
over them. Every problem of a phase is reported; the checks run only when loading
found no error.

>>> result = check_path("programs/math.grpo")
>>> result.ok, result.diagnostics
(True, ())
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from grpo_dsl.language.ast import Program
from grpo_dsl.language.checks.attributes import check_attributes
from grpo_dsl.language.checks.context import Check, Context
from grpo_dsl.language.checks.expressions import (
    check_functions,
    check_reward_cycles,
    check_reward_names,
)
from grpo_dsl.language.checks.files import (
    check_data_files,
    check_python_files,
    check_response_schemas,
    check_tool_files,
)
from grpo_dsl.language.checks.names import check_duplicates, check_references
from grpo_dsl.language.checks.rules import (
    check_evaluation_reward,
    check_ground_truth,
    check_group_contrast,
    check_metric_samples,
    check_pruning,
    check_secrets,
    check_unsafe_sandbox,
    check_validation_set,
)
from grpo_dsl.language.checks.templates import check_templates
from grpo_dsl.language.checks.tools import check_tools
from grpo_dsl.language.checks.unused import check_unused
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.workspace import Workspace, load_sources

__all__ = ["CHECKS", "Check", "CheckResult", "Context", "check", "check_path"]

CHECKS: tuple[Check, ...] = (
    check_duplicates,
    check_attributes,
    check_references,
    check_data_files,
    check_python_files,
    check_tool_files,
    check_response_schemas,
    check_tools,
    check_functions,
    check_reward_names,
    check_reward_cycles,
    check_templates,
    check_group_contrast,
    check_ground_truth,
    check_metric_samples,
    check_evaluation_reward,
    check_validation_set,
    check_pruning,
    check_secrets,
    check_unsafe_sandbox,
    check_unused,
)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one program: its workspace (None when it did not
    load), every diagnostic sorted by file, line and column, and the source texts."""

    workspace: Workspace | None
    diagnostics: tuple[Diagnostic, ...]
    sources: dict[str, str]

    @property
    def ok(self) -> bool:
        """True when no diagnostic is an error (warnings allowed)."""
        return not any(d.severity == "error" for d in self.diagnostics)


def _sorted(diagnostics: list[Diagnostic], order: list[str]) -> tuple[Diagnostic, ...]:
    rank = {path: index for index, path in enumerate(order)}

    def key(d: Diagnostic) -> tuple[int, str, int, int, str]:
        return (rank.get(d.span.path, len(rank)), d.span.path, d.span.line, d.span.column, d.code)

    return tuple(sorted(dict.fromkeys(diagnostics), key=key))


def check(workspace: Workspace) -> list[Diagnostic]:
    """Run every check of `CHECKS` over a loaded workspace."""
    context = Context.of(workspace)
    return [diagnostic for rule in CHECKS for diagnostic in rule(context)]


def check_path(path: str, open_files: Mapping[Path, Program | str] | None = None) -> CheckResult:
    """Load the program at `path` with its imports and check it.

    Syntax errors, missing imports and import cycles stop before the checks; the
    result then has no workspace. `open_files` replaces files on disk by programs or
    texts, by resolved path (see `load_sources`).
    """
    workspace, diagnostics, sources = load_sources(path, open_files)
    if workspace is None:
        return CheckResult(None, _sorted(diagnostics, list(sources)), sources)
    return CheckResult(workspace, _sorted(check(workspace), list(workspace.files)), sources)
