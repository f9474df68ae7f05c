"""The interpreter of an `evaluate` block: every compared library on the same questions.

`start_evaluation` resolves the libraries of `compare` (`none`, a `learn` name
meaning the library of its newest completed run, a module path with a version), creates
`runs/<evaluate>/<run-id>/` and samples the task `samples` times on every question
with each library in turn, through the run's client stack (cached, budgeted) and
with the same per-sample seeds for every library (`evaluation.sample_library`), so
the results are paired. `resume_evaluation` continues such a directory: the
libraries are those recorded when it started, and every call already answered is
replayed from its record for free.

```
runs/<evaluate>/<run-id>/
  plan.json  run.json  events.jsonl  usage.json  responses.jsonl   as for a learning run
  libraries.json     the libraries compared, fixed when the evaluation started
  results.jsonl      one line per sample: library, question, sample, reward, tokens,
                     tool_calls, cost, error, output
  evaluation.json    metrics with intervals and paired comparisons (grpo-evaluation/1)
```

When it completes, the results of every compared module version are recorded in
that version's `module.json` under the evaluate's name (`emit.record_evaluation`).

The statistics are `stats.summarize_samples` per library and
`stats.paired_difference` of every other library against the first (the baseline),
per reward metric, over per-question values. A sample whose calls or reward failed
is counted as a failure of its library and left out of the statistics (never
scored 0); a library with more than `max_failures` of its samples failed fails
the evaluation (status `failed`, exit 1), its table still printed.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import jsonschema

from grpo_dsl.clients.accounting import Budget, Usage
from grpo_dsl.clients.protocol import ChatRequest, ChatResponse
from grpo_dsl.core.env import resolve_env
from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import atomic_write_json, atomic_write_text, read_json
from grpo_dsl.evaluation.pooled import crossed_bootstrap
from grpo_dsl.evaluation.results import Comparison, EvaluationData, LibraryEvaluation, PooledGain
from grpo_dsl.evaluation.sampling import QuestionResult, Sampling
from grpo_dsl.evaluation.stats import (
    SMALL_SAMPLE,
    EvaluationSummary,
    Sample,
    mean_at_k,
    paired_difference,
    pass_at_k,
    summarize_samples,
)
from grpo_dsl.library import Library
from grpo_dsl.modules import (
    ModelMismatchWarning,
    ModuleError,
    evaluation_record,
    load_module,
    parse_reference,
    record_evaluation,
)
from grpo_dsl.plan import Plan
from grpo_dsl.plan.views import EvaluateView
from grpo_dsl.rewards.functions import RewardFunction, check_reward_functions, recorded_functions, resumed_functions
from grpo_dsl.rewards.scorer import RewardScorer
from grpo_dsl.rollout.answer import Call
from grpo_dsl.rollout.tools import Tools, open_tools
from grpo_dsl.runs.directory import EventLog, RunDirectory
from grpo_dsl.runs.failures import Failures, TooManyFailures
from grpo_dsl.runs.loop import blocking
from grpo_dsl.runs.progress import Progress
from grpo_dsl.runs.repeats import is_repeated_run, repeat_dirs
from grpo_dsl.runs.session import (
    client_stack,
    ending_cleanly,
    latest_completed_run,
    run_status,
    usage_from_events,
)

__all__ = [
    "EVALUATION_SCHEMA",
    "FAILURES_SCHEMA",
    "INTERVAL_SCHEMA",
    "EvaluationError",
    "EvaluationResult",
    "LibraryResult",
    "LibrarySource",
    "STAGE",
    "aresume_evaluation",
    "astart_evaluation",
    "evaluate_block",
    "format_evaluation",
    "is_evaluation_run",
    "library_sources",
    "newest_evaluation",
    "question_scores",
    "read_evaluation",
    "resolve_libraries",
    "resume_evaluation",
    "start_evaluation",
]

STAGE = "evaluate"
"""The stage of every rollout an evaluation makes (judge rewards use `judge`)."""

CONFIDENCE = 0.95

LibraryKind = Literal["none", "learn", "module"]


class EvaluationError(GrpoError):
    """An evaluation that cannot start: an unknown block, a library that cannot be found, no reward."""


@dataclass(frozen=True, slots=True)
class LibrarySource:
    """One library of `compare`: its name as written, where it came from, and its content.

    `origin` is the run directory of a learn's library or `PATH@VERSION` of a
    module; `status` the state of that run (completed, stopped, ...).
    """

    name: str
    kind: LibraryKind
    library: Library
    origin: str | None = None
    status: str | None = None
    repeat_of: str | None = None
    """For the library of one repeat of a learn with `repeats` (named `LEARN#R`): the learn."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "origin": self.origin,
            "status": self.status,
            "repeat_of": self.repeat_of,
            "content_hash": self.library.content_hash(),
            "library": self.library.to_json(),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> LibrarySource:
        return cls(
            value["name"],
            value["kind"],
            Library.from_json(value["library"]),
            value.get("origin"),
            value.get("status"),
            value.get("repeat_of"),
        )


