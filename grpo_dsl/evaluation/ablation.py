"""`grpo ablate`: what each lesson and demo of a library is worth, on an `evaluate` block's questions.

`start_ablation(plan, "date_eval", library="date_lessons", ...)` scores subsets of one
library (`evaluation.utility`: leave-one-out or Shapley, as the block's `ablate`
says) on the block's data: `samples` answers per question at the task's temperature,
scored with the block's reward. Every subset is sampled with the seeds and sample
keys of `grpo eval` (`sample_library(..., keys="evaluate")`), so the full library is
asked exactly what the evaluation asks, and all subsets are paired. It writes

```
runs/<evaluate>/<run-id>/
  plan.json  run.json  events.jsonl  usage.json   as for an evaluation; run.json has "kind": "ablate"
  library.json     the library ablated, with its name, kind and origin
  ablation.json    grpo-ablation/1: each item's utility, interval and verdict; each subset's score
```

Calls are counted under the stage `ablate`, and cached in the shared response cache
under the `ablation` purpose, so a subset scored before (by another permutation, or
by an earlier ablation) costs nothing, and an ablation run again is answered
entirely from it.
When the ablated library is a prompt module, its results are recorded in that
version's `module.json` and README under the evaluate's name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TextIO

import jsonschema

from grpo_dsl.clients.accounting import Budget
from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import atomic_write_json, read_json
from grpo_dsl.core.tasks import gather_tasks
from grpo_dsl.evaluation.evaluate import (
    CONFIDENCE,
    FAILURES_SCHEMA,
    INTERVAL_SCHEMA,
    STAGE as EVALUATE_STAGE,
    LibrarySource,
    evaluate_block,
    library_sources,
)
from grpo_dsl.evaluation.sampling import QuestionResult, Sampling
from grpo_dsl.evaluation.stats import Interval, bootstrap_ci
from grpo_dsl.evaluation.utility import Design, Method, Scores, Utility, UtilityError, design, utilities
from grpo_dsl.library import Library
from grpo_dsl.modules import ModuleError, ablation_record, parse_reference, record_ablation
from grpo_dsl.plan import Plan
from grpo_dsl.rewards.scorer import RewardScorer
from grpo_dsl.rollout.answer import Call
from grpo_dsl.rollout.tools import open_tools
from grpo_dsl.runs.directory import EventLog, RunDirectory
from grpo_dsl.runs.failures import Failures
from grpo_dsl.runs.progress import Progress
from grpo_dsl.runs.session import client_stack, ending_cleanly, usage_from_events

__all__ = [
    "ABLATION_SCHEMA",
    "AblationError",
    "AblationResult",
    "ItemUtility",
    "STAGE",
    "format_ablation",
    "is_ablation_run",
    "read_ablation",
    "start_ablation",
]

STAGE = "ablate"
"""The stage every call of an ablation is counted under."""

ItemKind = Literal["lesson", "demo"]


class AblationError(GrpoError):
    """An ablation that cannot start: no library to ablate, one that cannot be found, or too few `subsets`."""


@dataclass(frozen=True, slots=True)
class ItemUtility:
    """One lesson or demo of the ablated library, with its utility."""

    kind: ItemKind
    text: str
    utility: Utility

    def to_json(self) -> dict[str, Any]:
        return {**self.utility.to_json(), "kind": self.kind, "text": self.text}


@dataclass(frozen=True, slots=True)
class AblationResult:
    """How an ablation ended (`status`: completed, stopped, interrupted, failed) and what it found.

    `items` and `scores` are empty unless every subset was scored. `questions` are those
    where every subset has a scored sample: the utilities pair them.
    """

    run_dir: Path
    evaluate: str
    status: str
    source: LibrarySource
    design: Design
    max_subsets: int
    reward: str
    data: str
    questions: tuple[str, ...]
    samples: int
    seed: int
    scores: Scores
    items: tuple[ItemUtility, ...]
    usage: Mapping[str, Any]
    failures: Mapping[str, Any]
    """`{"attempted", "failed", "causes": {cause: count}}` of the samples of every subset."""
    message: str | None = None

    def _interval(self, subset: frozenset[str]) -> Interval | None:
        values = self.scores.get(subset)
        return bootstrap_ci(values, confidence=CONFIDENCE, seed=self.seed) if values else None

    def to_json(self) -> dict[str, Any]:
        """The document `ablation.json` holds (grpo-ablation/1)."""
        full, empty = self._interval(frozenset(self.design.items)), self._interval(frozenset())
        library = self.source.library
        return {
            "schema": "grpo-ablation/1",
            "evaluate": self.evaluate,
            "run_dir": str(self.run_dir),
            "status": self.status,
            "message": self.message,
            "method": self.design.method,
            "exact": self.design.exact,
            "permutations": len(self.design.permutations),
            "max_subsets": self.max_subsets,
            "library": {
                "name": self.source.name,
                "kind": self.source.kind,
                "origin": self.source.origin,
                "content_hash": library.content_hash(),
                "lessons": len(library.experiences),
                "demos": len(library.demos),
            },
            "reward": self.reward,
            "data": self.data,
            "metric": "mean",
            "confidence": CONFIDENCE,
            "questions": len(self.questions),
            "samples": self.samples,
            "full": full.to_json() if full else None,
            "empty": empty.to_json() if empty else None,
            "items": [item.to_json() for item in self.items],
            "subsets": [
                {"items": [i for i in self.design.items if i in subset], "scores": list(self.scores[subset])}
                for subset in self.design.subsets
                if subset in self.scores
            ],
            "failures": dict(self.failures),
            "usage": dict(self.usage),
        }


_OPTIONAL_INTERVAL = {"oneOf": [INTERVAL_SCHEMA, {"type": "null"}]}
ABLATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "grpo-ablation/1",
    "type": "object",
    "required": [
        "schema", "evaluate", "status", "method", "exact", "permutations", "max_subsets", "library", "reward", "data",
        "metric", "confidence", "questions", "samples", "full", "empty", "items", "subsets", "failures", "usage",
    ],
    "properties": {
        "schema": {"const": "grpo-ablation/1"},
        "evaluate": {"type": "string"},
        "status": {"enum": ["completed", "stopped", "interrupted", "failed"]},
        "method": {"enum": ["loo", "shapley"]},
        "exact": {"type": "boolean"},
        "permutations": {"type": "integer", "minimum": 0},
        "max_subsets": {"type": "integer", "minimum": 1},
        "library": {
            "type": "object",
            "required": ["name", "kind", "origin", "content_hash", "lessons", "demos"],
            "properties": {"kind": {"enum": ["learn", "module"]}},
        },
        "confidence": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "questions": {"type": "integer", "minimum": 1},
        "samples": {"type": "integer", "minimum": 1},
        "full": _OPTIONAL_INTERVAL,
        "empty": _OPTIONAL_INTERVAL,
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "kind", "text", "estimate", "low", "high", "p_value", "verdict"],
                "properties": {
                    "kind": {"enum": ["lesson", "demo"]},
                    "p_value": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                    "verdict": {"enum": ["helps", "hurts", "no evidence"]},
                },
            },
        },
        "subsets": {
            "type": "array",
            "items": {"type": "object", "required": ["items", "scores"]},
        },
        "failures": FAILURES_SCHEMA,
        "usage": {"type": "object"},
    },
}


def _validated(document: Any, where: Path) -> dict[str, Any]:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(ABLATION_SCHEMA).iter_errors(document))
    if error is not None:
        place = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise AblationError(f"{where}: not an ablation (grpo-ablation/1) at {place}: {error.message}")
    return dict(document)


def read_ablation(run_dir: Path) -> dict[str, Any]:
    """The validated `ablation.json` of an ablation run directory."""
    path = run_dir / "ablation.json"
    if not path.is_file():
        raise AblationError(f"{run_dir} has no ablation.json: the ablation did not finish (run it again: the cache keeps every answer)")
    try:
        return _validated(read_json(path), path)
    except ValueError as exc:
        raise AblationError(f"{path}: not JSON: {exc}") from None


def is_ablation_run(path: Path) -> bool:
    """Whether `path` is a run directory written by an ablation."""
    try:
        return bool(read_json(path / "run.json").get("kind") == "ablate")
    except (OSError, ValueError, AttributeError):
        return False


# ---------------------------------------------------------------------- the library


def _chosen(plan: Plan, evaluate: str, library: str | None, *, base_dir: Path, runs_root: Path) -> tuple[LibrarySource, str | None]:
    """The library to ablate: `library`, or the only library but `none` that the block compares."""
    block, _ = evaluate_block(plan, evaluate)
    if library is None:
        compared = [name for name in dict.fromkeys(block.compare) if name != "none"]
        if len(compared) != 1:
            listed = ", ".join(f"`{name}`" for name in compared) or "no library but `none`"
            raise AblationError(f"evaluate `{evaluate}` compares {listed}: choose the library to ablate with --library")
        library = compared[0]
    if library == "none":
        raise AblationError("`none` is the empty library: there is nothing in it to ablate")
    sources, note = library_sources(plan, block, library, base_dir=base_dir, runs_root=runs_root)
    if len(sources) > 1:
        names = ", ".join(s.name for s in sources)
        raise AblationError(f"the newest completed run of `{library}` has {len(sources)} repeats ({names}): ablate one of them with --library")
    source = sources[0]
    if not source.library.experiences and not source.library.demos:
        raise AblationError(f"the library `{source.name}` holds no lesson and no demo: there is nothing to ablate")
    return source, note


def items_of(library: Library) -> tuple[tuple[str, ItemKind, str], ...]:
    """The items of a library, lessons then demos, as (id, kind, text); a demo's text is its listing."""
    found: list[tuple[str, ItemKind, str]] = [(e.id, "lesson", e.text) for e in library.experiences]
    found += [(d.id, "demo", d.listing()) for d in library.demos]
    return tuple(found)


