"""Locate files that ship with the package (grammar, schemas, templates)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["resource_path"]

_CHECKOUT = Path(__file__).resolve().parents[2]


def resource_path(relative: str) -> Path:
    """Path of a shipped file such as `grammars/grpo.lark` or `schemas/plan.schema.json`.

    An installed wheel carries the top-level `grammars/` and `schemas/` folders inside
    the package; a checkout (or an editable install) has them beside the package.
    """
    packaged = Path(str(resources.files("grpo_dsl"))) / relative
    if packaged.exists():
        return packaged
    return _CHECKOUT / relative