@dataclass(frozen=True, slots=True)
class LibraryResult:
    """A library's evaluation: where it came from, its summary over questions, and its failed samples."""

    source: LibrarySource
    summary: EvaluationSummary
    failures: Mapping[str, Any]
    """`{"attempted", "failed", "causes": {cause: count}}` of its samples."""

    def to_json(self) -> dict[str, Any]:
        return {
            "failures": dict(self.failures),
            "name": self.source.name,
            "kind": self.source.kind,
            "origin": self.source.origin,
            "status": self.source.status,
            "repeat_of": self.source.repeat_of,
            "content_hash": self.source.library.content_hash(),
            "experiences": len(self.source.library.experiences),
            "demos": len(self.source.library.demos),
            "questions": len(self.summary.questions),
            "samples": self.summary.samples_per_question,
            "metrics": {m.name: m.interval.to_json() for m in self.summary.metrics},
            "per_question": [q.to_json() for q in self.summary.questions],
        }


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """How an evaluation ended (`status`: completed, stopped, interrupted, failed) and what it found.

    `libraries` and `comparisons` are empty unless every library was evaluated.
    """

    run_dir: Path
    evaluate: str
    status: str
    reward: str | None
    metrics: tuple[str, ...]
    libraries: tuple[LibraryResult, ...]
    comparisons: tuple[Comparison, ...]
    usage: Mapping[str, Any]
    message: str | None = None
    pooled: tuple[PooledGain, ...] = ()

    @property
    def report_data(self) -> EvaluationData:
        """The evaluation as the HTML report shows it."""
        return EvaluationData(
            libraries=tuple(LibraryEvaluation.from_summary(r.source.name, r.summary, r.failures) for r in self.libraries),
            comparisons=self.comparisons,
            confidence=CONFIDENCE,
            pooled=self.pooled,
        )

    def text(self) -> str:
        """The table and sentences `grpo eval` prints."""
        return format_evaluation(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "grpo-evaluation/1",
            "evaluate": self.evaluate,
            "run_dir": str(self.run_dir),
            "status": self.status,
            "message": self.message,
            "reward": self.reward,
            "metrics": list(self.metrics),
            "confidence": CONFIDENCE,
            "libraries": [r.to_json() for r in self.libraries],
            "comparisons": [c.to_json() for c in self.comparisons],
            "pooled": [p.to_json() for p in self.pooled],
            "usage": dict(self.usage),
        }


INTERVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["estimate", "low", "high"],
    "properties": {"estimate": {"type": "number"}, "low": {"type": "number"}, "high": {"type": "number"}},
}
FAILURES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["attempted", "failed", "causes"],
    "properties": {
        "attempted": {"type": "integer", "minimum": 0},
        "failed": {"type": "integer", "minimum": 0},
        "causes": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}
"""The failed samples of a library, an ablation or a ranking: `Failures.of(kind)`."""

EVALUATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "grpo-evaluation/1",
    "type": "object",
    "required": ["schema", "evaluate", "status", "reward", "metrics", "confidence", "libraries", "comparisons", "usage"],
    "properties": {
        "schema": {"const": "grpo-evaluation/1"},
        "evaluate": {"type": "string"},
        "status": {"enum": ["completed", "stopped", "interrupted", "failed"]},
        "reward": {"type": ["string", "null"]},
        "metrics": {"type": "array", "items": {"type": "string"}},
        "confidence": {"type": "number"},
        "libraries": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "kind", "content_hash", "questions", "samples", "metrics", "per_question"],
                "properties": {
                    "name": {"type": "string"},
                    "failures": FAILURES_SCHEMA,
                    "kind": {"enum": ["none", "learn", "module"]},
                    "origin": {"type": ["string", "null"]},
                    "questions": {"type": "integer", "minimum": 1},
                    "samples": {"type": "integer", "minimum": 1},
                    "metrics": {"type": "object", "additionalProperties": INTERVAL_SCHEMA},
                    "per_question": {"type": "array", "items": {"type": "object"}},
                },
            },
        },
        "comparisons": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["metric", "candidate", "baseline", "difference", "low", "high", "p_value", "better", "worse", "ties"],
            },
        },
        "pooled": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["metric", "learn", "baseline", "gains", "difference", "low", "high", "beat", "beat_beyond_noise"],
            },
        },
        "usage": {"type": "object"},
    },
}


def _validated(document: Any, where: Path) -> Any:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(EVALUATION_SCHEMA).iter_errors(document))
    if error is not None:
        place = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise EvaluationError(f"{where}: not an evaluation (grpo-evaluation/1) at {place}: {error.message}")
    return document


# ---------------------------------------------------------------------- the libraries


def _learn_libraries(name: str, runs_root: Path) -> tuple[list[LibrarySource], str]:
    """The library of the newest completed run of learn `name`; of every repeat when that
    run has repeats (named `LEARN#R`); of one repeat for a name `LEARN#R`. And a note
    saying which run they come from."""
    learn, mark, repeat = name.partition("#")
    run_dir, passed = latest_completed_run(runs_root, learn)
    listing = ", ".join(f"{run.name} ({status})" for run, status in passed[:3])
    if run_dir is None:
        if not passed:
            raise EvaluationError(
                f"`{learn}` has no run under {runs_root}: run it first (`grpo run FILE --learn {learn}`), "
                "or point --runs at the folder that holds its runs"
            )
        raise EvaluationError(
            f"`{learn}` has no completed run under {runs_root} (its newest: {listing}): finish one with "
            "`grpo run --resume RUN_DIR`, or compare a module version instead"
        )
    note = f"`{learn}`: the library of its newest completed run, {run_dir}" + (f" (newer runs passed over: {listing})" if passed else "")
    if not is_repeated_run(run_dir):
        if mark:
            raise EvaluationError(f"the newest completed run of `{learn}`, {run_dir}, has no repeats: name it `{learn}`")
        return [_run_library(name, run_dir)], note
    repeats = [d for d in repeat_dirs(run_dir) if not mark or d.name == repeat]
    if not repeats:
        raise EvaluationError(f"the newest completed run of `{learn}`, {run_dir}, has no repeat {repeat or ''}".rstrip())
    return [_run_library(f"{learn}#{d.name}", d, repeat_of=learn) for d in repeats], note


def _run_library(name: str, run_dir: Path, repeat_of: str | None = None) -> LibrarySource:
    """The library of the completed run directory `run_dir`."""
    try:
        library = Library.from_json(read_json(run_dir / "library.json"))
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"the library of `{name}` in {run_dir} cannot be read: {exc}") from None
    return LibrarySource(name, "learn", library, str(run_dir), "completed", repeat_of)


def _module_library(reference: str, base_dir: Path, model: str) -> tuple[LibrarySource, str | None]:
    path, version = parse_reference(reference)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelMismatchWarning)
        try:
            module = load_module(base_dir / path, version, model=model)
        except ModuleError as exc:
            raise EvaluationError(f"the library {reference!r}: {exc}") from None
    warning = next((str(w.message) for w in caught if issubclass(w.category, ModelMismatchWarning)), None)
    origin = f"{path.as_posix()}@{module.version}"
    return LibrarySource(reference, "module", module.library, origin), warning


def resolve_libraries(plan: Plan, evaluate: str, *, base_dir: Path, runs_root: Path) -> tuple[list[LibrarySource], list[str]]:
    """The libraries of `compare`, in order, and notes about them: which run a learn's
    library comes from, a module learned with another model (a warning).

    `none` is the empty library, a `learn` name the library of its newest completed
    run under `runs_root`, anything else a prompt module `PATH[@VERSION]` relative to
    `base_dir`. Raises `EvaluationError` when one cannot be found.
    """
    block, _ = evaluate_block(plan, evaluate)
    sources: list[LibrarySource] = []
    notes: list[str] = []
    for name in dict.fromkeys(block.compare):
        found, note = library_sources(plan, block, name, base_dir=base_dir, runs_root=runs_root)
        sources.extend(found)
        notes.extend([note] if note else [])
    return sources, notes