def subset_library(library: Library, keep: frozenset[str]) -> Library:
    """The library with only the lessons and demos whose ids are in `keep`, in its order."""
    return replace(
        library,
        experiences=tuple(e for e in library.experiences if e.id in keep),
        demos=tuple(d for d in library.demos if d.id in keep),
    )


def paired_means(sampled: Mapping[frozenset[str], Sequence[QuestionResult]]) -> tuple[dict[frozenset[str], list[float]], tuple[str, ...]]:
    """Each subset's mean reward per question, on the questions where every subset has a
    scored sample (a failed sample is left out, never scored 0), and those questions."""
    means = {subset: {q.question: q.mean for q in results} for subset, results in sampled.items()}
    first = next(iter(sampled.values()), [])
    kept = tuple(q.question for q in first if all(m[q.question] is not None for m in means.values()))
    return {subset: [v for q in kept if (v := m[q]) is not None] for subset, m in means.items()}, kept


async def sample_subsets(
    sampling: Sampling,
    call: Call,
    scorer: RewardScorer,
    library: Library,
    subsets: Sequence[frozenset[str]],
    *,
    stage: str,
    keys: str,
    failures: tuple[Failures, str],
) -> dict[frozenset[str], list[QuestionResult]]:
    """Sample the library with only each subset of its items, all at once, counting failed samples in `failures`."""
    sampled = await gather_tasks(
        *(sampling.sample(call, scorer, subset_library(library, subset), stage=stage, keys=keys, failures=failures) for subset in subsets)
    )
    return dict(zip(subsets, sampled))


