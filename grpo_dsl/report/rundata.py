"""Read a run directory into the report's data: the steps, the costs, an evaluation and an ablation.

`read_run(run_dir)` reads a learning run (`runs/<learn>/<run-id>/`): per completed
step its `rewards.json` (groups, kept or skipped, rewards), `report.json` (operations
applied and rejected) and `library.json`, and the run's `usage.json` by stage. An
evaluation run directory (`runs/<evaluate>/<run-id>/`) gives a report with only its
evaluation and its costs.

The evaluation shown with a learning run is the one given, or else the newest
completed evaluation run under the same runs folder that compared this run's
library (`find_evaluation`); the ablation likewise, the newest that ablated this
run's library (`find_ablation`). An ablation run directory gives a report with only
its ablation and its costs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from statistics import fmean
from typing import Any

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import read_json
from grpo_dsl.evaluation.ablation import STAGE as ABLATE_STAGE
from grpo_dsl.evaluation.ablation import AblationError, is_ablation_run, read_ablation
from grpo_dsl.evaluation.evaluate import (
    STAGE,
    EvaluationError,
    is_evaluation_run,
    newest_evaluation,
    read_evaluation,
)
from grpo_dsl.evaluation.results import Comparison, EvaluationData, LibraryEvaluation, PooledGain
from grpo_dsl.evaluation.stats import bootstrap_ci
from grpo_dsl.library import Library
from grpo_dsl.plan import Plan, PlanError
from grpo_dsl.report.data import (
    AblationData,
    Answer,
    ExperienceChange,
    GateData,
    GroupData,
    ItemData,
    LibraryAnswers,
    Proposal,
    QuestionAnswers,
    RejectedOperation,
    ReportData,
    StageCost,
    StepData,
    library_changes,
)
from grpo_dsl.runs.directory import RunDirectory, read_events
from grpo_dsl.runs.repeats import is_repeated_run, repeat_dir, runs_root_of

__all__ = [
    "RunDataError",
    "STEP_RESAMPLES",
    "ablation_data",
    "evaluation_answers",
    "evaluation_data",
    "find_ablation",
    "find_evaluation",
    "read_run",
]

STEP_RESAMPLES = 2000
"""Bootstrap resamples of each step's reward interval (the band of the reward plot)."""


class RunDataError(GrpoError, ValueError):
    """A folder that is not a readable run directory; the message names the file."""


def _read(path: Path) -> Any:
    try:
        return read_json(path)
    except FileNotFoundError:
        raise RunDataError(f"{path} is missing") from None
    except ValueError as exc:
        raise RunDataError(f"{path} is not valid JSON: {exc}") from None


def _contents(library: Library) -> dict[str, str]:
    return {e.id: e.text for e in library.experiences}


def _library(path: Path) -> Library:
    document = _read(path)
    try:
        return Library.from_json(document)
    except ValueError as exc:
        raise RunDataError(f"{path}: not a library: {exc}") from None


def _prompt(messages: Any) -> str:
    """The last user turn of a rollout's messages: the question as the model saw it."""
    users = [m.get("content") for m in messages or () if isinstance(m, Mapping) and m.get("role") == "user"]
    return str(users[-1]) if users and users[-1] is not None else ""


def _operation(op: Mapping[str, Any]) -> tuple[str, str]:
    """An operation's kind and its text (or the id it deletes)."""
    return str(op.get("op", "")), str(op.get("text") or op.get("id") or "")


def _groups(run: RunDirectory, step: int, groups: list[Any]) -> tuple[GroupData, ...]:
    """Each group of the step with its rollouts, rewards, summaries and proposals."""
    folder = run.step_dir(step)
    rollouts = {g["group"]: g for g in _read(folder / "rollouts.json")}
    summaries = {g["group"]: g["summaries"] for g in _read(folder / "summaries.json")}
    proposals = {g["group"]: g for g in _read(folder / "proposals.json")}
    details = []
    for group in groups:
        name = group["group"]
        recorded = rollouts.get(name, {})
        answers = tuple(
            Answer(int(r["index"]), reward, str(r.get("output") or ""), r.get("error") or error)
            for r, reward, error in zip(recorded.get("rollouts", ()), group["rewards"], group.get("errors") or [None] * len(group["rewards"]))
        )
        proposed = proposals.get(name, {})
        details.append(
            GroupData(
                group=name,
                question=str(recorded.get("question", name)),
                prompt=_prompt(recorded.get("messages")),
                kept=bool(group["kept"]),
                skip_reason=group.get("skip_reason"),
                answers=answers,
                summaries=tuple(str(text) for text in summaries.get(name, ()) if text is not None),
                proposals=tuple(Proposal(*_operation(op), str(op.get("rationale") or "")) for op in proposed.get("operations", ())),
                error=proposed.get("error"),
            )
        )
    return tuple(details)


