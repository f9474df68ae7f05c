"""The learner's prompts: one Jinja template file each, rendered sandboxed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Template

from grpo_dsl.core.resources import resource_path
from grpo_dsl.core.templating import sandbox
from grpo_dsl.library import PolicySpec

__all__ = ["LEARNER_MAX_TOKENS", "PROPOSALS_PER_CONSOLIDATION", "SHOWN_OUTPUT_CHARS", "LearnerPrompts"]

LEARNER_MAX_TOKENS: Mapping[str, int] = {"summary": 300, "contrast": 120, "advantage": 600, "consolidate": 1000}
"""The completion limit of each kind of learner call."""

PROPOSALS_PER_CONSOLIDATION = 32
"""How many proposed operations one consolidation call takes; more are split across calls."""

SHOWN_OUTPUT_CHARS = 4000
"""Characters of a rollout's answer shown to the learner (longer ones are truncated)."""


class LearnerPrompts:
    """Renders `prompts/templates/summary.j2`, `contrast.j2`, `advantage.j2`, `advantage_from_rule.j2` and `consolidate.j2`."""

    temperature = 0.0
    """Sampling temperature of every learner call: greedy, the learner's most likely reading of the
    group (small models sampled at 0.3 wrote rules that quote the task's answer far more often)."""

    def __init__(self) -> None:
        env = sandbox()
        self._templates: dict[str, Template] = {
            name: env.from_string(resource_path(f"prompts/templates/{name}.j2").read_text(encoding="utf-8"))
            for name in ("summary", "contrast", "advantage", "advantage_from_rule", "consolidate")
        }

    def summary(self, **values: Any) -> str:
        """The prompt asking for a summary of one rollout."""
        return self._templates["summary"].render(values).strip()

    def contrast(self, *, policy: PolicySpec, **values: Any) -> str:
        """The prompt asking, in free text, for the rule the better attempt follows and the worse breaks."""
        return self._templates["contrast"].render(_policy_values(policy), **values).strip()

    def advantage(self, *, policy: PolicySpec, **values: Any) -> str:
        """The prompt asking for one group's semantic advantage, from its ranked summaries, as operations."""
        return self._templates["advantage"].render(_policy_values(policy), **values).strip()

    def advantage_from_rule(self, *, policy: PolicySpec, **values: Any) -> str:
        """The prompt turning a group's contrast rule into operations on the library."""
        return self._templates["advantage_from_rule"].render(_policy_values(policy), **values).strip()

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
