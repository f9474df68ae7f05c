"""User update rules: load `rule = python("file.py:function")` and check what it returns."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grpo_dsl.library.experiences import Library
from grpo_dsl.library.operations import Operation

__all__ = [
    "RuleError",
    "load_rule",
]
from grpo_dsl.core.errors import GrpoError
from grpo_dsl.library.apply import ApplyContext, ApplyReport, PolicySpec, Rule


class RuleError(GrpoError):
    """A user update rule could not be loaded, or misbehaved when called."""


def load_rule(path: str, function: str, base_dir: Path) -> Rule:
    """Import `function` from the Python file `path` (relative to `base_dir`) as an update rule.

    The returned rule checks what the user function returns and turns any
    exception it raises into a `RuleError` naming the rule.
    """
    file = (base_dir / path).resolve()
    label = f"{path}:{function}"
    if not file.is_file():
        raise RuleError(f"update rule {label}: file {file} not found")
    module_name = "grpo_rule_" + hashlib.sha256(str(file).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise RuleError(f"update rule {label}: {file} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise RuleError(f"update rule {label}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    user_rule = getattr(module, function, None)
    if not callable(user_rule):
        defined = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module_name)
        listing = f" (it defines {', '.join(defined)})" if defined else ""
        raise RuleError(f"update rule {label}: {path} has no function `{function}`{listing}")
    try:
        inspect.signature(user_rule).bind(None, None, None, None)
    except TypeError:
        raise RuleError(f"update rule {label} must take (library, operations, policy, context)") from None
    except ValueError:
        pass
    return _checked(user_rule, label)


def _checked(user_rule: Callable[..., Any], label: str) -> Rule:
    def rule(
        library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
    ) -> tuple[Library, ApplyReport]:
        try:
            result = user_rule(library, operations, policy, context)
        except Exception as exc:
            raise RuleError(f"update rule {label} raised {type(exc).__name__}: {exc}") from exc
        if not (
            isinstance(result, tuple)
            and len(result) == 2
            and isinstance(result[0], Library)
            and isinstance(result[1], ApplyReport)
        ):
            raise RuleError(f"update rule {label} returned {type(result).__name__}, expected (Library, ApplyReport)")
        return result

    rule.__name__ = rule.__qualname__ = label.rsplit(":", 1)[-1]
    return rule