# ---------------------------------------------------------------------- running


def start_ablation(
    plan: Plan,
    evaluate: str,
    *,
    library: str | None = None,
    base_dir: Path,
    runs_root: Path,
    budget: Budget | None = None,
    stream: TextIO | None = None,
    on_start: Callable[[Path], None] | None = None,
    color: bool | None = None,
    shared_cache: bool = True,
) -> AblationResult:
    """Ablate `library` (a learn name, `LEARN#R`, or a module `PATH@VERSION`; default: the only
    library the block compares besides `none`) on evaluate `evaluate`'s questions.
    Without `shared_cache` every call is paid for.

    Raises `AblationError` before anything is created when the library cannot be
    found or the block's `subsets` cannot hold one Shapley permutation, and
    `SandboxUnavailable` when the task's python tool cannot run here. Notes and the
    progress (styled as `color` says, see `Progress`) go to `stream`.
    """
    source, note = _chosen(plan, evaluate, library, base_dir=base_dir, runs_root=runs_root)
    block, reward = evaluate_block(plan, evaluate)
    sampling = Sampling.of_evaluate(plan, block, reward, base_dir.resolve())
    method: Method = block.ablate
    try:
        chosen = design(method, [item for item, _, _ in items_of(source.library)], budget=block.subsets, seed=block.seed)
    except UtilityError as exc:
        raise AblationError(str(exc)) from None
    run = RunDirectory.create(
        runs_root,
        evaluate,
        plan.to_json(),
        {
            "kind": "ablate",
            "evaluate": evaluate,
            "library": source.name,
            "method": method,
            "base_dir": str(base_dir.resolve()),
            "plan_sha256": plan.sha256,
        },
    )
    atomic_write_json(run.path / "library.json", source.to_json())
    if on_start is not None:
        on_start(run.path)
    if stream is not None and note:
        stream.write(f"{note}\n")
    return asyncio.run(_execute(run, plan, evaluate, sampling, source, chosen, base_dir.resolve(), shared_cache, budget, stream, color))


