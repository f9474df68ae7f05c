"""What a plan will cost before it runs: LLM calls, tokens and USD, stage by stage.

A `learn` makes, per step of B questions, G·B rollouts, at most G·k summaries and k
advantage calls for the k groups kept (groups whose rewards are all equal are
skipped, so these are upper bounds), and ⌈proposals / PROPOSALS_PER_CONSOLIDATION⌉
consolidation calls; with `validate`, the gate samples the old and the new library
on the held-out set. An `evaluate` samples every question `samples` times per
compared library. Tokens are estimated as characters / 4 of the prompts rendered
from each row; completions count the declared `max_tokens` (an upper bound).

>>> schedule({"batch_size": 8, "epochs": 3}, 20)
{'rows': 20, 'steps_per_epoch': 3, 'steps': 9, 'last_batch': 4}
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from jinja2 import Template

from grpo_dsl.core.resources import resource_path
from grpo_dsl.core.templating import sandbox
from grpo_dsl.language.attributes import defaults
from grpo_dsl.prompts.learner import (
    LEARNER_MAX_TOKENS,
    PROPOSALS_PER_CONSOLIDATION,
    SHOWN_OUTPUT_CHARS,
)
from grpo_dsl.prompts.messages import EXPERIENCES_BLOCK

__all__ = [
    "CHARS_PER_TOKEN",
    "DataRows",
    "estimate_ablation",
    "estimate_evaluate",
    "estimate_learn",
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


def _summed(stages: Sequence[dict[str, Any]], assumptions: list[str]) -> dict[str, Any]:
    return {
        "stages": list(stages),
        "total": {
            "calls": sum(s["calls"] for s in stages),
            "max_calls": sum(s["max_calls"] for s in stages),
            "prompt_tokens": sum(s["prompt_tokens"] for s in stages),
            "completion_tokens": sum(s["completion_tokens"] for s in stages),
            "usd": round(sum(s["usd"] for s in stages), 6),
            "upper_bound": any(s["upper_bound"] for s in stages),
        },
        "assumptions": assumptions,
    }


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
    return int(task["max_turns"]) if "python" in task["tools"] else 1


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
    return _summed([stage.to_json(plan["models"]) for stage in stages], assumptions)


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
    return _summed([stage.to_json(plan["models"]) for stage in stages], assumptions)


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
    return _summed([stage.to_json(plan["models"]) for stage in stages], assumptions)


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
