"""The plan document: the validated, canonical JSON a compiled program becomes.

`Plan` keeps the JSON (`data`, for writing and hashing) and hands the runtime typed
views of its sections (`plan.learn(name)`, `plan.task(name)`, ...; see `views`).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import sha256_text
from grpo_dsl.core.resources import resource_path
from grpo_dsl.library import PolicySpec
from grpo_dsl.plan.views import (
    BudgetLimits,
    CostEstimate,
    DatasetView,
    EmitView,
    EvaluateView,
    LearnView,
    ModelView,
    Schedule,
    TaskView,
    ToolView,
    read_view,
)

__all__ = ["PLAN_SCHEMA", "SECTIONS", "Plan", "PlanError"]

PLAN_SCHEMA = "grpo-plan/1"


SECTIONS: dict[str, str] = {
    "model": "models",
    "dataset": "datasets",
    "task": "tasks",
    "tool": "tools",
    "reward": "rewards",
    "policy": "policies",
    "learn": "learns",
    "evaluate": "evaluates",
    "emit": "emits",
}


class PlanError(GrpoError, ValueError):
    """A plan document that is not valid JSON or does not follow `schemas/plan.schema.json`."""


@functools.cache
def _validator() -> Draft202012Validator:
    schema = json.loads(resource_path("schemas/plan.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _validate(data: object) -> None:
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise PlanError(f"invalid plan at {where}: {first.message}{more}")


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


@dataclass(frozen=True)
class Plan:
    """An execution plan: the validated JSON document, in `data`.

    `to_json()` is canonical (sorted keys, two-space indent, trailing newline), so
    identical programs give byte-identical text and the same `sha256`. Treat `data`
    as read-only: the text is fixed when the plan is made.
    """

    data: dict[str, Any]
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _validate(self.data)
        text = _canonical(self.data)
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "data", json.loads(text))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Read a plan written by `to_json`; raises `PlanError` when it is not a valid plan."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise PlanError(f"a plan must be JSON: line {error.lineno} column {error.colno}: {error.msg}") from None
        return cls(data)

    def to_json(self) -> str:
        """The canonical JSON text of the plan."""
        return self._text

    @property
    def sha256(self) -> str:
        """The sha256 of `to_json()`, in hex."""
        return sha256_text(self._text)

    def names(self, kind: Literal["policy", "learn", "evaluate", "emit"]) -> tuple[str, ...]:
        """The names of the plan's `policy`, `learn`, `evaluate` or `emit` blocks, sorted."""
        return tuple(sorted(self.data[SECTIONS[kind]]))

    def model(self, name: str) -> ModelView:
        """The `model` block `name`."""
        section = self.data["models"][name]
        return read_view(ModelView, section, block=name, document=section)

    def models(self) -> dict[str, ModelView]:
        """Every `model` block, by name."""
        return {name: self.model(name) for name in sorted(self.data["models"])}

    def used_models(self) -> dict[str, ModelView]:
        """The `model` blocks a task, a learner or a judge names, by name: the ones a run
        may call. A model that is only declared (say, in an imported file) is never started
        or checked."""
        used = {task["model"] for task in self.data["tasks"].values()}
        used |= {learn["learner"] for learn in self.data["learns"].values()}
        used |= set(_judge_models(self.data["rewards"]))
        return {name: view for name, view in self.models().items() if name in used}

    def dataset(self, name: str) -> DatasetView:
        """The `dataset` block `name`."""
        return read_view(DatasetView, self.data["datasets"][name], name=name)

    def task(self, name: str) -> TaskView:
        """The `task` block `name`."""
        section = self.data["tasks"][name]
        return read_view(
            TaskView,
            section,
            name=name,
            sandbox=self.data["models"][section["model"]]["sandbox"],
            structured=self.data["models"][section["model"]]["structured"],
            declared=tuple(self.tool(tool) for tool in section["tools"] if tool != "python"),
        )

    def tool(self, name: str) -> ToolView:
        """The `tool` block `name`."""
        return read_view(ToolView, self.data["tools"][name], name=name)

    def learn(self, name: str) -> LearnView:
        """The `learn` block `name`."""
        section = self.data["learns"][name]
        return read_view(
            LearnView,
            section,
            name=name,
            policy=PolicySpec.from_json(section["policy"]),
            budget=read_view(BudgetLimits, section["budget"]),
            schedule=read_view(Schedule, section["schedule"]),
        )

    def evaluate(self, name: str) -> EvaluateView:
        """The `evaluate` block `name`."""
        return read_view(EvaluateView, self.data["evaluates"][name], name=name)

    def estimate(self, kind: Literal["learn", "evaluate"], name: str) -> CostEstimate:
        """The estimated total cost of the `learn` or `evaluate` block `name`."""
        return read_view(CostEstimate, self.data[SECTIONS[kind]][name]["estimate"]["total"])

    def emit(self, name: str) -> EmitView:
        """The `emit` block `name`."""
        return read_view(EmitView, self.data["emits"][name], block=name)

    def policy(self, name: str) -> PolicySpec:
        """The `policy` block `name`."""
        return PolicySpec.from_json(self.data["policies"][name])

    def with_policy(self, learn: str, source: Plan, policy: str, folder: Path) -> Plan:
        """This plan with the policy of `learn` replaced by policy `policy` of `source`,
        whose rule file (if any) is made absolute against `folder`."""
        replacement = copy.deepcopy(source.data["policies"][policy])
        if replacement["rule"] is not None:
            replacement["rule"]["path"] = str((folder / replacement["rule"]["path"]).resolve())
        learns = {**self.data["learns"], learn: {**self.data["learns"][learn], "policy": replacement}}
        return Plan({**self.data, "learns": learns})

    def with_seed(self, learn: str, seed: int) -> Plan:
        """This plan with the `seed` of `learn` replaced (one repeat of a learn with `repeats`)."""
        learns = {**self.data["learns"], learn: {**self.data["learns"][learn], "seed": seed}}
        return Plan({**self.data, "learns": learns})

    def rewards(self) -> Mapping[str, Any]:
        """The `reward` blocks as their JSON trees (docs/plan.md "Reward"), which the
        reward scorer compiles."""
        rewards: Mapping[str, Any] = self.data["rewards"]
        return rewards


def _judge_models(tree: Any) -> Iterator[str]:
    """The models the judges anywhere in a reward tree name."""
    if isinstance(tree, Mapping):
        if tree.get("kind") == "judge" and isinstance(tree.get("model"), str):
            yield tree["model"]
        for value in tree.values():
            yield from _judge_models(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _judge_models(value)