async def _execute(
    run: RunDirectory,
    plan: Plan,
    evaluate: str,
    sampling: Sampling,
    source: LibrarySource,
    chosen: Design,
    base_dir: Path,
    shared_cache: bool,
    budget: Budget | None,
    stream: TextIO | None,
    color: bool | None,
) -> AblationResult:
    block, reward = evaluate_block(plan, evaluate)
    questions = sampling.questions
    events = EventLog(run.events_path)
    usage = usage_from_events(plan, run.events_path)
    progress = Progress(stream, title=f"ablate {evaluate}", cost=lambda: usage.total_usd, budget_usd=budget.usd if budget else None, color=color)
    scores: dict[frozenset[str], list[float]] = {}
    kept: tuple[str, ...] = ()
    advice = f"Fix the cause and run the ablation again (the cache keeps every answer), or raise `max_failures` of evaluate `{evaluate}`."
    failures = Failures(block.max_failures, f"the ablation of `{source.name}`", advice)
    events.append("ablation_started", library=source.name, method=chosen.method, subsets=len(chosen.subsets), questions=len(questions))
    async with ending_cleanly(events, None, (AblationError,)) as end:
        if not questions:
            raise AblationError(f"the data set `{block.data}` has no questions")
        failures.expect("samples", len(chosen.subsets) * len(questions) * block.samples)
        async with (
            client_stack(plan, base_dir, run, usage, budget, events, progress, shared_cache=shared_cache) as (client, models),
            RewardScorer(plan.rewards(), base_dir=base_dir, client=client, models=models) as scorer,
            open_tools(sampling.task, base_dir, scorer, run, events) as tools,
        ):
            progress.message(
                f"{source.name}: {len(chosen.subsets)} libraries x {len(questions)} questions x {block.samples} samples"
            )
            sampled = await sample_subsets(
                sampling.with_tools(tools),
                client.complete,
                scorer,
                source.library,
                chosen.subsets,
                stage=STAGE,
                keys=EVALUATE_STAGE,
                failures=(failures, "samples"),
            )
            failures.check()
            scores, kept = paired_means(sampled)
            for subset in chosen.subsets:
                scored = [r for q in sampled[subset] for r in q.scored]
                events.append("subset_scored", items=sorted(subset), mean=sum(scored) / len(scored) if scored else None)
            if not kept:
                causes = "; ".join(f"{n} x {cause}" for cause, n in failures.of("samples")["causes"].items())
                raise AblationError(f"no question of `{block.data}` has a scored sample under every subset: {causes}")
    progress.close()
    items: tuple[ItemUtility, ...] = ()
    if end.status == "completed":
        found = utilities(chosen, scores, confidence=CONFIDENCE, seed=block.seed)
        kinds = {item: (kind, text) for item, kind, text in items_of(source.library)}
        items = tuple(ItemUtility(*kinds[u.item], u) for u in found)
    result = AblationResult(
        run.path,
        evaluate,
        end.status,
        source,
        chosen,
        block.subsets,
        reward,
        block.data,
        kept,
        block.samples,
        block.seed,
        scores if end.status == "completed" else {},
        items,
        usage.to_json(),
        failures.of("samples"),
        end.message,
    )
    atomic_write_json(run.usage_path, usage.to_json())
    if end.status == "completed":
        document = _validated(result.to_json(), run.path / "ablation.json")
        atomic_write_json(run.path / "ablation.json", document)
        _record_in_module(document, source, base_dir, events, stream)
    events.append("ablation_" + ("finished" if end.status == "completed" else end.status), message=end.message)
    events.close()
    run.update_info(status=end.status, message=end.message)
    return result


