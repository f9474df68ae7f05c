"""What a report shows, as a tree of frozen dataclasses of numbers and text, with its JSON Schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any, Literal

import jsonschema

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.evaluation.results import EvaluationData
from grpo_dsl.library.diff import DiffSegment, word_diff

__all__ = [
    "REPORT_DATA_SCHEMA",
    "AblationData",
    "Answer",
    "ItemData",
    "ChangeKind",
    "GateData",
    "GroupData",
    "LibraryAnswers",
    "Proposal",
    "QuestionAnswers",
    "RejectedOperation",
    "mean_reward",
    "ExperienceChange",
    "ReportData",
    "ReportDataError",
    "StageCost",
    "StepData",
    "library_changes",
]

ChangeKind = Literal["added", "removed", "modified"]


class ReportDataError(GrpoError, ValueError):
    """Report data that does not match `REPORT_DATA_SCHEMA`; the message names the place."""


_COUNT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": "number"}
_OPTIONAL_NUMBER = {"type": ["number", "null"]}


_INTERVAL = {
    "type": "object",
    "required": ["estimate", "low", "high"],
    "properties": {"estimate": _NUMBER, "low": _NUMBER, "high": _NUMBER},
    "additionalProperties": False,
}


_ABLATION = {
    "type": ["object", "null"],
    "required": ["evaluate", "library", "method", "exact", "questions", "samples", "items"],
    "additionalProperties": False,
    "properties": {
        "evaluate": {"type": "string"},
        "library": {"type": "string"},
        "method": {"enum": ["loo", "shapley"]},
        "exact": {"type": "boolean"},
        "confidence": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "questions": _COUNT,
        "samples": _COUNT,
        "full": {"oneOf": [_INTERVAL, {"type": "null"}]},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "kind", "text", "estimate", "low", "high", "verdict"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "kind": {"enum": ["lesson", "demo"]},
                    "text": {"type": "string"},
                    "estimate": _NUMBER,
                    "low": _NUMBER,
                    "high": _NUMBER,
                    "p_value": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                    "verdict": {"enum": ["helps", "hurts", "no evidence"]},
                },
            },
        },
    },
}


_ANSWER = {
    "type": "object",
    "required": ["sample", "reward", "output"],
    "additionalProperties": False,
    "properties": {"sample": _COUNT, "reward": _OPTIONAL_NUMBER, "output": {"type": "string"}, "error": {"type": ["string", "null"]}},
}

_TEXTS = {"type": "array", "items": {"type": "string"}}

_PROPOSAL = {
    "type": "object",
    "required": ["op", "text"],
    "additionalProperties": False,
    "properties": {"op": {"type": "string"}, "text": {"type": "string"}, "rationale": {"type": "string"}},
}

_GROUP = {
    "type": "object",
    "required": ["group", "question", "kept", "answers"],
    "additionalProperties": False,
    "properties": {
        "group": {"type": "string"},
        "question": {"type": "string"},
        "prompt": {"type": "string"},
        "kept": {"type": "boolean"},
        "skip_reason": {"type": ["string", "null"]},
        "answers": {"type": "array", "items": _ANSWER},
        "summaries": _TEXTS,
        "proposals": {"type": "array", "items": _PROPOSAL},
        "error": {"type": ["string", "null"]},
    },
}

_REJECTED = {
    "type": "object",
    "required": ["op", "text", "reason"],
    "additionalProperties": False,
    "properties": {"op": {"type": "string"}, "text": {"type": "string"}, "reason": {"type": "string"}, "groups": _TEXTS},
}

_GATE = {
    "type": "object",
    "required": ["decision"],
    "additionalProperties": False,
    "properties": {
        "decision": {"enum": ["accepted", "rejected"]},
        "questions": _COUNT,
        "old_mean": _OPTIONAL_NUMBER,
        "new_mean": _OPTIONAL_NUMBER,
        "difference": _OPTIONAL_NUMBER,
        "low": _OPTIONAL_NUMBER,
        "high": _OPTIONAL_NUMBER,
        "p_value": _OPTIONAL_NUMBER,
    },
}

_QUESTION = {
    "type": "object",
    "required": ["question", "libraries"],
    "additionalProperties": False,
    "properties": {
        "question": {"type": "string"},
        "libraries": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["library", "answers"],
                "additionalProperties": False,
                "properties": {"library": {"type": "string"}, "answers": {"type": "array", "items": _ANSWER}},
            },
        },
    },
}


REPORT_DATA_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "grpo-dsl report data",
    "type": "object",
    "required": ["title"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string"},
        "subtitle": {"type": "string"},
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["step", "reward_mean", "groups_kept", "groups_skipped", "ops_applied", "ops_rejected", "library_size"],
                "additionalProperties": False,
                "properties": {
                    "step": _COUNT,
                    "reward_mean": _NUMBER,
                    "reward_low": _OPTIONAL_NUMBER,
                    "reward_high": _OPTIONAL_NUMBER,
                    "groups_kept": _COUNT,
                    "groups_skipped": _COUNT,
                    "ops_applied": _COUNT,
                    "ops_rejected": _COUNT,
                    "library_size": _COUNT,
                    "groups": {"type": "array", "items": _GROUP},
                    "rejected": {"type": "array", "items": _REJECTED},
                    "gate": {"oneOf": [{"type": "null"}, _GATE]},
                    "changes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["kind", "id", "text"],
                            "additionalProperties": False,
                            "properties": {
                                "kind": {"enum": ["added", "removed", "modified"]},
                                "id": {"type": "string"},
                                "text": {"type": "string"},
                                "previous": {"type": ["string", "null"]},
                            },
                        },
                    },
                },
            },
        },
        "questions": {"type": "array", "items": _QUESTION},
        "costs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["stage", "calls", "usd"],
                "additionalProperties": False,
                "properties": {
                    "stage": {"type": "string"},
                    "calls": _COUNT,
                    "input_tokens": _COUNT,
                    "output_tokens": _COUNT,
                    "usd": {"type": "number", "minimum": 0},
                },
            },
        },
        "evaluation": {
            "type": ["object", "null"],
            "required": ["libraries"],
            "additionalProperties": False,
            "properties": {
                "confidence": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "libraries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "questions", "samples", "metrics"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "questions": _COUNT,
                            "samples": _COUNT,
                            "metrics": {"type": "object", "additionalProperties": _INTERVAL},
                            "failed": _COUNT,
                            "attempted": _COUNT,
                        },
                    },
                },
                "comparisons": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["metric", "candidate", "baseline", "difference", "low", "high", "p_value", "better", "worse", "ties"],
                        "additionalProperties": False,
                        "properties": {
                            "metric": {"type": "string"},
                            "candidate": {"type": "string"},
                            "baseline": {"type": "string"},
                            "difference": _NUMBER,
                            "low": _NUMBER,
                            "high": _NUMBER,
                            "p_value": {"type": "number", "minimum": 0, "maximum": 1},
                            "better": _COUNT,
                            "worse": _COUNT,
                            "ties": _COUNT,
                            "includes_zero": {"type": "boolean"},
                        },
                    },
                },
                "pooled": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["metric", "learn", "baseline", "gains", "difference", "low", "high", "beat", "beat_beyond_noise"],
                        "additionalProperties": False,
                        "properties": {
                            "metric": {"type": "string"},
                            "learn": {"type": "string"},
                            "baseline": {"type": "string"},
                            "gains": {"type": "array", "items": _NUMBER},
                            "difference": _NUMBER,
                            "low": _NUMBER,
                            "high": _NUMBER,
                            "beat": _COUNT,
                            "beat_beyond_noise": _COUNT,
                        },
                    },
                },
            },
        },
        "ablation": _ABLATION,
    },
}


@dataclass(frozen=True, slots=True)
class ExperienceChange:
    """One experience added, removed or modified by a step; `previous` is the replaced text."""

    kind: ChangeKind
    id: str
    text: str
    previous: str | None = None

    @property
    def diff(self) -> tuple[DiffSegment, ...]:
        """The word diff from `previous` to `text` (the whole text as inserted when there is none)."""
        return word_diff(self.previous or "", self.text)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ExperienceChange:
        return cls(kind=value["kind"], id=value["id"], text=value["text"], previous=value.get("previous"))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "text": self.text, "previous": self.previous}


def library_changes(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[ExperienceChange, ...]:
    """The changes from one library version to the next, each given as `{id: text}`:
    added, modified, then removed, each in the order of the versions' ids."""
    added = [ExperienceChange("added", i, text) for i, text in after.items() if i not in before]
    modified = [ExperienceChange("modified", i, text, before[i]) for i, text in after.items() if i in before and before[i] != text]
    removed = [ExperienceChange("removed", i, text) for i, text in before.items() if i not in after]
    return (*added, *modified, *removed)


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer of a model: its sample (or rollout) number, its reward (None when it
    failed) and its text, or the error that failed it."""

    sample: int
    reward: float | None
    output: str
    error: str | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Answer:
        return cls(value["sample"], _optional_float(value["reward"]), value["output"], value.get("error"))

    def to_json(self) -> dict[str, Any]:
        return {"sample": self.sample, "reward": self.reward, "output": self.output, "error": self.error}


def mean_reward(answers: Sequence[Answer]) -> float | None:
    """The mean reward of the answers that have one (None when none has)."""
    rewards = [a.reward for a in answers if a.reward is not None]
    return fmean(rewards) if rewards else None


@dataclass(frozen=True, slots=True)
class LibraryAnswers:
    """The answers to one question with one library, sample by sample."""

    library: str
    answers: tuple[Answer, ...]

    @property
    def mean(self) -> float | None:
        return mean_reward(self.answers)

    def to_json(self) -> dict[str, Any]:
        return {"library": self.library, "answers": [a.to_json() for a in self.answers]}


@dataclass(frozen=True, slots=True)
class QuestionAnswers:
    """One evaluated question: every library's answers to it.

    It is *failing* when some answer failed or scored 0 or less, and *changed* when
    its mean reward differs between two libraries.
    """

    question: str
    libraries: tuple[LibraryAnswers, ...]

    @property
    def failing(self) -> bool:
        return any(a.reward is None or a.reward <= 0 for lib in self.libraries for a in lib.answers)

    @property
    def changed(self) -> bool:
        return len({lib.mean for lib in self.libraries}) > 1

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> QuestionAnswers:
        libraries = (LibraryAnswers(lib["library"], tuple(Answer.from_json(a) for a in lib["answers"])) for lib in value["libraries"])
        return cls(value["question"], tuple(libraries))

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "libraries": [lib.to_json() for lib in self.libraries]}


@dataclass(frozen=True, slots=True)
class Proposal:
    """An operation the learner proposed (`op` add, modify or delete), with its rationale."""

    op: str
    text: str
    rationale: str = ""

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Proposal:
        return cls(value["op"], value["text"], value.get("rationale", ""))

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "text": self.text, "rationale": self.rationale}


@dataclass(frozen=True, slots=True)
class GroupData:
    """One group of a step: its question, its rollouts with their rewards, and what the
    learner made of them (a summary per rollout, the operations it proposed), or why it
    was skipped."""

    group: str
    question: str
    kept: bool
    answers: tuple[Answer, ...]
    prompt: str = ""
    skip_reason: str | None = None
    summaries: tuple[str, ...] = ()
    proposals: tuple[Proposal, ...] = ()
    error: str | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> GroupData:
        return cls(
            group=value["group"],
            question=value["question"],
            kept=value["kept"],
            answers=tuple(Answer.from_json(a) for a in value["answers"]),
            prompt=value.get("prompt", ""),
            skip_reason=value.get("skip_reason"),
            summaries=tuple(value.get("summaries", ())),
            proposals=tuple(Proposal.from_json(p) for p in value.get("proposals", ())),
            error=value.get("error"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "question": self.question,
            "prompt": self.prompt,
            "kept": self.kept,
            "skip_reason": self.skip_reason,
            "answers": [a.to_json() for a in self.answers],
            "summaries": list(self.summaries),
            "proposals": [p.to_json() for p in self.proposals],
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class RejectedOperation:
    """An operation the policy or the learner's checks rejected, with the reason."""

    op: str
    text: str
    reason: str
    groups: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> RejectedOperation:
        return cls(value["op"], value["text"], value["reason"], tuple(value.get("groups", ())))

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "text": self.text, "reason": self.reason, "groups": list(self.groups)}


