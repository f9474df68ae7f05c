"""grpo-dsl: a declarative language for Training-Free GRPO.

Declare models, datasets, tasks, rewards and update policies in a `.grpo` file; the
compiler turns it into an execution plan, the interpreter runs the learning loop,
and the learned experience library is emitted as a versioned prompt module.

`import grpo_dsl` is light: every name below is imported on first use (the parser
with `load`, the runtime and its `openai` client with the first `learn`), so a
notebook or a tool that only imports the package pays for nothing it does not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from grpo_dsl._version import __version__

if TYPE_CHECKING:
    from grpo_dsl.api import (
        ApiError,
        CheckedProgram,
        aevaluate,
        alearn,
        aresume,
        compile,
        evaluate,
        learn,
        load,
        loads,
        resume,
        to_source,
    )
    from grpo_dsl.core.env import resolve_env
    from grpo_dsl.evaluation.evaluate import EvaluationResult
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
    from grpo_dsl.learning.run import RunResult
    from grpo_dsl.modules import ModelMismatchWarning, ModuleError, PromptModule, load_module
    from grpo_dsl.plan import Plan, PlanError
    from grpo_dsl.rewards.functions import RewardFunctionError
    from grpo_dsl.runs.loop import LoopRunning

_HOMES = {
    "grpo_dsl.api": (
        "ApiError CheckedProgram aevaluate alearn aresume compile evaluate learn load loads resume to_source"
    ),
    "grpo_dsl.core.env": "resolve_env",
    "grpo_dsl.evaluation.evaluate": "EvaluationResult",
    "grpo_dsl.language.builders": (
        "Dataset Emit Evaluate Learn Model Policy Program Reward Task Tool binary call conditional env expr metric python ref unary"
    ),
    "grpo_dsl.language.diagnostics": "Diagnostic ProgramError",
    "grpo_dsl.learning.run": "RunResult",
    "grpo_dsl.modules": "ModelMismatchWarning ModuleError PromptModule load_module",
    "grpo_dsl.plan": "Plan PlanError",
    "grpo_dsl.rewards.functions": "RewardFunctionError",
    "grpo_dsl.runs.loop": "LoopRunning",
}
_HOME = {name: module for module, names in _HOMES.items() for name in names.split()}

__all__ = ["__version__", *sorted(_HOME)]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'grpo_dsl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
