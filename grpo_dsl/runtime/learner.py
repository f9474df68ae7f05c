"""The learner's prompts: one Jinja template file each, rendered sandboxed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Template

from ..library import PolicySpec
from ..prompting import sandbox
from ..resources import resource_path

__all__ = ["LearnerPrompts"]


class LearnerPrompts:
    """Renders `templates/summary.j2`, `advantage.j2` and `consolidate.j2`."""

    temperature = 0.3
    """Sampling temperature of every learner call."""

    def __init__(self) -> None:
        env = sandbox()
        self._templates: dict[str, Template] = {
            name: env.from_string(resource_path(f"templates/{name}.j2").read_text(encoding="utf-8"))
            for name in ("summary", "advantage", "consolidate")
        }

    def summary(self, **values: Any) -> str:
        """The prompt asking for a summary of one rollout."""
        return self._templates["summary"].render(values).strip()

    def advantage(self, *, policy: PolicySpec, **values: Any) -> str:
        """The prompt asking for one group's semantic advantage as operations."""
        return self._templates["advantage"].render(_policy_values(policy), **values).strip()

    def consolidate(self, *, policy: PolicySpec, proposals: Sequence[Mapping[str, Any]], **values: Any) -> str:
        """The prompt asking to merge a batch's proposals into one list of operations."""
        return self._templates["consolidate"].render(_policy_values(policy), proposals=proposals, **values).strip()


def _policy_values(policy: PolicySpec) -> dict[str, Any]:
    return {
        "ops": sorted(set(policy.ops) | {"keep"}),
        "max_per_group": policy.max_per_group,
        "max_words": policy.max_words,
        "capacity": policy.capacity,
        "style": policy.style,
    }
