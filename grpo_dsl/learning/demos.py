"""Choosing demonstrations by group comparison (docs/learning.md, "Demonstrations").

A group's best rollout, when it beat the group's mean, is the model's own worked
example of what the reward wants: a candidate demo. With ground truth and
`demo_source = reference` or `both`, a question whose group had no success offers
its reference answer instead. A question that is also a validation or evaluation
question (the same prompt fields, whatever its id) never becomes a demo. The
policy's `demos` slots are filled preferring examples of a shape the library does
not show yet: the shape of the question and of the answer (`October 6, 2015` and
`4 February 1993` are two forms of question; a second example of a form already
shown teaches less than one of another form). When the slots are full, a new shape
replaces the oldest demo whose shape is shown twice. The result is a list of demo
operations for the update rule, so the gate, the report, resume and replay treat
demos exactly as lessons.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from grpo_dsl.library import Example, Library, Operation, OperationSource

__all__ = ["Candidate", "GroupResult", "candidates", "demo_operations", "prompt_key"]


def prompt_key(fields: Mapping[str, Any], variables: Collection[str]) -> str:
    """What a prompt shows of a question (its template variables), as canonical text."""
    shown = {name: fields[name] for name in sorted(variables) if name in fields}
    return json.dumps(shown, sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class GroupResult:
    """What demo selection needs of one group: its question and its scored answers
    (`None` for a rollout that failed, as output or as reward)."""

    group: str
    question: str
    fields: Mapping[str, Any]
    outputs: Sequence[str | None]
    rewards: Sequence[float | None]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A possible demo, the group it came from and why it qualifies."""

    example: Example
    group: str
    rationale: str


def candidates(
    groups: Sequence[GroupResult],
    *,
    variables: Collection[str],
    source: str,
    ground_truth: bool,
    held_out: Collection[str],
) -> list[Candidate]:
    """The candidate demos of a step's groups, best first.

    `variables` are the fields the task's templates read (a demo keeps only those);
    `source` is the learn's `demo_source`; `held_out` holds the `prompt_key` of every
    validation and evaluation question, which never become demos. Reference answers are offered only
    with `ground_truth` (the checker enforces it; this is the second lock).
    """
    found: list[tuple[int, float, int, Candidate]] = []
    for position, group in enumerate(groups):
        scored = [
            (reward, index)
            for index, (reward, output) in enumerate(zip(group.rewards, group.outputs))
            if output and reward is not None
        ]
        if not scored or prompt_key(group.fields, variables) in held_out:
            continue
        shown = {name: group.fields[name] for name in variables if name in group.fields}
        best = max(scored, key=lambda pair: (pair[0], -pair[1]))
        mean = fmean(reward for reward, _ in scored)
        if source in ("rollouts", "both") and best[0] > mean:
            reward, index = best
            example = Example(group.question, shown, str(group.outputs[index]).strip(), reward, "rollout")
            rationale = f"rollout {index} of group {group.group}: reward {reward:g} against a group mean of {mean:.2f}"
            found.append((0, -reward, position, Candidate(example, group.group, rationale)))
        elif source in ("reference", "both") and ground_truth and best[0] <= 0:
            answer = group.fields.get("answer")
            if answer is not None and str(answer).strip():
                example = Example(group.question, shown, str(answer).strip(), 1.0, "reference")
                rationale = f"reference answer of group {group.group}, where no rollout succeeded"
                found.append((1, -1.0, position, Candidate(example, group.group, rationale)))
    # the model's own winners before reference answers, higher rewards first, then group order
    return [candidate for *_, candidate in sorted(found, key=lambda item: item[:3])]


def demo_operations(library: Library, found: Sequence[Candidate], slots: int, step: int) -> list[Operation]:
    """The demo operations that fill `slots` demos from `found`, preferring new shapes."""
    if slots <= 0:
        return []
    shapes: Counter[tuple[str, str]] = Counter(d.example.shape() for d in library.demos)
    asked = {d.example.question for d in library.demos}
    fresh: list[Candidate] = []
    for candidate in found:
        if candidate.example.question not in asked:
            asked.add(candidate.example.question)
            fresh.append(candidate)
    new_shape = [c for c in fresh if c.example.shape() not in shapes]
    ordered = _distinct_shapes(new_shape) + [c for c in fresh if c not in _distinct_shapes(new_shape)]
    operations: list[Operation] = []
    free = slots - len(library.demos)
    for candidate in ordered[: max(free, 0)]:
        operations.append(_operation(candidate, step))
        shapes[candidate.example.shape()] += 1
    if free > 0:
        return operations
    repeated = [d for d in library.demos if shapes[d.example.shape()] > 1]
    for demo, candidate in zip(repeated, _distinct_shapes(new_shape)):
        shapes[demo.example.shape()] -= 1
        operations.append(_operation(candidate, step, replaces=demo.id))
    return operations


def _distinct_shapes(found: Sequence[Candidate]) -> list[Candidate]:
    """The first candidate of each shape, in order."""
    seen: set[tuple[str, str]] = set()
    chosen = []
    for candidate in found:
        shape = candidate.example.shape()
        if shape not in seen:
            seen.add(shape)
            chosen.append(candidate)
    return chosen


def _operation(candidate: Candidate, step: int, replaces: str | None = None) -> Operation:
    source = OperationSource(step=step, groups=(candidate.group,))
    if replaces is None:
        return Operation.add_demo(candidate.example, rationale=candidate.rationale, source=source)
    rationale = f"{candidate.rationale}; a shape of question or answer the demos do not show yet"
    return Operation.replace_demo(replaces, candidate.example, rationale=rationale, source=source)