@dataclass(frozen=True, slots=True)
class GateData:
    """The validation gate of a step: its decision and the paired comparison of the new
    library with the old on the held-out questions."""

    decision: Literal["accepted", "rejected"]
    questions: int = 0
    old_mean: float | None = None
    new_mean: float | None = None
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> GateData:
        numbers = {k: _optional_float(value.get(k)) for k in ("old_mean", "new_mean", "difference", "low", "high", "p_value")}
        return cls(value["decision"], int(value.get("questions", 0)), **numbers)

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "questions": self.questions,
            "old_mean": self.old_mean,
            "new_mean": self.new_mean,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "p_value": self.p_value,
        }


@dataclass(frozen=True, slots=True)
class StepData:
    """The numbers of one learning step and the library changes it made.

    `reward_mean` is the mean reward of the step's rollouts; `reward_low` and
    `reward_high`, when given for every step, draw a band around it.
    """

    step: int
    reward_mean: float
    groups_kept: int
    groups_skipped: int
    ops_applied: int
    ops_rejected: int
    library_size: int
    reward_low: float | None = None
    reward_high: float | None = None
    changes: tuple[ExperienceChange, ...] = ()
    groups: tuple[GroupData, ...] = ()
    rejected: tuple[RejectedOperation, ...] = ()
    gate: GateData | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> StepData:
        return cls(
            step=value["step"],
            reward_mean=float(value["reward_mean"]),
            groups_kept=value["groups_kept"],
            groups_skipped=value["groups_skipped"],
            ops_applied=value["ops_applied"],
            ops_rejected=value["ops_rejected"],
            library_size=value["library_size"],
            reward_low=_optional_float(value.get("reward_low")),
            reward_high=_optional_float(value.get("reward_high")),
            changes=tuple(ExperienceChange.from_json(c) for c in value.get("changes", ())),
            groups=tuple(GroupData.from_json(g) for g in value.get("groups", ())),
            rejected=tuple(RejectedOperation.from_json(r) for r in value.get("rejected", ())),
            gate=GateData.from_json(value["gate"]) if value.get("gate") else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "reward_mean": self.reward_mean,
            "reward_low": self.reward_low,
            "reward_high": self.reward_high,
            "groups_kept": self.groups_kept,
            "groups_skipped": self.groups_skipped,
            "ops_applied": self.ops_applied,
            "ops_rejected": self.ops_rejected,
            "library_size": self.library_size,
            "changes": [c.to_json() for c in self.changes],
            "groups": [g.to_json() for g in self.groups],
            "rejected": [r.to_json() for r in self.rejected],
            "gate": self.gate.to_json() if self.gate is not None else None,
        }