def library_sources(
    plan: Plan, block: EvaluateView, name: str, *, base_dir: Path, runs_root: Path
) -> tuple[list[LibrarySource], str | None]:
    """The library (or the libraries of every repeat) `name` stands for in evaluate `block`, and a note.

    `none` is the empty library; a `learn` name the library of its newest completed
    run under `runs_root` (one per repeat when that run has repeats; `LEARN#R` names
    one of them), noted with the run it comes from; anything else a prompt module
    `PATH[@VERSION]` relative to `base_dir`, with a warning when it was learned with
    another model than the task's.
    """
    if name == "none":
        return [LibrarySource("none", "none", Library.empty())], None
    if name.partition("#")[0] in plan.names("learn"):
        sources, note = _learn_libraries(name, runs_root)
        return sources, note
    source, warning = _module_library(name, base_dir, resolve_env(plan.model(plan.task(block.task).model).name))
    return [source], f"warning: {warning}" if warning else None


def evaluate_block(plan: Plan, evaluate: str) -> tuple[EvaluateView, str]:
    """The `evaluate` block and its reward."""
    evaluates = plan.names("evaluate")
    if evaluate not in evaluates:
        raise EvaluationError(f"the program has no evaluate `{evaluate}` (its evaluates: {', '.join(evaluates) or 'none'})")
    block = plan.evaluate(evaluate)
    if block.reward is None:
        raise EvaluationError(
            f"evaluate `{evaluate}` has no reward and its compared learns do not agree on one: add `reward = NAME` to it"
        )
    return block, block.reward


# ---------------------------------------------------------------------- running


async def astart_evaluation(
    plan: Plan,
    evaluate: str,
    *,
    base_dir: Path,
    runs_root: Path,
    budget: Budget | None = None,
    stream: TextIO | None = None,
    on_start: Callable[[Path], None] | None = None,
    color: bool | None = None,
    rewards: Mapping[str, RewardFunction] | None = None,
    shared_cache: bool = True,
) -> EvaluationResult:
    """Resolve the libraries of `evaluate`, create its run directory and evaluate them
    all, in the running event loop.

    `on_start` is told the run directory as soon as it exists; warnings about the
    libraries and the progress (styled as `color` says, see `Progress`) go to
    `stream`. `rewards` are Python functions that replace the program's rewards of
    their names (recorded in run.json by name). Without `shared_cache` every call is
    paid for. Raises `EvaluationError` before anything is created when a library
    cannot be found, `RewardFunctionError` when a function replaces no reward, and
    `SandboxUnavailable` when the task's python tool cannot run here.
    """
    functions = check_reward_functions(plan.rewards(), rewards)
    sources, notes = resolve_libraries(plan, evaluate, base_dir=base_dir, runs_root=runs_root)
    Tools.of(plan.task(plan.evaluate(evaluate).task), base_dir)
    run = RunDirectory.create(
        runs_root,
        evaluate,
        plan.to_json(),
        {
            "kind": "evaluate",
            "evaluate": evaluate,
            "base_dir": str(base_dir.resolve()),
            "plan_sha256": plan.sha256,
            "budget": _budget_json(budget),
            **recorded_functions(functions),
        },
    )
    atomic_write_json(run.path / "libraries.json", {"libraries": [s.to_json() for s in sources]})
    if on_start is not None:
        on_start(run.path)
    if stream is not None:
        for note in notes:
            stream.write(f"{note}\n")
    return await _execute(run, plan, evaluate, sources, base_dir.resolve(), budget, stream, color, functions, shared_cache)


start_evaluation = blocking(astart_evaluation)


