"""The learner's prompts: one Jinja template file each, rendered sandboxed; and
`direct_statement`, which turns the learner's wording of a lesson into a rule that
stands without the prompt it answered."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Template

from grpo_dsl.core.resources import resource_path
from grpo_dsl.core.templating import sandbox
from grpo_dsl.library import PolicySpec

__all__ = ["LEARNER_MAX_TOKENS", "PROPOSALS_PER_CONSOLIDATION", "SHOWN_OUTPUT_CHARS", "LearnerPrompts", "direct_statement"]

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


_PROMPT_WORDS = (
    r"(?:that|which|the|a|an|attempt|attempts|answer|answers|[AB]|better|worse|best|worst|first|second|"
    r"follows?|breaks?|obeys?|violates?|ignores?|misses?|and|but|does|did|not|one|general)"
)
_PREAMBLES = (
    # "A rule that B breaks is that ...", "The rule A follows and B breaks is: ...", "The rule is ..."
    re.compile(rf"^(?:the|a|one)\s+(?:general\s+)?rule(?:\s+{_PROMPT_WORDS})*\s+is\b\s*(?:that\b)?\s*[:,]?\s*", re.I),
    # "Attempt A follows the rule that ...", "B breaks the rule: ..."
    re.compile(rf"^(?:{_PROMPT_WORDS}\s+)*(?:follows?|obeys?|applies|breaks?|violates?|ignores?)\s+(?:the\s+)?rule\s*(?:that\b|of\b)?\s*[:,]?\s*", re.I),
    # "Rule: ...", "Lesson - ..."
    re.compile(r"^\W*(?:rule|lesson|experience|insight)\W*\s*[:\-\u2013\u2014]\s*", re.I),
)
_REFERS_TO_THE_PROMPT = re.compile(
    r"\b(?:attempts?|answers?)\s+[AB]\b|\b[AB]\s+(?:follows?|breaks?|obeys?|violates?)\b|"
    r"\bthe\s+(?:better|worse|best|worst|first|second|other)\s+(?:attempt|answer)s?\b",
    re.I,
)


def direct_statement(text: str) -> str | None:
    """`text` as a rule that stands on its own, or None when it only describes the attempts.

    The learner often keeps the wording of the question it was asked ("A rule that B
    breaks is that the date must be ..."); that preamble is removed and the rest
    starts with a capital ("The date must be ..."). A text that still refers to the
    attempts of the prompt ("Attempt A wrote ...", "the better attempt ...") is not a
    general rule: None.

    >>> direct_statement("A rule that B breaks is that the date must be in the format YYYY-MM-DD.")
    'The date must be in the format YYYY-MM-DD.'
    >>> direct_statement("Attempt A wrote the date with dashes.") is None
    True
    """
    statement = " ".join(text.split()).strip("\"'\u201c\u201d ")
    changed = True
    while changed and statement:
        changed = False
        for preamble in _PREAMBLES:
            shorter = preamble.sub("", statement, count=1).strip("\"'\u201c\u201d ")
            if shorter != statement:
                statement, changed = shorter, True
    if not statement or _REFERS_TO_THE_PROMPT.search(statement) or not any(c.isalpha() for c in statement):
        return None
    return statement[0].upper() + statement[1:]
