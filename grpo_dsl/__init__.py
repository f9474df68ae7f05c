"""grpo-dsl: a declarative language for Training-Free GRPO.

Declare models, datasets, tasks, rewards and update policies in a `.grpo` file; the
compiler turns it into an execution plan, the interpreter runs the learning loop,
and the learned experience library is emitted as a versioned prompt module.
"""

__version__ = "0.1.0"

from .api import CheckedProgram, compile, load, loads, to_source  # noqa: E402
from .builder import (  # noqa: E402
    Dataset,
    Emit,
    Evaluate,
    Learn,
    Model,
    Policy,
    Program,
    Reward,
    Task,
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
from .diagnostics import Diagnostic, ProgramError  # noqa: E402
from .emit import ModelMismatchWarning, ModuleError, PromptModule, load_module  # noqa: E402
from .plan import Plan, PlanError, resolve_env  # noqa: E402

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
