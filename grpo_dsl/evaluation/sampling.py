"""Sampling a task with a given library on a set of questions, for evaluation and the gate.

Every library compared on the same questions gets the same per-sample seeds, so
results are paired; requests go through the run's client stack (cached, budgeted).
A sample whose calls or reward failed has no reward (None): it is counted as a
failure, never as a score of 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grpo_dsl.clients.protocol import derive_seed
from grpo_dsl.core.tasks import gather_tasks
from grpo_dsl.evaluation.stats import paired_difference
from grpo_dsl.library import Library
from grpo_dsl.plan import Plan
from grpo_dsl.plan.views import EvaluateView, LearnView, TaskView
from grpo_dsl.prompts.messages import PromptTemplates, compose_templates, render_messages
from grpo_dsl.rewards.scorer import RewardScorer
from grpo_dsl.rollout.answer import Call, rollout
from grpo_dsl.rollout.questions import Question, load_questions
from grpo_dsl.rollout.tools import Tools, ToolBox
from grpo_dsl.runs.failures import Failures

__all__ = ["QuestionResult", "Sampling", "gate_decision", "sample_library"]


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
    split: str,
    keys: str | None = None,
    on_result: Callable[[QuestionResult], None] | None = None,
) -> list[QuestionResult]:
    """Sample every question `samples` times with `library` in the prompt and score each sample;
    `on_result` is told of each question as soon as its samples are scored (the progress).

    `split` names the dataset of `questions`, for the cache namespace.

    The cache key of a sample depends on the question, the sample index and the
    rendered messages, never on the library's name: the same prompt is never paid
    for twice. Seeds and sample keys are derived from `keys` (default: the `stage`),
    so a stage that passes another stage's `keys` asks exactly what that stage asks
    (an ablation samples the full library as the evaluation does), while its calls
    are counted under its own `stage`.
    """
    prefix = keys or stage

    async def one(question: Question) -> QuestionResult:
        messages = render_messages(templates, question.fields, library.prompt_entries(), library.demo_entries())
        rollouts = await gather_tasks(
            *(
                rollout(
                    call,
                    task,
                    messages,
                    tools=tools,
                    index=i,
                    temperature=temperature,
                    seed=derive_seed(seed, f"{prefix}:{question.id}", i),
                    key=f"{prefix}/{question.id}/{i}",
                    stage=stage,
                    split=split,
                )
                for i in range(samples)
            )
        )
        scores = await gather_tasks(
            *(
                scorer.score(reward, r.output, question.fields, tokens=r.tokens, tool_calls=r.tool_calls, split=split)
                for r in rollouts
            )
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

    return list(await gather_tasks(*(one(q) for q in questions)))


@dataclass(frozen=True, slots=True)
class Sampling:
    """How a block samples any library: the task with its templates, the reward, the
    questions and the dataset they come from (`split`, for the cache namespace), the
    samples per question, the seed and the temperature, and the task's tools once a run
    has opened them (`with_tools`; none before)."""

    task: TaskView
    templates: PromptTemplates
    reward: str
    questions: tuple[Question, ...]
    split: str
    samples: int
    seed: int
    temperature: float
    tools: ToolBox = field(default_factory=ToolBox)

    @classmethod
    def of_evaluate(cls, plan: Plan, evaluate: EvaluateView, reward: str, base_dir: Path) -> Sampling:
        """As an `evaluate` block samples: its data, `samples`, seed and the task's temperature.

        Raises `SandboxUnavailable` when the task's python tool cannot run here.
        """
        task = plan.task(evaluate.task)
        Tools.of(task, base_dir)  # refuses a python tool this machine cannot isolate, before anything is spent
        questions = load_questions(plan.dataset(evaluate.data), base_dir, evaluate.seed)
        return cls(
            task, _templates(task), reward, tuple(questions), evaluate.data, evaluate.samples, evaluate.seed, task.temperature
        )

    @classmethod
    def of_validation(cls, plan: Plan, learn: LearnView, base_dir: Path) -> Sampling:
        """As a learn's gate samples: its `validate` set, G answers, the learn's seed and temperature.

        Raises `SandboxUnavailable` when the task's python tool cannot run here.
        """
        assert learn.validate is not None, "the learn has no `validate` set"
        task = plan.task(learn.task)
        Tools.of(task, base_dir)  # refuses a python tool this machine cannot isolate, before anything is spent
        questions = load_questions(plan.dataset(learn.validate), base_dir, learn.seed)
        return cls(
            task,
            _templates(task),
            learn.reward,
            tuple(questions),
            learn.validate,
            learn.group_size,
            learn.seed,
            learn.temperature,
        )

    def with_tools(self, tools: ToolBox) -> Sampling:
        """This sampling, offering the task's tools as a run opened them (`open_tools`)."""
        return replace(self, tools=tools)

    async def sample(
        self,
        call: Call,
        scorer: RewardScorer,
        library: Library,
        *,
        stage: str,
        keys: str | None = None,
        failures: tuple[Failures, str] | None = None,
        on_result: Callable[[QuestionResult], None] | None = None,
    ) -> list[QuestionResult]:
        """`sample_library` of `library` with these settings (`on_result` as there).

        With `failures` = (tally, kind), every sample is counted as an attempt of
        `kind`, failed with its error when it has no reward.
        """
        results = await sample_library(
            call,
            scorer,
            task=self.task,
            tools=self.tools,
            templates=self.templates,
            reward=self.reward,
            questions=self.questions,
            library=library,
            samples=self.samples,
            seed=self.seed,
            temperature=self.temperature,
            stage=stage,
            split=self.split,
            keys=keys,
            on_result=on_result,
        )
        if failures is not None:
            tally, kind = failures
            for error in (e for q in results for e in q.errors):
                tally.attempt(kind, error)
        return results


def _templates(task: TaskView) -> PromptTemplates:
    return compose_templates(task.system, task.prompt, task.experiences, task.demos_placement)


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