def _record_in_module(document: Mapping[str, Any], source: LibrarySource, base_dir: Path, events: EventLog, stream: TextIO | None) -> None:
    """Record the results in the module version ablated; a module that cannot take them is a warning."""
    if source.kind != "module" or source.origin is None:
        return
    path, version = parse_reference(source.origin)
    try:
        record_ablation(path, version or "", document["evaluate"], ablation_record(document, base_dir / path), base_dir=base_dir)
    except ModuleError as exc:
        events.append("module_not_recorded", module=source.origin, message=str(exc))
        if stream is not None:
            stream.write(f"warning: the ablation was not recorded in {source.origin}: {exc}\n")
    else:
        events.append("module_recorded", module=source.origin)


# ---------------------------------------------------------------------- text


def _signed(value: Mapping[str, float] | None) -> str:
    if value is None:
        return "-"
    return f"{value['estimate']:+.3f} [{value['low']:+.3f}, {value['high']:+.3f}]"


def _plain(value: Mapping[str, float]) -> str:
    return f"{value['estimate']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def format_ablation(document: Mapping[str, Any]) -> str:
    """The ablation (`AblationResult.to_json()` or `ablation.json`) as a table with a summary."""
    library = document["library"]
    head = f"ablate {document['evaluate']}"
    if not document["items"]:
        return f"{head}: {document['status']}" + (f": {document['message']}" if document.get("message") else "") + "\n"
    confidence = round(100 * document["confidence"])
    scored = len(document["subsets"])
    if document["method"] == "loo":
        how = f"leave-one-out, {scored} libraries scored: the full one and each without one item"
        meaning = "utility = the full library's mean reward minus the library's without the item"
    else:
        how = f"Shapley values, exact over all {scored} subsets" if document["exact"] else (
            f"Shapley values, sampled: {document['permutations']} permutations, {scored} of at most {document['max_subsets']} subsets"
        )
        meaning = "utility = the item's mean marginal gain over the orders in which the items can be added"
    lessons = f"{library['lessons']} lesson{'' if library['lessons'] == 1 else 's'}"
    demos = f"{library['demos']} demo{'' if library['demos'] == 1 else 's'}"
    lines = [
        f"{head}: {library['name']} ({lessons}, {demos}) on `{document['data']}`, "
        f"{document['questions']} questions x {document['samples']} samples, reward `{document['reward']}`",
        f"  {how}; {meaning}; {confidence} % intervals over questions",
        f"  full library: mean {_plain(document['full'])}"
        + (f"; empty library: mean {_plain(document['empty'])}" if document["empty"] else ""),
        "",
    ]
    cells = [["item", "kind", "utility", "p", "verdict", "text"]]
    for item in document["items"]:
        p_value = f"{item['p_value']:.3g}" if item["p_value"] is not None else "-"
        cells.append([item["id"], item["kind"], _signed(item), p_value, item["verdict"], item["text"]])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    lines += ["  ".join([*(c.ljust(w) for c, w in zip(row, widths)), row[-1]]).rstrip() for row in cells]
    counts = document["failures"]
    if counts["failed"]:
        causes = "; ".join(f"{n} x {cause}" for cause, n in counts["causes"].items())
        lines.append(f"  {counts['failed']} of {counts['attempted']} samples failed, left out of the numbers: {causes}")
    verdicts = [item["verdict"] for item in document["items"]]
    lines += [
        "",
        f"{verdicts.count('helps')} helps, {verdicts.count('hurts')} hurts, {verdicts.count('no evidence')} without evidence"
        f" either way at {confidence} %",
    ]
    if document["method"] == "shapley" and document["full"] and document["empty"]:
        total = sum(item["estimate"] for item in document["items"])
        lines.append(f"the utilities add up to {total:+.3f}, the full library's mean minus the empty library's")
    return "\n".join(lines) + "\n"
