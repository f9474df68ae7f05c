"""What a plan will cost before it runs: LLM calls, tokens and USD, stage by stage.

A `learn` makes, per step of B questions, G·B rollouts, at most G·k summaries and k
advantage calls for the k groups kept (groups whose rewards are all equal are
skipped, so these are upper bounds), and ⌈proposals / PROPOSALS_PER_CONSOLIDATION⌉
consolidation calls; with `validate`, the gate samples the old and the new library
on the held-out set. An `evaluate` samples every question `samples` times per
compared library. Tokens are estimated as characters / 4 of the prompts rendered
from each row; completions count the declared `max_tokens` (an upper bound).

Beside these bounds, every stage has its **expected** cost (`expected_learn_steps`,
`expected_evaluate`): the real templates rendered with the data and a library of
the expected size, answers as long as the task's `answer_tokens` or the reference
answers, the share of groups expected to be kept. `reestimate` scales it, once some
steps have run, by what they really cost (docs/plan.md "The expected cost").

>>> schedule({"batch_size": 8, "epochs": 3}, 20)
{'rows': 20, 'steps_per_epoch': 3, 'steps': 9, 'last_batch': 4}
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from jinja2 import Template

from grpo_dsl.core.resources import resource_path
from grpo_dsl.core.templating import sandbox
from grpo_dsl.language.attributes import defaults
from grpo_dsl.library import OPERATIONS_SCHEMA, PolicySpec
from grpo_dsl.prompts.learner import (
    LEARNER_MAX_TOKENS,
    PROPOSALS_PER_CONSOLIDATION,
    SHOWN_OUTPUT_CHARS,
    LearnerPrompts,
)
from grpo_dsl.prompts.messages import (
    EXPERIENCES_BLOCK,
    PromptTemplates,
    TemplateRenderError,
    compose_templates,
    render_messages,
)

if TYPE_CHECKING:
    from grpo_dsl.plan.document import Plan

__all__ = [
    "CHARS_PER_TOKEN",
    "DataRows",
    "Growth",
    "answer_tokens",
    "estimate_ablation",
    "estimate_evaluate",
    "estimate_learn",
    "expected_ablation",
    "expected_evaluate",
    "expected_learn_steps",
    "expected_rank",
    "expected_run",
    "reestimate",
    "schedule",
]

CHARS_PER_TOKEN = 4
"""Characters per token, for every token count of the estimate."""

JUDGE_REPLY_TOKENS = 100
"""The assumed length of a judge's reply (a score and one sentence)."""

_CHARS_PER_WORD = 6
_ENTRY_OVERHEAD_CHARS = 8
_PROPOSAL_OVERHEAD_CHARS = 200
_ATTEMPT_OVERHEAD_CHARS = 40

LESSON_SHARE = 2 / 3
"""The share of `max_words` an experience is expected to use."""

SUMMARY_TOKENS = 80
"""The expected length of a rollout summary (asked for in at most four sentences)."""

JUDGE_TOKENS = 40
"""The expected length of a judge's reply: a score and one short sentence."""

OPERATION_TOKENS = 25
"""The expected tokens of an operation besides its text: the JSON keys, an id, a short rationale."""

TOOL_TURNS = 2
"""The expected turns of a tool-using answer: one tool call, then the answer."""


@dataclass(frozen=True, slots=True)
class DataRows:
    """The rows of a dataset as the run uses them: `count` after `limit`, and the
    rows whose field lengths stand for them (all rows of a shuffled dataset, whose
    subset depends on the seed)."""

    count: int
    fields: tuple[Mapping[str, Any], ...]

    def total(self, per_row: Iterable[int]) -> int:
        """A per-row quantity summed over the `count` rows used."""
        values = list(per_row)
        return round(sum(values) * self.count / len(values)) if values else 0


def schedule(learn: Mapping[str, Any], rows: int) -> dict[str, int]:
    """Steps of a learn over `rows` questions: ⌈rows / batch_size⌉ per epoch."""
    batch = int(learn["batch_size"])
    per_epoch = math.ceil(rows / batch)
    return {
        "rows": rows,
        "steps_per_epoch": per_epoch,
        "steps": per_epoch * int(learn["epochs"]),
        "last_batch": rows - (per_epoch - 1) * batch if rows else 0,
    }


def _tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


@functools.cache
def _learner_template_chars(name: str) -> int:
    return len(resource_path(f"prompts/templates/{name}.j2").read_text(encoding="utf-8"))


def _library_chars(policy: Mapping[str, Any]) -> int:
    entry = int(policy["max_words"]) * _CHARS_PER_WORD + _ENTRY_OVERHEAD_CHARS
    return len(EXPERIENCES_BLOCK) + int(policy["capacity"]) * entry


def _shown_chars(policy: Mapping[str, Any], task: Mapping[str, Any], prompts: _Prompts, data: DataRows) -> int:
    """The characters a full library adds to a task's prompt: its lessons (unless the task
    shows none) and `demos` demos, each the longest question's prompt and an answer of
    `max_tokens`."""
    lessons = _library_chars(policy) if task["experiences"] != "none" else 0
    demo = max((prompts.question(row) for row in data.fields), default=0) + int(task["max_tokens"]) * CHARS_PER_TOKEN
    return lessons + int(policy.get("demos", 0)) * demo


def _text_chars(value: Any) -> int:
    return len(str(value)) if value is not None else 0


