"""What a report shows, as a tree of frozen dataclasses of numbers and text, with its JSON Schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.evaluation.results import EvaluationData
from grpo_dsl.library.diff import DiffSegment, word_diff

__all__ = [
    "REPORT_DATA_SCHEMA",
    "AblationData",
    "ItemData",
    "ChangeKind",
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
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "subtitle": self.subtitle,
            "steps": [s.to_json() for s in self.steps],
            "costs": [c.to_json() for c in self.costs],
            "evaluation": self.evaluation.to_json() if self.evaluation is not None else None,
            "ablation": self.ablation.to_json() if self.ablation is not None else None,
        }


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