async def aresume_evaluation(
    run_dir: Path,
    *,
    stream: TextIO | None = None,
    rewards: Mapping[str, RewardFunction] | None = None,
    color: bool | None = None,
    shared_cache: bool = True,
) -> EvaluationResult:
    """Evaluate again, in `run_dir`, the libraries it recorded, in the running event loop;
    answered calls come from its record. `rewards` gives again the reward functions it
    started with."""
    run = RunDirectory(run_dir)
    if not is_evaluation_run(run_dir):
        raise EvaluationError(f"{run_dir} is not an evaluation run directory")
    info = run.info()
    plan = Plan.from_json(run.plan_path.read_text(encoding="utf-8"))
    functions = resumed_functions(plan.rewards(), rewards, info, str(run_dir))
    sources = [LibrarySource.from_json(s) for s in read_json(run.path / "libraries.json")["libraries"]]
    budget = Budget.from_json(info["budget"]) if info.get("budget") else None
    return await _execute(
        run, plan, info["evaluate"], sources, Path(info["base_dir"]), budget, stream, color, functions, shared_cache
    )


resume_evaluation = blocking(aresume_evaluation)


def is_evaluation_run(path: Path) -> bool:
    """Whether `path` is a run directory written by an evaluation."""
    try:
        return bool(read_json(path / "run.json").get("kind") == "evaluate") and (path / "libraries.json").is_file()
    except (OSError, ValueError, AttributeError):
        return False


