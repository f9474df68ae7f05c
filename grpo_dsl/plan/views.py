"""Typed, frozen views of the plan's sections: what the runtime reads, by attribute.

The plan is a JSON document (docs/plan.md) validated against its schema when it is
made and when it is read, so every key below is known to be there; reading it
through these views turns a misspelt key into a type error instead of a `KeyError`
halfway through a paid run. Each view is built from its section by `read_view` and
is the only code outside the compiler that knows the section's key names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeAlias, TypeVar

from grpo_dsl.library import PolicySpec
from grpo_dsl.prompts.messages import DemosPlacement

__all__ = [
    "AblationMethod",
    "BudgetLimits",
    "CostEstimate",
    "DatasetView",
    "DemoOrigin",
    "EmitView",
    "EvaluateView",
    "Experiences",
    "LearnView",
    "ModelView",
    "Pruning",
    "Sandbox",
    "Schedule",
    "TaskView",
    "ToolView",
    "read_view",
]

Experiences: TypeAlias = Literal["system", "user", "none"]
DemoOrigin: TypeAlias = Literal["rollouts", "reference", "both"]
Pruning: TypeAlias = Literal["none", "hurting"]
AblationMethod: TypeAlias = Literal["loo", "shapley"]
Sandbox: TypeAlias = Literal["bubblewrap", "unsafe-process"]
View = TypeVar("View")


def read_view(view: type[View], data: Mapping[str, Any], **given: Any) -> View:
    """Build `view` from its plan section: each field is the section's key of the same
    name (a JSON list becomes a tuple), unless it is `given`."""
    values = {f.name: data[f.name] for f in fields(view) if f.name not in given}  # type: ignore[arg-type]
    values = {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}
    return view(**values, **given)


@dataclass(frozen=True, slots=True)
class ModelView:
    """A `model` block. `name`, `base_url` and `api_key` may still be `env(...)`
    references (`{"env": VAR, "default": d}`), resolved only when a model is called."""

    block: str
    name: Any
    base_url: Any
    api_key: Any
    structured: str
    gguf: str | None
    sandbox: Sandbox
    document: Mapping[str, Any]
    """The block as JSON, for the client stack (whose `ModelConfig` reads it)."""


@dataclass(frozen=True, slots=True)
class DatasetView:
    """A `dataset` block: its file (relative to the program's folder), field mapping,
    row limit and whether its rows are shuffled (seeded)."""

    name: str
    source: str
    format: str
    fields: Mapping[str, str]
    limit: int | None
    shuffle: bool
    sha256: str


@dataclass(frozen=True, slots=True)
class ToolView:
    """A `tool` block: a Python function (`path`, `function`, the file's `sha256` and
    the `schema` read from its signature) or an MCP server (`command` over stdio, or
    `url`), with the seconds one call may take. `hash` identifies everything the
    model is offered and the code that answers it (docs/plan.md "Tools")."""

    name: str
    kind: Literal["python", "mcp"]
    timeout: float
    path: str | None
    function: str | None
    sha256: str | None
    schema: Mapping[str, Any] | None
    command: tuple[str, ...] | None
    url: str | None
    hash: str


@dataclass(frozen=True, slots=True)
class TaskView:
    """A `task` block: the model that answers, its templates and sampling, its tools
    (`python` and declared tool names) with the `files` the python tool mounts
    (relative to the program's folder), and the `sandbox` of its model, which
    isolates the python tool."""

    name: str
    model: str
    system: str | None
    prompt: str
    experiences: Experiences
    temperature: float
    top_p: float
    max_tokens: int
    answer_tokens: int | None
    max_turns: int
    response: Mapping[str, Any] | None
    """The JSON schema the answer follows (`path`, `sha256`, `schema`), or None for text."""
    tools: tuple[str, ...]
    demos_placement: DemosPlacement
    files: tuple[str, ...]
    sandbox: Sandbox
    variables: tuple[str, ...]
    structured: str = "json_schema"
    """How the model is asked for a `response` schema (its model's `structured`)."""
    declared: tuple[ToolView, ...] = ()
    """The declared tools among `tools` (all but the built-in `python`), in order."""


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """A learn's `budget`: USD, tokens and calls it may spend (None: no limit)."""

    usd: float | None = None
    tokens: int | None = None
    calls: int | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """How a learn's data splits into steps."""

    steps: int
    steps_per_epoch: int
    rows: int
    last_batch: int


@dataclass(frozen=True, slots=True)
class LearnView:
    """A `learn` block with every default filled in."""

    name: str
    task: str
    data: str
    reward: str
    group_size: int
    batch_size: int
    epochs: int
    temperature: float
    ground_truth: bool
    learner: str
    policy: PolicySpec
    validate: str | None
    seed: int
    summarize: bool
    init: str | None
    demo_source: DemoOrigin
    prune: Pruning
    repeats: int
    max_failures: float
    budget: BudgetLimits
    schedule: Schedule
    estimate: Mapping[str, Any]
    """The compiler's estimate (docs/plan.md "Estimate"): stages, totals, assumptions."""


@dataclass(frozen=True, slots=True)
class EvaluateView:
    """An `evaluate` block: the libraries it compares on which data, and how."""

    name: str
    task: str
    data: str
    reward: str | None
    samples: int
    metrics: tuple[str, ...]
    compare: tuple[str, ...]
    seed: int
    ablate: AblationMethod
    subsets: int
    max_failures: float
    estimate: Mapping[str, Any]
    """The compiler's estimate of the evaluation's cost."""


@dataclass(frozen=True, slots=True)
class EmitView:
    """An `emit` block: which learn's library goes to which module folder."""

    block: str
    library: str
    path: str
    formats: tuple[str, ...]
    name: str
    version: str | None



@dataclass(frozen=True, slots=True)
class CostEstimate:
    """The estimated total of a `learn` or `evaluate` block (docs/plan.md "Estimate"):
    LLM calls (`max_calls` counts every tool turn), tokens and USD; `upper_bound`
    when a stage is counted at its most."""

    calls: int
    max_calls: int
    prompt_tokens: int
    completion_tokens: int
    usd: float
    upper_bound: bool