def _rejected(report: Mapping[str, Any], events: list[dict[str, Any]], step: int) -> tuple[RejectedOperation, ...]:
    """The operations rejected in a step: by the learner's checks (the event log), then by the policy (report.json)."""
    checked = [(e["op"], e.get("reason"), [e["group"]] if e.get("group") else []) for e in events if e["event"] == "operation_rejected" and e.get("step") == step]
    applied = [(o["op"], o["reason"], o["op"].get("source", {}).get("groups", [])) for o in report["rejected"]]
    return tuple(RejectedOperation(*_operation(op), str(reason or "rejected"), tuple(groups)) for op, reason, groups in checked + applied)


def _gate(decision: str | None, events: list[dict[str, Any]], step: int) -> GateData | None:
    """The gate of a step: the decision of report.json with the comparison its event recorded."""
    if decision not in ("accepted", "rejected"):
        return None
    recorded = next((e.get("result") or {} for e in reversed(events) if e["event"] == "gate" and e.get("step") == step), {})
    return GateData.from_json({"decision": decision, **recorded})


def _step(run: RunDirectory, step: int, before: Library | None, after: Library, events: list[dict[str, Any]]) -> StepData:
    groups = _read(run.step_dir(step) / "rewards.json")
    report = _read(run.step_dir(step) / "report.json")
    scored = [[r for r in g["rewards"] if r is not None] for g in groups]
    group_means = [fmean(rewards) for rewards in scored if rewards]
    rewards = [r for group in scored for r in group]
    band = bootstrap_ci(group_means, resamples=STEP_RESAMPLES, seed=step) if group_means else None
    changes: tuple[ExperienceChange, ...] = library_changes(_contents(before), _contents(after)) if before is not None else ()
    return StepData(
        step=step,
        reward_mean=fmean(rewards) if rewards else 0.0,
        groups_kept=sum(1 for g in groups if g["kept"]),
        groups_skipped=sum(1 for g in groups if not g["kept"]),
        ops_applied=len(report["applied"]),
        ops_rejected=len(report["rejected"]),
        library_size=len(after.experiences),
        reward_low=band.low if band else None,
        reward_high=band.high if band else None,
        changes=changes,
        groups=_groups(run, step, groups),
        rejected=_rejected(report, events, step),
        gate=_gate(report.get("gate"), events, step),
    )


def _costs(usage: Mapping[str, Any], *, within: str | None = None) -> list[StageCost]:
    """The costs by stage of `usage`; those of an evaluation or an ablation shown with a learning
    run carry the stage of that run (`within`) in their name, e.g. `judge (evaluate)`."""
    return [
        StageCost(
            stage=f"{stage} ({within})" if within and stage != within else stage,
            calls=int(tally["calls"]),
            usd=float(tally["usd"]),
            input_tokens=int(tally["prompt_tokens"]),
            output_tokens=int(tally["completion_tokens"]),
        )
        for stage, tally in sorted((usage.get("by_stage") or {}).items())
    ]


def evaluation_data(evaluation_dir: Path) -> tuple[EvaluationData, dict[str, Any]]:
    """The evaluation of an evaluation run directory as the report shows it, and its `evaluation.json`."""
    try:
        document = read_evaluation(evaluation_dir)
    except EvaluationError as exc:
        raise RunDataError(str(exc)) from None
    data = EvaluationData(
        libraries=tuple(LibraryEvaluation.from_json(library) for library in document["libraries"]),
        comparisons=tuple(Comparison.from_json(c) for c in document["comparisons"]),
        confidence=float(document["confidence"]),
        pooled=tuple(PooledGain.from_json(p) for p in document.get("pooled", ())),
    )
    return data, document


def evaluation_answers(evaluation_dir: Path) -> tuple[QuestionAnswers, ...]:
    """Every answer of an evaluation run (its `results.jsonl`), question by question, in the
    order of the questions and of the compared libraries."""
    questions: dict[str, dict[str, list[Answer]]] = {}
    path = evaluation_dir / "results.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else ():
        try:
            row = json.loads(line)
            answer = Answer(int(row["sample"]), row["reward"], str(row.get("output") or ""), row.get("error"))
            questions.setdefault(str(row["question"]), {}).setdefault(str(row["library"]), []).append(answer)
        except (ValueError, KeyError, TypeError) as exc:
            raise RunDataError(f"{path}: a line is not a result: {exc}") from None
    return tuple(
        QuestionAnswers(question, tuple(LibraryAnswers(library, tuple(answers)) for library, answers in libraries.items()))
        for question, libraries in questions.items()
    )


def find_evaluation(run_dir: Path) -> Path | None:
    """The newest completed evaluation under the runs folder of `run_dir` that compared its library."""
    return newest_evaluation(runs_root_of(run_dir.resolve()), {run_dir.resolve()})