def newest_evaluation(runs_root: Path, origins: set[Path]) -> Path | None:
    """The newest completed evaluation under `runs_root` that compared the library of a
    learning run directory in `origins` (resolved paths)."""
    found = []
    for candidate in runs_root.glob("*/*"):
        if not (candidate / "evaluation.json").is_file() or not is_evaluation_run(candidate):
            continue
        if run_status(candidate) != "completed":
            continue
        try:
            libraries = read_json(candidate / "libraries.json")["libraries"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        compared = {Path(lib["origin"]).resolve() for lib in libraries if lib.get("kind") == "learn" and lib.get("origin")}
        if compared & origins:
            found.append(candidate)
    return max(found, key=lambda path: (path.name, path.parent.name)) if found else None


def read_evaluation(run_dir: Path) -> dict[str, Any]:
    """The validated `evaluation.json` of an evaluation run directory."""
    path = run_dir / "evaluation.json"
    if not path.is_file():
        raise EvaluationError(f"{run_dir} has no evaluation.json: the evaluation did not finish (resume it with `grpo eval --resume`)")
    try:
        document = read_json(path)
    except ValueError as exc:
        raise EvaluationError(f"{path}: not JSON: {exc}") from None
    return dict(_validated(document, path))


def _budget_json(budget: Budget | None) -> dict[str, Any] | None:
    return None if budget is None else {"usd": budget.usd, "tokens": budget.tokens, "calls": budget.calls}


class _SampleCosts:
    """Passes calls through and adds up the USD of each sample's calls, cached or not, by sample key."""

    def __init__(self, call: Call, usage: Usage):
        self.call = call
        self.usage = usage
        self.usd: defaultdict[str, float] = defaultdict(float)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        response = await self.call(request)
        sample = (request.sample_key or "").rsplit("/", 1)[0]
        self.usd[sample] += self.usage.usd(request.model, response.prompt_tokens, response.completion_tokens)
        return response


def _records(name: str, results: Sequence[QuestionResult], costs: Mapping[str, float]) -> list[dict[str, Any]]:
    """One record per sample; a failed sample's reward is None."""
    return [
        {
            "library": name,
            "question": q.question,
            "sample": i,
            "reward": q.rewards[i],
            "tokens": q.tokens[i],
            "tool_calls": q.tool_calls[i],
            "cost": costs.get(f"{STAGE}/{q.question}/{i}", 0.0),
            "error": q.errors[i],
            "output": q.outputs[i],
        }
        for q in results
        for i in range(len(q.rewards))
    ]


async def _execute(
    run: RunDirectory,
    plan: Plan,
    evaluate: str,
    sources: Sequence[LibrarySource],
    base_dir: Path,
    budget: Budget | None,
    stream: TextIO | None,
    color: bool | None,
    functions: Mapping[str, RewardFunction],
    shared_cache: bool,
) -> EvaluationResult:
    block, reward = evaluate_block(plan, evaluate)
    events = EventLog(run.events_path)
    usage = usage_from_events(plan, run.events_path)
    progress = Progress(stream, title=f"eval {evaluate}", cost=lambda: usage.total_usd, budget_usd=budget.usd if budget else None, color=color)
    progress.expect(block.estimate, len(sources), usage.to_json()["by_stage"])
    sampling = Sampling.of_evaluate(plan, block, reward, base_dir)
    questions = sampling.questions
    records: list[dict[str, Any]] = []
    advice = f"Fix the cause and continue with `grpo eval --resume {run.path}`, or raise `max_failures` of evaluate `{evaluate}`."
    failures = {source.name: Failures(block.max_failures, f"library `{source.name}`", advice) for source in sources}
    sampled = False
    events.append("evaluation_started", evaluate=evaluate, libraries=[s.name for s in sources], questions=len(questions))
    async with ending_cleanly(events, f"grpo eval --resume {run.path}", (EvaluationError,)) as end:
        if not questions:
            raise EvaluationError(f"the data set `{block.data}` has no questions")
        async with (
            client_stack(plan, base_dir, run, usage, budget, events, progress, shared_cache=shared_cache) as (client, models),
            RewardScorer(plan.rewards(), base_dir=base_dir, client=client, models=models, functions=functions) as scorer,
            open_tools(sampling.task, base_dir, scorer, run, events) as tools,
        ):
            sampling = sampling.with_tools(tools)
            for number, source in enumerate(sources, 1):
                progress.unit_started(f"library {source.name}", number, f"{source.name}: {len(questions)} questions x {block.samples} samples")
                costs = _SampleCosts(client.complete, usage)
                results = await sampling.sample(
                    costs.complete,
                    scorer,
                    source.library,
                    stage=STAGE,
                    failures=(failures[source.name], "samples"),
                    on_result=lambda question: progress.rewards(question.rewards),
                )
                records.extend(_records(source.name, results, costs.usd))
                atomic_write_text(run.path / "results.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
                scored = [r for q in results for r in q.scored]
                progress.step_finished(f"{len(scored)} of {len(questions) * block.samples} samples scored")
                events.append(
                    "library_evaluated",
                    library=source.name,
                    mean=sum(scored) / len(scored) if scored else None,
                    failures=failures[source.name].of("samples"),
                )
            sampled = True
            for tally in failures.values():
                tally.check()
    progress.close()
    status, message = end.status, end.message
    atomic_write_json(run.usage_path, usage.to_json())
    libraries: tuple[LibraryResult, ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    pooled: tuple[PooledGain, ...] = ()
    if sampled and (status == "completed" or isinstance(end.error, TooManyFailures)):
        libraries, comparisons, pooled = _statistics(sources, records, block, failures)
    result = EvaluationResult(
        run.path, evaluate, status, reward, block.metrics, libraries, comparisons, usage.to_json(), message, pooled
    )
    if libraries:
        atomic_write_json(run.path / "evaluation.json", _validated(result.to_json(), run.path / "evaluation.json"))
    if status == "completed":
        _record_in_modules(result.to_json(), sources, base_dir, events, stream)
    events.append("evaluation_" + ("finished" if status == "completed" else status), message=message)
    events.close()
    run.update_info(status=status, message=message)
    return result


def _record_in_modules(
    document: Mapping[str, Any], sources: Sequence[LibrarySource], base_dir: Path, events: EventLog, stream: TextIO | None
) -> None:
    """Record the results of each compared module version in its module.json; a module that
    cannot take them is a warning, the evaluation itself stands."""
    for source in sources:
        if source.kind != "module" or source.origin is None:
            continue
        path, version = parse_reference(source.origin)
        try:
            record = evaluation_record(document, source.name, base_dir / path)
            record_evaluation(path, version or "", document["evaluate"], record, base_dir=base_dir)
        except ModuleError as exc:
            events.append("module_not_recorded", module=source.origin, message=str(exc))
            if stream is not None:
                stream.write(f"warning: the results were not recorded in {source.origin}: {exc}\n")
        else:
            events.append("module_recorded", module=source.origin)


# ---------------------------------------------------------------------- statistics


def question_scores(metric: str, summary: EvaluationSummary, rewards: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The per-question values of a reward metric (`mean`, `mean@k`, `pass@k`), by question id, in the summary's order."""
    kind, _, k = metric.partition("@")
    scores = {}
    for question in summary.questions:
        if kind == "pass":
            scores[question.question_id] = pass_at_k(question.samples, question.correct, int(k))
        elif k:
            scores[question.question_id] = mean_at_k(rewards[question.question_id], int(k))
        else:
            scores[question.question_id] = question.mean_reward
    return scores


def _statistics(
    sources: Sequence[LibrarySource], records: Sequence[Mapping[str, Any]], block: EvaluateView, failures: Mapping[str, Failures]
) -> tuple[tuple[LibraryResult, ...], tuple[Comparison, ...], tuple[PooledGain, ...]]:
    """Each library's summary over its scored samples, the paired comparisons with the
    first, and the pooled gain of each learn compared with several repeats.

    Failed samples are left out; so is, for a library, a question left with fewer
    scored samples than the largest k of the metrics. Comparisons pair the questions
    both libraries kept; a pooled gain the questions the baseline and every repeat
    kept. None when some library kept no question.
    """
    metrics = list(block.metrics)
    needed = max((int(m.partition("@")[2] or 1) for m in metrics), default=1)
    results = []
    rewards: dict[str, dict[str, list[float]]] = {}
    for source in sources:
        per_question: dict[str, list[Sample]] = defaultdict(list)
        for r in records:
            if r["library"] == source.name and r["reward"] is not None:
                per_question[r["question"]].append(Sample(r["question"], r["sample"], r["reward"], r["tokens"], r["tool_calls"], r["cost"]))
        kept = {question: samples for question, samples in per_question.items() if len(samples) >= needed}
        if not kept:
            return (), (), ()
        rewards[source.name] = {question: [sample.reward for sample in samples] for question, samples in kept.items()}
        summary = summarize_samples([s for samples in kept.values() for s in samples], metrics=metrics, seed=block.seed)
        results.append(LibraryResult(source, summary, failures[source.name].of("samples")))
    baseline = results[0]

    def scores(result: LibraryResult, metric: str) -> dict[str, float]:
        return question_scores(metric, result.summary, rewards[result.source.name])

    comparisons = []
    for candidate in results[1:]:
        for metric in metrics:
            ours, theirs = scores(candidate, metric), scores(baseline, metric)
            common = [question for question in theirs if question in ours]
            comparisons.append(
                Comparison.from_paired(
                    metric,
                    candidate.source.name,
                    baseline.source.name,
                    paired_difference([ours[q] for q in common], [theirs[q] for q in common], confidence=CONFIDENCE, seed=block.seed),
                )
            )

    def gains(repeats: Sequence[LibraryResult], metric: str) -> list[list[float]]:
        """Each repeat's score minus the baseline's, on the questions they all kept."""
        theirs = scores(baseline, metric)
        each = [scores(repeat, metric) for repeat in repeats]
        common = [question for question in theirs if all(question in ours for ours in each)]
        return [[ours[q] - theirs[q] for q in common] for ours in each]

    groups: dict[str, list[LibraryResult]] = defaultdict(list)
    for candidate in results[1:]:
        if candidate.source.repeat_of is not None:
            groups[candidate.source.repeat_of].append(candidate)
    pooled = []
    for learn, repeats in groups.items():
        for metric in metrics:
            table = gains(repeats, metric)
            if len(repeats) > 1 and table[0]:
                names = {r.source.name for r in repeats}
                pooled.append(
                    PooledGain.of_repeats(
                        metric,
                        learn,
                        baseline.source.name,
                        [c for c in comparisons if c.metric == metric and c.candidate in names],
                        crossed_bootstrap(table, confidence=CONFIDENCE, seed=block.seed),
                    )
                )
    return tuple(results), tuple(comparisons), tuple(pooled)


# ---------------------------------------------------------------------- text


_LABELS = {"tool_calls": "tool calls", "tokens": "tokens", "cost": "USD"}


def _interval(value: Mapping[str, float], signed: bool = False, digits: int = 3) -> str:
    sign = "+" if signed else ""
    return f"{value['estimate']:{sign}.{digits}f} [{value['low']:{sign}.{digits}f}, {value['high']:{sign}.{digits}f}]"


def _digits(metric: str) -> int:
    return {"tokens": 1, "tool_calls": 2, "cost": 6}.get(metric, 3)


def format_evaluation(document: Mapping[str, Any]) -> str:
    """The evaluation (`EvaluationResult.to_json()` or `evaluation.json`) as a table and sentences.

    A `failed` column appears when some library had failed samples; a comparison of
    fewer than `SMALL_SAMPLE` questions says that its sample is small.
    """
    libraries = document["libraries"]
    if not libraries:
        return f"evaluate {document['evaluate']}: {document['status']}" + (f": {document['message']}" if document.get("message") else "")
    first = libraries[0]
    confidence = round(100 * document["confidence"])
    lines = [
        f"evaluate {document['evaluate']}: {first['questions']} questions x {first['samples']} samples, "
        f"reward `{document['reward']}`, {confidence} % intervals over questions; "
        "tool calls, tokens (completion) and USD are per answer",
    ]
    names = list(first["metrics"])
    failed = any(_failed(library) for library in libraries)
    cells = [["library", *(_LABELS.get(n, n) for n in names), *(["failed"] if failed else [])]]
    for library in libraries:
        counts = library.get("failures") or {}
        shown = [f"{counts.get('failed', 0)}/{counts.get('attempted', 0)}"] if failed else []
        cells.append([library["name"], *(_interval(library["metrics"][n], digits=_digits(n)) for n in names), *shown])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines += ["", *("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)]
    for library in libraries:
        if library["kind"] != "none":
            where = f" ({library['status']})" if library.get("status") not in (None, "completed") else ""
            demos = f" and {library['demos']} demos" if library.get("demos") else ""
            lines.append(f"  {library['name']}: {library['experiences']} experiences{demos} from {library['origin']}{where}")
    for library in libraries:
        if _failed(library):
            causes = "; ".join(f"{n} x {cause}" for cause, n in library["failures"]["causes"].items())
            lines.append(f"  {library['name']}: {library['failures']['failed']} failed samples, left out of the numbers: {causes}")
    for comparison in document["comparisons"]:
        lines += ["", _sentence(comparison, confidence)]
    for pooled in document.get("pooled", ()):
        lines += ["", _pooled_sentence(pooled, confidence)]
    return "\n".join(lines) + "\n"


def _pooled_sentence(pooled: Mapping[str, Any], confidence: int) -> str:
    learn, baseline, gains = pooled["learn"], pooled["baseline"], pooled["gains"]
    difference = {"estimate": pooled["difference"], "low": pooled["low"], "high": pooled["high"]}
    listed = ", ".join(f"{g:+.3f}" for g in gains)
    return (
        f"{learn} ({len(gains)} repeats) - {baseline} on {pooled['metric']}: {_interval(difference, signed=True)} "
        f"over repeats and questions; the repeats' gains: {listed}\n"
        f"  {pooled['beat']} of {len(gains)} repeats score higher than {baseline}, "
        f"{pooled['beat_beyond_noise']} beyond noise at {confidence} %"
    )


def _failed(library: Mapping[str, Any]) -> int:
    return int((library.get("failures") or {}).get("failed", 0))


def _sentence(comparison: Mapping[str, Any], confidence: int) -> str:
    """The comparison and its one verdict: the interval excludes zero exactly when p < 1 − confidence."""
    candidate, baseline, metric = comparison["candidate"], comparison["baseline"], comparison["metric"]
    difference = {"estimate": comparison["difference"], "low": comparison["low"], "high": comparison["high"]}
    questions = comparison["better"] + comparison["worse"] + comparison["ties"]
    head = (
        f"{candidate} - {baseline} on {metric}: {_interval(difference, signed=True)}, p = {comparison['p_value']:.3g} "
        f"(better on {comparison['better']} questions, worse on {comparison['worse']}, tied on {comparison['ties']})"
    )
    if comparison["low"] <= 0.0 <= comparison["high"]:
        verdict = f"no evidence of a difference at {confidence} % (the interval includes zero)"
    else:
        direction = "higher" if comparison["difference"] > 0 else "lower"
        verdict = f"{candidate} scores {direction} than {baseline} at {confidence} % (the interval excludes zero)"
    small = (
        f"\n  the sample is small ({questions} questions, under {SMALL_SAMPLE}): the interval is wide and a few questions decide it"
        if questions < SMALL_SAMPLE
        else ""
    )
    return f"{head}\n  {verdict}{small}"
