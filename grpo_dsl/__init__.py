"""grpo-dsl: a declarative language for Training-Free GRPO.

Declare models, datasets, tasks, rewards and update policies in a `.grpo` file; the
compiler turns it into an execution plan, the interpreter runs the learning loop,
and the learned experience library is emitted as a versioned prompt module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from grpo_dsl._version import __version__

if TYPE_CHECKING:
    from grpo_dsl.api import CheckedProgram, compile, load, loads, to_source
    from grpo_dsl.core.env import resolve_env
    from grpo_dsl.language.builders import (
        Dataset,
        Emit,
        Evaluate,
        Learn,
        Model,
        Policy,
        Program,
        Reward,
        Task,
        Tool,
        binary,
        call,
        conditional,
        env,
        expr,
        metric,
        python,
        ref,
        unary,
    )
    from grpo_dsl.language.diagnostics import Diagnostic, ProgramError
    from grpo_dsl.modules import (
        ModelMismatchWarning,
        ModuleError,
        PromptModule,
        load_module,
    )
    from grpo_dsl.plan import Plan, PlanError

__all__ = [
    "__version__",
    "CheckedProgram",
    "Dataset",
    "Diagnostic",
    "Emit",
    "Evaluate",
    "Learn",
    "Model",
    "ModelMismatchWarning",
    "ModuleError",
    "Plan",
    "PlanError",
    "Policy",
    "Program",
    "ProgramError",
    "PromptModule",
    "Reward",
    "Task",
    "Tool",
    "binary",
    "call",
    "compile",
    "conditional",
    "env",
    "expr",
    "load",
    "loads",
    "load_module",
    "metric",
    "python",
    "ref",
    "resolve_env",
    "to_source",
    "unary",
]

_EXPORTS: dict[str, str] = {
    "CheckedProgram": "grpo_dsl.api",
    "compile": "grpo_dsl.api",
    "load": "grpo_dsl.api",
    "loads": "grpo_dsl.api",
    "to_source": "grpo_dsl.api",
    "resolve_env": "grpo_dsl.core.env",
    "Dataset": "grpo_dsl.language.builders",
    "Emit": "grpo_dsl.language.builders",
    "Evaluate": "grpo_dsl.language.builders",
    "Learn": "grpo_dsl.language.builders",
    "Model": "grpo_dsl.language.builders",
    "Policy": "grpo_dsl.language.builders",
    "Program": "grpo_dsl.language.builders",
    "Reward": "grpo_dsl.language.builders",
    "Task": "grpo_dsl.language.builders",
    "Tool": "grpo_dsl.language.builders",
    "binary": "grpo_dsl.language.builders",
    "call": "grpo_dsl.language.builders",
    "conditional": "grpo_dsl.language.builders",
    "env": "grpo_dsl.language.builders",
    "expr": "grpo_dsl.language.builders",
    "metric": "grpo_dsl.language.builders",
    "python": "grpo_dsl.language.builders",
    "ref": "grpo_dsl.language.builders",
    "unary": "grpo_dsl.language.builders",
    "Diagnostic": "grpo_dsl.language.diagnostics",
    "ProgramError": "grpo_dsl.language.diagnostics",
    "ModelMismatchWarning": "grpo_dsl.modules",
    "ModuleError": "grpo_dsl.modules",
    "PromptModule": "grpo_dsl.modules",
    "load_module": "grpo_dsl.modules",
    "Plan": "grpo_dsl.plan",
    "PlanError": "grpo_dsl.plan",
}
"""Where each public name lives: it is imported on first use, so `import grpo_dsl`
(and `grpo --version`) loads nothing else."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