class _Prompts:
    """The characters of a task's prompts, rendered with one row."""

    def __init__(self, task: Mapping[str, Any]):
        env = sandbox()
        self.sources = {"system": task["system"], "user": task["prompt"]}
        self.templates: dict[str, Template | None] = {}
        for turn, source in self.sources.items():
            try:
                self.templates[turn] = env.from_string(source) if source is not None else None
            except Exception:
                self.templates[turn] = None

    def chars(self, turn: str, row: Mapping[str, Any]) -> int:
        source, template = self.sources[turn], self.templates[turn]
        if source is None:
            return 0
        if template is None:
            return len(source)
        try:
            return len(template.render({**row, "experiences": []}))
        except Exception:
            return len(source)

    def question(self, row: Mapping[str, Any]) -> int:
        return self.chars("user", row)

    def messages(self, row: Mapping[str, Any]) -> int:
        return self.chars("system", row) + self.chars("user", row)


@dataclass(frozen=True, slots=True)
class _Stage:
    stage: str
    model: str
    calls: int
    max_calls: int
    per_step: int | None
    prompt_tokens: int
    completion_tokens: int
    upper_bound: bool
    formula: str

    def to_json(self, models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        price = models[self.model]["price"]
        usd = (self.prompt_tokens * float(price["input"]) + self.completion_tokens * float(price["output"])) / 1e6
        return {
            "stage": self.stage,
            "model": self.model,
            "calls": self.calls,
            "max_calls": self.max_calls,
            "per_step": self.per_step,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "usd": round(usd, 6),
            "upper_bound": self.upper_bound,
            "formula": self.formula,
        }


def _summed(
    stages: Sequence[dict[str, Any]], assumptions: list[str], models: Mapping[str, Mapping[str, Any]], expected: Sequence[Step]
) -> dict[str, Any]:
    """The stages with their expected cost beside the bounds (unless a stage has its own), and the totals of both."""
    for stage in stages:
        if "expected" not in stage:
            stage["expected"] = _expected_by_stage(models, expected, stage["stage"], stage["model"])
    return {
        "stages": list(stages),
        "total": {
            "calls": sum(s["calls"] for s in stages),
            "max_calls": sum(s["max_calls"] for s in stages),
            "prompt_tokens": sum(s["prompt_tokens"] for s in stages),
            "completion_tokens": sum(s["completion_tokens"] for s in stages),
            "usd": round(sum(s["usd"] for s in stages), 6),
            "upper_bound": any(s["upper_bound"] for s in stages),
            "expected": {
                key: round(sum(s["expected"][key] for s in stages), 6 if key == "usd" else None)
                for key in ("calls", "prompt_tokens", "completion_tokens", "usd")
            },
        },
        "assumptions": [*assumptions, *_EXPECTED_ASSUMPTIONS],
    }


_EXPECTED_ASSUMPTIONS = [
    "expected: an answer is the task's answer_tokens long, or as long as the reference answers the reward reads "
    "(a quarter of max_tokens when it reads none); a tool-using answer takes two turns",
    f"expected: the library grows by max_per_group experiences a step, each of {LESSON_SHARE:.0%} of max_words; "
    "with ground truth 1 - 2/2^G of the groups are kept (rewards of answers right half the time differ), each proposing "
    f"one operation; a summary is {SUMMARY_TOKENS} tokens, a judge's reply {JUDGE_TOKENS}; "
    "the gate pays for the old library's samples only at step 1 (later they come from the cache)",
    "expected: after step 1, `grpo run` re-estimates the whole run from what that step cost and how the library grew",
]


def _judges(rewards: Mapping[str, Mapping[str, Any]], name: str | None) -> list[str]:
    """The judge rewards that scoring with `name` may call, directly or through other rewards."""
    found: dict[str, None] = {}
    pending, seen = [name] if name is not None else [], set()
    while pending:
        current = pending.pop()
        if current in seen or current not in rewards:
            continue
        seen.add(current)
        reward = rewards[current]
        if reward["kind"] == "judge":
            found[current] = None
        elif reward["kind"] == "expression":
            pending.extend(reversed(reward["reads"]))
    return sorted(found)


def _judge_stages(
    plan: Mapping[str, Any], reward: str | None, scored: Sequence[tuple[DataRows, int]], max_tokens: int, what: str
) -> list[_Stage]:
    """One stage per judge reward: a call for every answer scored, `scored` being
    (rows, answers per row) pairs."""
    stages = []
    output_chars = max_tokens * CHARS_PER_TOKEN
    for name in _judges(plan["rewards"], reward):
        judge = plan["rewards"][name]
        fixed = _learner_template_chars("judge") + len(judge["rubric"]) + output_chars
        calls = sum(rows.count * answers for rows, answers in scored)
        prompt = sum(
            answers * rows.total(_tokens(fixed + sum(len(k) + _text_chars(v) + 4 for k, v in row.items())) for row in rows.fields)
            for rows, answers in scored
        )
        formula = f"one call per scored answer ({what}) for the judge reward `{name}`"
        stages.append(_Stage("judge", judge["model"], calls, calls, None, prompt, calls * JUDGE_REPLY_TOKENS, True, formula))
    return stages


def _turns(task: Mapping[str, Any]) -> int:
    return int(task["max_turns"]) if task["tools"] else 1


def _consolidation_calls(batches: Sequence[int], max_per_group: int, proposal_chars: int, fixed: int) -> tuple[int, int, int]:
    """(calls per epoch, the most in one step, prompt tokens per epoch) of consolidation."""
    calls = per_step = prompt = 0
    for batch in batches:
        proposals = batch * max_per_group
        chunks = math.ceil(proposals / PROPOSALS_PER_CONSOLIDATION)
        calls += chunks
        per_step = max(per_step, chunks)
        for chunk in range(chunks):
            size = min(PROPOSALS_PER_CONSOLIDATION, proposals - chunk * PROPOSALS_PER_CONSOLIDATION)
            prompt += _tokens(fixed + size * proposal_chars)
    return calls, per_step, prompt


def estimate_learn(plan: Mapping[str, Any], learn: Mapping[str, Any], rows: Mapping[str, DataRows]) -> dict[str, Any]:
    """The calls, tokens and USD of one `learn` of `plan`, stage by stage, in step order."""
    task = plan["tasks"][learn["task"]]
    data = rows[learn["data"]]
    policy = learn["policy"]
    group, epochs, batch = int(learn["group_size"]), int(learn["epochs"]), int(learn["batch_size"])
    steps = schedule(learn, data.count)
    batches = [min(batch, data.count - start) for start in range(0, data.count, batch)]
    full_batch = batches[0] if batches else 0
    prompts = _Prompts(task)
    library = _library_chars(policy)
    in_prompt = _shown_chars(policy, task, prompts, data)
    turns = _turns(task)
    model, learner = task["model"], learn["learner"]
    max_tokens = int(task["max_tokens"])
    shown_output = min(max_tokens * CHARS_PER_TOKEN, SHOWN_OUTPUT_CHARS)

    def reference(row: Mapping[str, Any]) -> int:
        return _text_chars(row.get("answer")) if learn["ground_truth"] else 0

    answers = epochs * data.count * group
    stages = [
        _Stage(
            "rollout",
            model,
            answers,
            answers * turns,
            group * full_batch,
            epochs * group * data.total(_tokens(prompts.messages(row) + in_prompt) for row in data.fields),
            answers * max_tokens,
            False,
            f"G x B per step: {group} answers x {data.count} questions x {epochs} epochs",
        )
    ]
    validation = rows[learn["validate"]] if learn["validate"] is not None else None
    gate_answers = 2 * group * steps["steps"]
    scored = [(data, epochs * group)] + ([(validation, gate_answers)] if validation is not None else [])
    summary = LEARNER_MAX_TOKENS["summary"]
    if learn["summarize"]:
        fixed = _learner_template_chars("summary") + shown_output + library
        stages.append(
            _Stage(
                "summary",
                learner,
                answers,
                answers,
                group * full_batch,
                epochs * group * data.total(_tokens(fixed + prompts.question(row) + reference(row)) for row in data.fields),
                answers * summary,
                True,
                f"<= G per kept group: {group} x {data.count} questions x {epochs} epochs",
            )
        )
    attempt = (summary * CHARS_PER_TOKEN if learn["summarize"] else shown_output) + _ATTEMPT_OVERHEAD_CHARS
    fixed = _learner_template_chars("advantage") + group * attempt + library
    groups = epochs * data.count
    if not learn["summarize"]:
        contrast = _learner_template_chars("contrast") + 2 * attempt
        stages.append(
            _Stage(
                "contrast",
                learner,
                groups,
                groups,
                full_batch,
                epochs * data.total(_tokens(contrast + prompts.question(row) + reference(row)) for row in data.fields),
                groups * LEARNER_MAX_TOKENS["contrast"],
                True,
                f"<= 1 per kept group (summarize = false): {data.count} questions x {epochs} epochs",
            )
        )
    stages.append(
        _Stage(
            "advantage",
            learner,
            groups,
            groups,
            full_batch,
            epochs * data.total(_tokens(fixed + prompts.question(row) + reference(row)) for row in data.fields),
            groups * LEARNER_MAX_TOKENS["advantage"],
            True,
            f"<= 1 per kept group: {data.count} questions x {epochs} epochs",
        )
    )
    per_group = int(policy["max_per_group"])
    proposal_chars = int(policy["max_words"]) * _CHARS_PER_WORD + _PROPOSAL_OVERHEAD_CHARS
    calls, per_step, prompt = _consolidation_calls(batches, per_group, proposal_chars, _learner_template_chars("consolidate") + library)
    stages.append(
        _Stage(
            "consolidate",
            learner,
            epochs * calls,
            epochs * calls,
            per_step,
            epochs * prompt,
            epochs * calls * LEARNER_MAX_TOKENS["consolidate"],
            True,
            f"ceil({full_batch} groups x {per_group} proposals / {PROPOSALS_PER_CONSOLIDATION}) per step x {steps['steps']} steps",
        )
    )
    if validation is not None:
        gate = gate_answers * validation.count
        stages.append(
            _Stage(
                "validate",
                model,
                gate,
                gate * turns,
                2 * group * validation.count,
                gate_answers * validation.total(_tokens(prompts.messages(row) + in_prompt) for row in validation.fields),
                gate * max_tokens,
                True,
                f"2 libraries x {group} answers x {validation.count} questions x {steps['steps']} steps",
            )
        )
        validated = validation.total(_tokens(prompts.messages(row) + in_prompt) for row in validation.fields)
        if learn["prune"] == "hurting":
            items = _items(policy)
            pruned = items * group * steps["steps"]
            scored.append((validation, pruned))
            stages.append(
                _Stage(
                    "prune",
                    model,
                    pruned * validation.count,
                    pruned * validation.count * turns,
                    items * group * validation.count,
                    pruned * validated,
                    pruned * validation.count * max_tokens,
                    True,
                    f"the library without each of its {items} items x {group} answers x {validation.count} questions"
                    f" x {steps['steps']} steps",
                )
            )
    repeats = int(learn["repeats"])
    if repeats > 1:
        stages = [_repeated(stage, repeats) for stage in stages]
        scored = [(rows_, answers * repeats) for rows_, answers in scored]
        if validation is not None:
            scored.append((validation, repeats * group))
            ranked = repeats * group * validation.count
            stages.append(
                _Stage(
                    "rank",
                    model,
                    ranked,
                    ranked * turns,
                    None,
                    repeats * group * validated,
                    ranked * max_tokens,
                    False,
                    f"each repeat's library: {repeats} repeats x {group} answers x {validation.count} questions",
                )
            )
    stages[1:1] = _judge_stages(plan, learn["reward"], scored, max_tokens, "rollouts" + (" and validation" if validation else ""))
    assumptions = _assumptions(
        policy=policy,
        turns=turns,
        validate=validation is not None,
        judged=any(s.stage == "judge" for s in stages),
        summarize=bool(learn["summarize"]),
        prune=learn["prune"] == "hurting",
        repeats=repeats,
    )
    expected = expected_learn_steps(plan, learn, rows) * repeats + expected_rank(plan, learn, rows)
    return _summed([stage.to_json(plan["models"]) for stage in stages], assumptions, plan["models"], expected)


def _items(policy: Mapping[str, Any]) -> int:
    """The most items (lessons and demos) a library under `policy` holds."""
    return int(policy["capacity"]) + int(policy.get("demos", 0))


def _repeated(stage: _Stage, repeats: int) -> _Stage:
    """A stage of one learn, made `repeats` times."""
    return replace(
        stage,
        calls=stage.calls * repeats,
        max_calls=stage.max_calls * repeats,
        prompt_tokens=stage.prompt_tokens * repeats,
        completion_tokens=stage.completion_tokens * repeats,
        formula=f"({stage.formula}) x {repeats} repeats",
    )


def _sampled(
    plan: Mapping[str, Any], evaluate: Mapping[str, Any], rows: Mapping[str, DataRows]
) -> tuple[Mapping[str, Any], DataRows, int, _Prompts, int, int]:
    """What an `evaluate` block samples: its task, data and samples per question, and the
    task's prompts, turns per answer and completion tokens."""
    task = plan["tasks"][evaluate["task"]]
    return task, rows[evaluate["data"]], int(evaluate["samples"]), _Prompts(task), _turns(task), int(task["max_tokens"])


def estimate_evaluate(plan: Mapping[str, Any], evaluate: Mapping[str, Any], rows: Mapping[str, DataRows]) -> dict[str, Any]:
    """The calls, tokens and USD of one `evaluate` of `plan`."""
    task, data, samples, prompts, turns, max_tokens = _sampled(plan, evaluate, rows)
    # a learn with `repeats` is evaluated once per repeat
    compared = [library for library in evaluate["compare"] for _ in range(plan["learns"].get(library, {}).get("repeats", 1))]
    prompt = 0
    for library in compared:
        policy = plan["learns"][library]["policy"] if library in plan["learns"] else defaults("policy")
        learned = rows[plan["learns"][library]["data"]] if library in plan["learns"] else data
        shown = _shown_chars(policy, task, prompts, learned) if library != "none" else 0
        prompt += samples * data.total(_tokens(prompts.messages(row) + shown) for row in data.fields)
    answers = data.count * samples * len(compared)
    stages = [
        _Stage(
            "evaluate",
            task["model"],
            answers,
            answers * turns,
            None,
            prompt,
            answers * max_tokens,
            False,
            f"{data.count} questions x {samples} samples x {len(compared)} libraries",
        )
    ]
    stages += _judge_stages(plan, evaluate["reward"], [(data, samples * len(compared))], max_tokens, "evaluation")
    assumptions = [
        "tokens are characters / 4; prompts are the task's templates rendered with each row",
        "completion tokens are the task's max_tokens, an upper bound",
        "a learned library is counted at its policy's capacity, a module's at the default capacity",
    ]
    if turns > 1:
        assumptions.append(_TOOLS_ASSUMPTION.format(turns=turns))
    if len(stages) > 1:
        assumptions.append(_JUDGE_ASSUMPTION)
    return _summed([stage.to_json(plan["models"]) for stage in stages], assumptions, plan["models"], [expected_evaluate(plan, evaluate, rows)])


def _ablated_subsets(method: str, items: int, budget: int) -> int:
    """Library subsets an ablation of `items` items evaluates: the full library and each
    without one item (leave-one-out), or every subset up to `budget` (Shapley)."""
    if method == "loo":
        return items + 1
    return min(2**items, budget) if items < 64 else budget


def estimate_ablation(plan: Mapping[str, Any], evaluate: Mapping[str, Any], rows: Mapping[str, DataRows]) -> dict[str, Any]:
    """The calls, tokens and USD of `grpo ablate` on each library an `evaluate` compares (but `none`)."""
    task, data, samples, prompts, turns, max_tokens = _sampled(plan, evaluate, rows)
    method = evaluate["ablate"]
    stages = []
    for library in dict.fromkeys(evaluate["compare"]):
        if library == "none":
            continue
        learned = library in plan["learns"]
        policy = plan["learns"][library]["policy"] if learned else defaults("policy")
        shown = _shown_chars(policy, task, prompts, rows[plan["learns"][library]["data"]] if learned else data)
        items = _items(policy)
        subsets = _ablated_subsets(method, items, int(evaluate["subsets"]))
        answers = subsets * data.count * samples
        what = (
            f"libraries (the full one and each without one of {items} items)"
            if method == "loo"
            else f"subsets of {items} items (Shapley)"
        )
        stages.append(
            _Stage(
                "ablate",
                task["model"],
                answers,
                answers * turns,
                None,
                subsets * samples * data.total(_tokens(prompts.messages(row) + shown) for row in data.fields),
                answers * max_tokens,
                True,
                f"{library}: {subsets} {what} x {data.count} questions x {samples} samples",
            )
        )
    subsets_scored = sum(stage.calls for stage in stages) // max(1, data.count)
    stages += _judge_stages(plan, evaluate["reward"], [(data, subsets_scored)], max_tokens, "ablation")
    assumptions = [
        "tokens are characters / 4; prompts are the task's templates rendered with each row",
        "completion tokens are the task's max_tokens, an upper bound",
        "a learned library is counted full (its policy's capacity and demos), a module's at the default capacity;"
        " a smaller library needs fewer subsets",
        "leave-one-out evaluates the full library and the library without each item"
        if method == "loo"
        else f"Shapley evaluates every subset when they are at most subsets = {evaluate['subsets']}, otherwise"
        " sampled permutations of the items until that many distinct subsets",
        "the cache answers a subset already evaluated by an earlier ablation of the same evaluate for free",
    ]
    if turns > 1:
        assumptions.append(_TOOLS_ASSUMPTION.format(turns=turns))
    if any(stage.stage == "judge" for stage in stages):
        assumptions.append(_JUDGE_ASSUMPTION)
    found = [stage.to_json(plan["models"]) for stage in stages]
    per_library = expected_ablation(plan, evaluate, rows)
    # one `ablate` stage per library, first, each with its own expected cost
    for stage, step in zip(found, per_library):
        stage["expected"] = _expected_by_stage(plan["models"], [step], "ablate", stage["model"])
    return _summed(found, assumptions, plan["models"], per_library)


_TOOLS_ASSUMPTION = (
    "a tool-using answer makes one call per turn, up to {turns}: `calls` and the tokens count one turn, `max_calls` every turn"
)
_JUDGE_ASSUMPTION = f"a judge is called for every scored answer (an upper bound) and replies in about {JUDGE_REPLY_TOKENS} tokens"


def _assumptions(
    *, policy: Mapping[str, Any], turns: int, validate: bool, judged: bool, summarize: bool, prune: bool, repeats: int
) -> list[str]:
    notes = [
        "tokens are characters / 4; prompts are the task's templates rendered with each row",
        "completion tokens are the declared max_tokens, an upper bound; learner calls: "
        + ", ".join(f"{stage} {limit}" for stage, limit in LEARNER_MAX_TOKENS.items()),
        f"the library is counted full: {policy['capacity']} experiences of {policy['max_words']} words"
        f" (about {_CHARS_PER_WORD} characters a word)"
        + (f" and {policy['demos']} demos of the longest question and max_tokens" if policy.get("demos") else ""),
        "every group is counted as kept: groups whose rewards are all equal are skipped,"
        " so " + ("summary, " if summarize else "") + "advantage and consolidate calls are upper bounds",
        f"a consolidation call takes up to {PROPOSALS_PER_CONSOLIDATION} proposals and every kept group"
        f" proposes the most it may ({policy['max_per_group']})",
    ]
    if validate:
        notes.append("the gate samples the old and the new library every step; it runs only when the library changed")
    if prune:
        notes.append(
            "pruning samples the library without each of its items every step (the full library is the gate's);"
            " a library that did not change since the last step is answered from the cache"
        )
    if repeats > 1:
        notes.append(
            f"the learn runs {repeats} times with seeds seed .. seed + {repeats - 1}"
            + ("; each repeat's last library is then sampled on the validation set to rank them" if validate else "")
        )
    if turns > 1:
        notes.append(_TOOLS_ASSUMPTION.format(turns=turns))
    if judged:
        notes.append(_JUDGE_ASSUMPTION)
    return notes


# ------------------------------------------------------------------ the expected cost

@dataclass(slots=True)
class Expected:
    """The expected calls and tokens of one stage and model."""

    calls: float = 0.0
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0

    def add(self, calls: float, prompt_chars: float, completion_tokens: float) -> None:
        """Count `calls` calls of `prompt_chars` prompt characters and `completion_tokens` completion tokens each."""
        self.calls += calls
        self.prompt_tokens += calls * prompt_chars / CHARS_PER_TOKEN
        self.completion_tokens += calls * completion_tokens


Step = dict[tuple[str, str], Expected]
"""The expected cost of one step, by (stage, model)."""


def _mean(data: DataRows, per_row: Any) -> float:
    return data.total(per_row(row) for row in data.fields) / data.count if data.count else 0.0


def _reference_fields(plan: Mapping[str, Any], reward: str | None, data: DataRows) -> list[str]:
    """The dataset fields a reward compares answers with, directly or through other rewards."""
    rewards = plan["rewards"]
    columns = {name for row in data.fields for name in row}
    found: dict[str, None] = {}
    pending, seen = [reward] if reward else [], set()
    while pending:
        current = pending.pop()
        if current in seen or current not in rewards:
            continue
        seen.add(current)
        if rewards[current]["kind"] == "expression":
            for name in rewards[current]["reads"]:
                if name in rewards:
                    pending.append(name)
                elif name in columns:
                    found[name] = None
    return list(found)


def answer_tokens(plan: Mapping[str, Any], task: Mapping[str, Any], reward: str | None, data: DataRows) -> float:
    """The expected length of an answer: the task's `answer_tokens`; else the mean length of the
    reference fields the reward reads (an answer about as long as the right one), plus a few
    tokens; else a quarter of `max_tokens`. Never more than `max_tokens`."""
    limit = float(task["max_tokens"])
    if task.get("answer_tokens"):
        return min(limit, float(task["answer_tokens"]))
    fields = _reference_fields(plan, reward, data)
    if not fields or not data.count:
        return limit / 4
    return min(limit, 4 + _mean(data, lambda row: sum(_text_chars(row.get(f)) for f in fields)) / CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class Growth:
    """How a library grew: experiences added per step, and their mean length in characters."""

    per_step: float
    lesson_chars: int


class _Library:
    """The expected size of a learn's library: it grows by `max_per_group` experiences a step
    (one consolidated batch), up to its capacity, each of `LESSON_SHARE` of `max_words`;
    or as `growth` says, when the run has shown it. Its `demos` are expected to fill with the
    first change of the library (a step's winners offer more candidates than slots)."""

    def __init__(self, policy: Mapping[str, Any], growth: Growth | None = None):
        self.demos = int(policy.get("demos", 0))
        self.capacity = int(policy["capacity"])
        self.growth = growth.per_step if growth is not None else float(policy["max_per_group"])
        self.lesson_chars = growth.lesson_chars if growth is not None else round(int(policy["max_words"]) * LESSON_SHARE * _CHARS_PER_WORD)

    def size(self, steps_done: int) -> int:
        return min(self.capacity, round(steps_done * self.growth))

    def entries(self, size: int) -> list[dict[str, str]]:
        """`size` stand-in experiences of the expected length."""
        return [{"id": f"E{i + 1}", "text": "x" * self.lesson_chars} for i in range(size)]

    def demo_entries(self, size: int, row: Mapping[str, Any], answer_chars: int) -> list[dict[str, Any]]:
        """Stand-in demos of a library of `size` experiences: the row's fields and an answer of `answer_chars`."""
        count = self.demos if size > 0 else 0
        return [{"id": f"D{i + 1}", "fields": dict(row), "answer": "x" * answer_chars} for i in range(count)]


class _Rendered:
    """Prompt lengths measured by rendering the real templates: the task's with every row
    of the data, the learner's with the expected lengths of what they show."""

    def __init__(self, task: Mapping[str, Any], data: DataRows, library: _Library, structured: str, answer: float):
        self.templates = compose_templates(task["system"], task["prompt"], task["experiences"], task["demos_placement"])
        self.answer_chars = round(answer * CHARS_PER_TOKEN)
        self.library = library
        self.data = data
        self.question = _mean(data, lambda row: self._chars(compose_templates(task["system"], task["prompt"], "none"), row, 0, user=True))
        self.task = _mean(data, lambda row: self._chars(self.templates, row, 0))
        self.schema = json.dumps(OPERATIONS_SCHEMA) if structured == "text" else None
        self._library_chars: dict[int, int] = {}
        self.prompts = LearnerPrompts()

    def _chars(self, templates: PromptTemplates, row: Mapping[str, Any], size: int, user: bool = False) -> int:
        try:
            demos = self.library.demo_entries(size, row, self.answer_chars)
            messages = render_messages(templates, row, self.library.entries(size), demos)
        except TemplateRenderError:
            return len(templates.user) + len(templates.system or "")
        return len(messages[-1]["content"]) if user else sum(len(m["content"]) for m in messages)

    def task_prompt(self, size: int) -> float:
        """The mean characters of a task's prompt with a library of `size` experiences."""
        if size not in self._library_chars:
            row = self.data.fields[0] if self.data.fields else {}
            self._library_chars[size] = self._chars(self.templates, row, size) - self._chars(self.templates, row, 0)
        return self.task + self._library_chars[size]

    def learner(self, kind: str, policy: PolicySpec, size: int, **values: Any) -> float:
        """The characters of learner prompt `kind` with a library of `size` experiences, the
        question left out (the caller adds its mean length)."""
        experiences = self.library.entries(size)
        if kind == "summary":
            return len(self.prompts.summary(question="", experiences=experiences, **values))
        if kind == "contrast":
            return len(self.prompts.contrast(policy=policy, question="", **values))
        if kind == "advantage":
            return len(self.prompts.advantage(policy=policy, question="", experiences=experiences, schema=self.schema, **values))
        if kind == "advantage_from_rule":
            return len(self.prompts.advantage_from_rule(policy=policy, experiences=experiences, schema=self.schema, **values))
        return len(self.prompts.consolidate(policy=policy, experiences=experiences, schema=self.schema, **values))


def _judge_expected(step: Step, plan: Mapping[str, Any], reward: str | None, data: DataRows, answers: float, answer: float) -> None:
    for name in _judges(plan["rewards"], reward):
        judge = plan["rewards"][name]
        fields = _mean(data, lambda row: sum(len(k) + _text_chars(v) + 4 for k, v in row.items()))
        chars = _learner_template_chars("judge") + len(judge["rubric"]) + fields + answer * CHARS_PER_TOKEN
        step.setdefault(("judge", judge["model"]), Expected()).add(answers, chars, JUDGE_TOKENS)


def kept_share(group: int, ground_truth: bool) -> float:
    """The share of groups expected to be kept: with ground truth, a group whose rewards are all
    equal is skipped, which for answers right half the time is 2 / 2^G of the groups."""
    return 1.0 - 2.0 / 2**group if ground_truth else 1.0


def expected_learn_steps(
    plan: Mapping[str, Any], learn: Mapping[str, Any], rows: Mapping[str, DataRows], growth: Growth | None = None
) -> list[Step]:
    """The expected cost of each step of a `learn`, in step order (`growth`: how its library grows, when known).

    Prompts are rendered from the real templates, the data and a library of the
    expected size (`_Library`); a share `kept_share` of the groups is kept and each
    proposes one operation; an answer is `answer_tokens` long; learner replies have
    the lengths of `SUMMARY_TOKENS`, `OPERATION_TOKENS` and the expected experience.
    The gate runs when the library grows (until it is full) and pays for the old
    library's samples only at step 1: later they are the previous step's new
    library, answered from the cache. Pruning then samples the library without each
    of its items (the full library is the gate's new one, from the cache).
    """
    task = plan["tasks"][learn["task"]]
    data = rows[learn["data"]]
    validation = rows[learn["validate"]] if learn["validate"] is not None else None
    group, batch = int(learn["group_size"]), int(learn["batch_size"])
    policy = PolicySpec.from_json(learn["policy"])
    library = _Library(learn["policy"], growth)
    model, learner = task["model"], learn["learner"]
    answer = answer_tokens(plan, task, learn["reward"], data)
    rendered = _Rendered(task, data, library, str(plan["models"][learner]["structured"]), answer)
    held = _Rendered(task, validation, library, "json_schema", answer) if validation is not None else None
    turns = min(TOOL_TURNS, _turns(task))
    shown = "x" * round(min(answer * CHARS_PER_TOKEN, SHOWN_OUTPUT_CHARS))
    summary = "x" * (SUMMARY_TOKENS * CHARS_PER_TOKEN)
    lesson = "x" * library.lesson_chars
    operation = library.lesson_chars / CHARS_PER_TOKEN + OPERATION_TOKENS
    reference = "x" * round(_mean(data, lambda row: _text_chars(row.get("answer")))) if learn["ground_truth"] else None
    kept = kept_share(group, bool(learn["ground_truth"]))
    batches = [min(batch, data.count - start) for start in range(0, data.count, batch)] * int(learn["epochs"])
    steps: list[Step] = []
    for done, questions in enumerate(batches):
        size = library.size(done)
        step: Step = {}
        answers = group * questions
        step.setdefault(("rollout", model), Expected()).add(answers * turns, rendered.task_prompt(size), answer / turns)
        _judge_expected(step, plan, learn["reward"], data, answers, answer)
        groups = kept * questions
        if learn["summarize"]:
            chars = rendered.learner("summary", policy, size, reference=reference, output=shown, reward="1", error=None)
            step.setdefault(("summary", learner), Expected()).add(group * groups, chars + rendered.question, SUMMARY_TOKENS)
            attempts = [{"reward": "1", "summary": summary}] * group
            chars = rendered.learner("advantage", policy, size, reference=reference, attempts=attempts, contrast=True)
            step.setdefault(("advantage", learner), Expected()).add(groups, chars + rendered.question, operation)
        else:
            attempt = {"value": 1.0, "reward": "1", "summary": shown}
            chars = rendered.learner("contrast", policy, size, reference=reference, better=attempt, worse={**attempt, "value": 0.0}, contrast=True)
            step.setdefault(("contrast", learner), Expected()).add(groups, chars + rendered.question, operation - OPERATION_TOKENS)
            chars = rendered.learner("advantage_from_rule", policy, size, rule=lesson)
            step.setdefault(("advantage", learner), Expected()).add(groups, chars, operation)
        chunks = math.ceil(groups / PROPOSALS_PER_CONSOLIDATION)
        if chunks:
            proposal = {"operation": json.dumps({"op": "add", "text": lesson, "rationale": "x" * 60}), "groups": 1}
            chars = rendered.learner("consolidate", policy, size, proposals=[proposal] * round(groups / chunks))
            step.setdefault(("consolidate", learner), Expected()).add(chunks, chars, library.growth * operation)
        if held is not None and validation is not None and library.size(done + 1) != size:
            gate = group * validation.count
            for libraries in ([size] if done == 0 else []) + [library.size(done + 1)]:
                step.setdefault(("validate", model), Expected()).add(gate * turns, held.task_prompt(libraries), answer / turns)
                _judge_expected(step, plan, learn["reward"], validation, gate, answer)
            if learn["prune"] == "hurting":
                # the library without each of its items; the full one is the gate's, from the cache
                after = library.size(done + 1)
                pruned = gate * (after + library.demos)
                step.setdefault(("prune", model), Expected()).add(pruned * turns, held.task_prompt(after - 1), answer / turns)
                _judge_expected(step, plan, learn["reward"], validation, pruned, answer)
        steps.append(step)
    return steps


def expected_run(plan: Plan, learn: str, rows: Mapping[str, DataRows]) -> dict[str, Any]:
    """The expected cost of one run of `learn`: the whole run, or one repeat of a learn with `repeats`."""
    steps = expected_learn_steps(plan.data, plan.data["learns"][learn], rows)
    return _totals(plan.data["models"], ((model, count) for step in steps for (_, model), count in step.items()))


def expected_evaluate(plan: Mapping[str, Any], evaluate: Mapping[str, Any], rows: Mapping[str, DataRows]) -> Step:
    """The expected cost of an `evaluate`: a learned library at its expected final size, a
    module's at half the default capacity; two libraries of the same content are asked once."""
    task = plan["tasks"][evaluate["task"]]
    data = rows[evaluate["data"]]
    turns = min(TOOL_TURNS, _turns(task))
    answer = answer_tokens(plan, task, evaluate["reward"], data)
    step: Step = {}
    answers = data.count * int(evaluate["samples"])
    for name in evaluate["compare"]:
        library, size = _expected_library(plan, task, name)
        # a learn with `repeats` is evaluated once per repeat
        asked = answers * int(plan["learns"].get(name, {}).get("repeats", 1))
        prompt = _Rendered(task, data, library, "json_schema", answer).task_prompt(size)
        step.setdefault(("evaluate", task["model"]), Expected()).add(asked * turns, prompt, answer / turns)
        _judge_expected(step, plan, evaluate["reward"], data, asked, answer)
    return step


def _expected_library(plan: Mapping[str, Any], task: Mapping[str, Any], name: str) -> tuple[_Library, int]:
    """The library `name` of an `evaluate` and its expected size: a learned library at its
    expected final size, a module's at half the default capacity, `none` empty."""
    library = _Library(defaults("policy"))
    if name == "none" or task["experiences"] == "none":
        return library, 0
    if name in plan["learns"]:
        learn = plan["learns"][name]
        library = _Library(learn["policy"])
        return library, library.size(int(learn["schedule"]["steps"]))
    return library, library.capacity // 2


def expected_rank(plan: Mapping[str, Any], learn: Mapping[str, Any], rows: Mapping[str, DataRows]) -> list[Step]:
    """The expected cost of ranking the repeats of a learn with `repeats` and `validate`: each
    repeat's last library, at its expected final size, sampled on the validation set (none otherwise)."""
    repeats = int(learn["repeats"])
    if repeats < 2 or learn["validate"] is None:
        return []
    task, validation = plan["tasks"][learn["task"]], rows[learn["validate"]]
    library = _Library(learn["policy"])
    answer = answer_tokens(plan, task, learn["reward"], rows[learn["data"]])
    turns = min(TOOL_TURNS, _turns(task))
    ranked = repeats * int(learn["group_size"]) * validation.count
    prompt = _Rendered(task, validation, library, "json_schema", answer).task_prompt(library.size(int(learn["schedule"]["steps"])))
    step: Step = {}
    step.setdefault(("rank", task["model"]), Expected()).add(ranked * turns, prompt, answer / turns)
    _judge_expected(step, plan, learn["reward"], validation, ranked, answer)
    return [step]


def expected_ablation(plan: Mapping[str, Any], evaluate: Mapping[str, Any], rows: Mapping[str, DataRows]) -> list[Step]:
    """The expected cost of `grpo ablate` on each library an `evaluate` compares (but `none`),
    one step per library: the library at its expected size (`_expected_library`) with its
    demos, each subset's prompt that of a library half as large."""
    task, data = plan["tasks"][evaluate["task"]], rows[evaluate["data"]]
    turns = min(TOOL_TURNS, _turns(task))
    answer = answer_tokens(plan, task, evaluate["reward"], data)
    steps: list[Step] = []
    for name in dict.fromkeys(evaluate["compare"]):
        if name == "none":
            continue
        step: Step = {}
        steps.append(step)
        library, size = _expected_library(plan, task, name)
        items = size + (library.demos if size else 0)
        answers = _ablated_subsets(evaluate["ablate"], items, int(evaluate["subsets"])) * data.count * int(evaluate["samples"])
        prompt = _Rendered(task, data, library, "json_schema", answer).task_prompt(size // 2)
        step.setdefault(("ablate", task["model"]), Expected()).add(answers * turns, prompt, answer / turns)
        _judge_expected(step, plan, evaluate["reward"], data, answers, answer)
    return steps


def _usd(models: Mapping[str, Mapping[str, Any]], model: str, prompt_tokens: float, completion_tokens: float) -> float:
    price = models[model]["price"]
    return (prompt_tokens * float(price["input"]) + completion_tokens * float(price["output"])) / 1e6


def _totals(models: Mapping[str, Mapping[str, Any]], counts: Iterable[tuple[str, Expected]]) -> dict[str, Any]:
    calls = prompt = completion = usd = 0.0
    for model, count in counts:
        calls += count.calls
        prompt += count.prompt_tokens
        completion += count.completion_tokens
        usd += _usd(models, model, count.prompt_tokens, count.completion_tokens)
    return {"calls": round(calls), "prompt_tokens": round(prompt), "completion_tokens": round(completion), "usd": round(usd, 6)}


def _expected_by_stage(models: Mapping[str, Mapping[str, Any]], steps: Sequence[Step], stage: str, model: str) -> dict[str, Any]:
    return _totals(models, ((model, step[stage, model]) for step in steps if (stage, model) in step))


def reestimate(
    plan: Plan, learn: str, rows: Mapping[str, DataRows], observed: Sequence[Mapping[str, Any]], done: int, growth: Growth
) -> dict[str, Any]:
    """The cost of the whole run of `learn`, re-estimated once `done` steps have run.

    `observed` are the `entries` of `usage.json` (calls and tokens by stage and model)
    after those steps, `growth` how the library grew in them. Each stage's remaining
    steps are the expected ones, with the library growing as it did, scaled by what
    the done steps really cost against what was expected of them (calls, prompt and
    completion tokens each): the tokenizer, the real answer lengths and the share of
    groups kept are taken from the run itself.
    """
    steps = expected_learn_steps(plan.data, plan.data["learns"][learn], rows, growth)
    seen = {(str(e["stage"]), str(e["model"])): e for e in observed}
    counts: list[tuple[str, Expected]] = []
    for stage, model in sorted({key for step in steps for key in step} | set(seen)):
        before = [step.get((stage, model), Expected()) for step in steps[:done]]
        total = Expected()
        for key in ("calls", "prompt_tokens", "completion_tokens"):
            real = float(seen.get((stage, model), {}).get(key, 0))
            expected_before = sum(getattr(part, key) for part in before)
            later = sum(_scaled(getattr(step.get((stage, model), Expected()), key), real, expected_before, done) for step in steps[done:])
            setattr(total, key, real + later)
        counts.append((model, total))
    return _totals(plan.data["models"], counts)


def _scaled(expected: float, real: float, expected_before: float, done: int) -> float:
    """`expected` for a later step, scaled by how the done steps compared with their expectation
    (a stage that was not expected but happened goes on at its observed rate per step)."""
    if expected_before > 0:
        return expected * real / expected_before
    return real / done if done else expected
