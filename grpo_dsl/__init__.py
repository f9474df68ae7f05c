"""grpo-dsl: a declarative language for Training-Free GRPO.

Declare models, datasets, tasks, rewards and update policies in a `.grpo` file; the
compiler turns it into an execution plan, the interpreter runs the learning loop,
and the learned experience library is emitted as a versioned prompt module.
"""

from grpo_dsl._version import __version__
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
