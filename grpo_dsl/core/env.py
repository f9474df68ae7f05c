"""Values a plan leaves to the environment: `env("VAR")` and `env("VAR", "default")`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["resolve_env"]


def resolve_env(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """The run-time value of a plan value: `{"env": VAR, "default": d}` becomes the
    variable's value (or `d` when it is unset); any other value is returned as is.

    >>> resolve_env({"env": "GRPO_UNSET_EXAMPLE", "default": "x"}, {})
    'x'
    >>> resolve_env("https://api.example.com/v1")
    'https://api.example.com/v1'
    """
    if isinstance(value, Mapping) and set(value) == {"env", "default"}:
        variables = os.environ if environ is None else environ
        return variables.get(str(value["env"]), value["default"])
    return value
