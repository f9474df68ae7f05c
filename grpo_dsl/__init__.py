"""grpo-dsl: a declarative language for Training-Free GRPO.

Declare models, datasets, tasks, rewards and update policies in a `.grpo` file; the
compiler turns it into an execution plan, the interpreter runs the learning loop,
and the learned experience library is emitted as a versioned prompt module.
"""

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

# Where each public name lives. They are imported on first use, so that importing the
# package (which `grpo --version` and every verb do) costs nothing of the runtime.
_HOMES = {
    "CheckedProgram": "grpo_dsl.api",
    "compile": "grpo_dsl.api",
    "load": "grpo_dsl.api",
    "loads": "grpo_dsl.api",
    "to_source": "grpo_dsl.api",
    "resolve_env": "grpo_dsl.core.env",
    "Diagnostic": "grpo_dsl.language.diagnostics",
    "ProgramError": "grpo_dsl.language.diagnostics",
    "ModelMismatchWarning": "grpo_dsl.modules",
    "ModuleError": "grpo_dsl.modules",
    "PromptModule": "grpo_dsl.modules",
    "load_module": "grpo_dsl.modules",
    "Plan": "grpo_dsl.plan",
    "PlanError": "grpo_dsl.plan",
    **dict.fromkeys(
        (
            "Dataset", "Emit", "Evaluate", "Learn", "Model", "Policy", "Program", "Reward", "Task",
            "Tool",
            "binary", "call", "conditional", "env", "expr", "metric", "python", "ref", "unary",
        ),
        "grpo_dsl.language.builders",
    ),
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is used."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'grpo_dsl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