@dataclass(frozen=True, slots=True)
class StageCost:
    """What one stage (rollout, summary, advantage, consolidate, evaluation, ...) cost."""

    stage: str
    calls: int
    usd: float
    input_tokens: int = 0
    output_tokens: int = 0

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> StageCost:
        return cls(
            stage=value["stage"],
            calls=value["calls"],
            usd=float(value["usd"]),
            input_tokens=value.get("input_tokens", 0),
            output_tokens=value.get("output_tokens", 0),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "calls": self.calls,
            "usd": self.usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True, slots=True)
class ItemData:
    """One lesson or demo of an ablated library: its utility, interval and verdict."""

    id: str
    kind: str
    text: str
    estimate: float
    low: float
    high: float
    verdict: str
    p_value: float | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ItemData:
        p_value = value.get("p_value")
        return cls(
            id=value["id"],
            kind=value["kind"],
            text=value["text"],
            estimate=float(value["estimate"]),
            low=float(value["low"]),
            high=float(value["high"]),
            verdict=value["verdict"],
            p_value=float(p_value) if p_value is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "p_value": self.p_value,
            "verdict": self.verdict,
        }


@dataclass(frozen=True, slots=True)
class AblationData:
    """What each lesson and demo of a library is worth (`grpo ablate`), measured on the
    questions of evaluate `evaluate` by `method` (`loo` or `shapley`)."""

    evaluate: str
    library: str
    method: str
    exact: bool
    questions: int
    samples: int
    items: tuple[ItemData, ...]
    confidence: float = 0.95
    full: tuple[float, float, float] | None = None
    """The whole library's mean reward: (estimate, low, high)."""

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> AblationData:
        full = value.get("full")
        return cls(
            evaluate=value["evaluate"],
            library=value["library"],
            method=value["method"],
            exact=bool(value["exact"]),
            questions=value["questions"],
            samples=value["samples"],
            items=tuple(ItemData.from_json(item) for item in value["items"]),
            confidence=float(value.get("confidence", 0.95)),
            full=(float(full["estimate"]), float(full["low"]), float(full["high"])) if full else None,
        )

    def to_json(self) -> dict[str, Any]:
        full = self.full
        return {
            "evaluate": self.evaluate,
            "library": self.library,
            "method": self.method,
            "exact": self.exact,
            "confidence": self.confidence,
            "questions": self.questions,
            "samples": self.samples,
            "full": {"estimate": full[0], "low": full[1], "high": full[2]} if full else None,
            "items": [item.to_json() for item in self.items],
        }


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a report shows. Every part is optional but the title: a report without
    steps shows only the evaluation, one without evaluation only the learning."""

    title: str
    subtitle: str = ""
    steps: tuple[StepData, ...] = ()
    costs: tuple[StageCost, ...] = ()
    evaluation: EvaluationData | None = None
    ablation: AblationData | None = None
    questions: tuple[QuestionAnswers, ...] = ()
    """The evaluation's answers, question by question (the drill-down)."""

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ReportData:
        """Build the tree from plain JSON values (see `REPORT_DATA_SCHEMA`).

        Raises `ReportDataError` naming the first invalid place.
        """
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(REPORT_DATA_SCHEMA).iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the top level"
            raise ReportDataError(f"invalid report data at {where}: {error.message}")
        evaluation = value.get("evaluation")
        ablation = value.get("ablation")
        return cls(
            title=value["title"],
            subtitle=value.get("subtitle", ""),
            steps=tuple(StepData.from_json(s) for s in value.get("steps", ())),
            costs=tuple(StageCost.from_json(c) for c in value.get("costs", ())),
            evaluation=EvaluationData.from_json(evaluation) if evaluation is not None else None,
            ablation=AblationData.from_json(ablation) if ablation is not None else None,
            questions=tuple(QuestionAnswers.from_json(q) for q in value.get("questions", ())),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "subtitle": self.subtitle,
            "steps": [s.to_json() for s in self.steps],
            "costs": [c.to_json() for c in self.costs],
            "evaluation": self.evaluation.to_json() if self.evaluation is not None else None,
            "ablation": self.ablation.to_json() if self.ablation is not None else None,
            "questions": [q.to_json() for q in self.questions],
        }


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
