"""Sampling a task with a given library on a set of questions, for evaluation and the gate.

Every library compared on the same questions gets the same per-sample seeds, so
results are paired; requests go through the run's client stack (cached, budgeted).
A sample whose calls or reward failed has no reward (None): it is counted as a
failure, never as a score of 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grpo_dsl.clients.protocol import derive_seed
from grpo_dsl.evaluation.stats import paired_difference
from grpo_dsl.library import Library
from grpo_dsl.plan.views import TaskView
from grpo_dsl.prompts.messages import PromptTemplates, render_messages
from grpo_dsl.rewards.scorer import RewardScorer
from grpo_dsl.rollout.answer import Call, rollout
from grpo_dsl.rollout.tools import ToolBox
from grpo_dsl.rollout.questions import Question

__all__ = ["QuestionResult", "sample_library", "gate_decision"]


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """The samples of one question under one library; `rewards[i]` is None when sample i failed."""

    question: str
    rewards: tuple[float | None, ...]
    tokens: tuple[int, ...]
    tool_calls: tuple[int, ...]
    errors: tuple[str | None, ...]
    outputs: tuple[str, ...]

    @property
    def scored(self) -> list[float]:
        """The rewards of the samples that did not fail."""
        return [r for r in self.rewards if r is not None]

    @property
    def mean(self) -> float | None:
        """The mean reward of the samples that did not fail (None when all failed)."""
        scored = self.scored
        return sum(scored) / len(scored) if scored else None

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "rewards": list(self.rewards),
            "tokens": list(self.tokens),
            "tool_calls": list(self.tool_calls),
            "errors": list(self.errors),
            "outputs": list(self.outputs),
        }


async def sample_library(
    call: Call,
    scorer: RewardScorer,
    *,
    task: TaskView,
    tools: ToolBox,
    templates: PromptTemplates,
    reward: str,
    questions: Sequence[Question],
    library: Library,
    samples: int,
    seed: int,
    temperature: float,
    stage: str,
    on_result: Callable[[QuestionResult], None] | None = None,
) -> list[QuestionResult]:
    """Sample every question `samples` times with `library` in the prompt and score each sample;
    `on_result` is told of each question as soon as its samples are scored (the progress).

    The cache key of a sample depends on the question, the sample index and the
    rendered messages, never on the library's name: the same prompt is never paid
    for twice.
    """

    async def one(question: Question) -> QuestionResult:
        messages = render_messages(templates, question.fields, library.prompt_entries(), library.demo_entries())
        rollouts = await asyncio.gather(
            *(
                rollout(
                    call,
                    task,
                    messages,
                    tools=tools,
                    index=i,
                    temperature=temperature,
                    seed=derive_seed(seed, f"{stage}:{question.id}", i),
                    key=f"{stage}/{question.id}/{i}",
                    stage=stage,
                )
                for i in range(samples)
            )
        )
        scores = await asyncio.gather(
            *(scorer.score(reward, r.output, question.fields, tokens=r.tokens, tool_calls=r.tool_calls) for r in rollouts)
        )
        errors = tuple(r.error or s.error for r, s in zip(rollouts, scores))
        result = QuestionResult(
            question=question.id,
            rewards=tuple(None if error else s.value for error, s in zip(errors, scores)),
            tokens=tuple(r.tokens for r in rollouts),
            tool_calls=tuple(r.tool_calls for r in rollouts),
            errors=errors,
            outputs=tuple(r.output for r in rollouts),
        )
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(q) for q in questions)))


def gate_decision(old: Sequence[QuestionResult], new: Sequence[QuestionResult], seed: int) -> tuple[bool, dict[str, Any]]:
    """Accept the new library unless it is worse than the old beyond noise.

    "Worse beyond noise" means the 95 % paired interval of (new − old), over
    per-question mean rewards, lies entirely below zero (`paired_difference`). A
    question where either library has no scored sample is left out; with none left,
    the new library is accepted (nothing shows it is worse).
    """
    pairs = [(n.mean, o.mean) for n, o in zip(new, old) if n.mean is not None and o.mean is not None]
    if not pairs:
        return True, {"old_mean": None, "new_mean": None, "questions": 0}
    result = paired_difference([n for n, _ in pairs], [o for _, o in pairs], seed=seed)
    summary = {
        "old_mean": sum(o for _, o in pairs) / len(pairs),
        "new_mean": sum(n for n, _ in pairs) / len(pairs),
        "questions": len(pairs),
        "difference": result.difference,
        "low": result.low,
        "high": result.high,
        "p_value": result.p_value,
    }
    return result.high >= 0, summary