def ablation_data(ablation_dir: Path) -> AblationData:
    """The ablation of an ablation run directory as the report shows it."""
    try:
        document = read_ablation(ablation_dir)
    except AblationError as exc:
        raise RunDataError(str(exc)) from None
    full = document["full"]
    return AblationData(
        evaluate=document["evaluate"],
        library=document["library"]["name"],
        method=document["method"],
        exact=document["exact"],
        questions=document["questions"],
        samples=document["samples"],
        items=tuple(ItemData.from_json(item) for item in document["items"]),
        confidence=float(document["confidence"]),
        full=(full["estimate"], full["low"], full["high"]) if full else None,
    )


def find_ablation(run_dir: Path) -> Path | None:
    """The newest completed ablation under the runs folder of `run_dir` of its library."""
    origin = run_dir.resolve()
    found = [
        candidate
        for candidate in runs_root_of(origin).glob("*/*")
        if (candidate / "ablation.json").is_file()
        and is_ablation_run(candidate)
        and _ablated_origin(candidate) == origin
    ]
    return max(found, key=lambda path: (path.name, path.parent.name)) if found else None


def _ablated_origin(ablation_dir: Path) -> Path | None:
    try:
        source = read_json(ablation_dir / "library.json")
    except (OSError, ValueError):
        return None
    origin = source.get("origin") if isinstance(source, dict) and source.get("kind") == "learn" else None
    return Path(origin).resolve() if origin else None


def read_run(
    run_dir: Path, *, evaluation_dir: Path | None = None, ablation_dir: Path | None = None, find: bool = True
) -> ReportData:
    """The report data of a learning, evaluation or ablation run directory.

    For a learning run, the evaluation is the one of `evaluation_dir`, or (when
    `find`) the one `find_evaluation` finds, or none; the ablation likewise
    (`ablation_dir`, `find_ablation`). Raises `RunDataError`.
    """
    run = RunDirectory(run_dir)
    if not run.info_path.is_file():
        raise RunDataError(f"{run_dir} is not a run directory: it has no run.json")
    info = _read(run.info_path)
    usage = _read(run.usage_path) if run.usage_path.is_file() else {}
    subtitle = f"{run_dir} · {info.get('status', 'unknown')}"
    if is_evaluation_run(run_dir):
        alone, document = evaluation_data(run_dir)
        return ReportData(
            title=f"evaluate {document['evaluate']}",
            subtitle=subtitle,
            costs=tuple(_costs(usage)),
            evaluation=alone,
            questions=evaluation_answers(run_dir),
        )
    if is_ablation_run(run_dir):
        measured = ablation_data(run_dir)
        return ReportData(title=f"ablate {measured.evaluate}", subtitle=subtitle, costs=tuple(_costs(usage)), ablation=measured)
    if is_repeated_run(run_dir):
        raise RunDataError(f"{run_dir} is a run with repeats: report one of them, e.g. {repeat_dir(run_dir, 1)}")
    if "learn" not in info:
        raise RunDataError(f"{run.info_path} names neither a learn nor an evaluate")
    try:
        plan = Plan.from_json(run.plan_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, PlanError) as exc:
        raise RunDataError(f"{run.plan_path}: {exc}") from None
    before: Library | None = None if plan.learn(info["learn"]).init else Library.empty()
    steps = []
    events = read_events(run.events_path)
    for step in run.completed_steps():
        after = _library(run.step_dir(step) / "library.json")
        try:
            steps.append(_step(run, step, before, after, events))
        except (KeyError, TypeError) as exc:
            raise RunDataError(f"{run.step_dir(step)}: a step file lacks {exc}") from None
        before = after
    costs = _costs(usage)
    evaluation = None
    questions: tuple[QuestionAnswers, ...] = ()
    chosen = evaluation_dir if evaluation_dir is not None else (find_evaluation(run_dir) if find else None)
    if chosen is not None:
        evaluation, _ = evaluation_data(chosen)
        questions = evaluation_answers(chosen)
        costs += _costs(_read(chosen / "usage.json") if (chosen / "usage.json").is_file() else {}, within=STAGE)
        subtitle += f" · evaluation {chosen}"
    ablation: AblationData | None = None
    ablated = ablation_dir if ablation_dir is not None else (find_ablation(run_dir) if find else None)
    if ablated is not None:
        ablation = ablation_data(ablated)
        costs += _costs(_read(ablated / "usage.json") if (ablated / "usage.json").is_file() else {}, within=ABLATE_STAGE)
        subtitle += f" · ablation {ablated}"
    return ReportData(
        title=str(info["learn"]),
        subtitle=subtitle,
        steps=tuple(steps),
        costs=tuple(costs),
        evaluation=evaluation,
        questions=questions,
        ablation=ablation,
    )
