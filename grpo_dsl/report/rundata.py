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
    ExperienceChange,
    ItemData,
    ReportData,
    StageCost,
    StepData,
    library_changes,
)
from grpo_dsl.runs.directory import RunDirectory
from grpo_dsl.runs.repeats import is_repeated_run, repeat_dir, runs_root_of

__all__ = [
    "RunDataError",
    "STEP_RESAMPLES",
    "ablation_data",
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


def _step(run: RunDirectory, step: int, before: Library | None, after: Library) -> StepData:
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
        return ReportData(title=f"evaluate {document['evaluate']}", subtitle=subtitle, costs=tuple(_costs(usage)), evaluation=alone)
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
    for step in run.completed_steps():
        after = _library(run.step_dir(step) / "library.json")
        try:
            steps.append(_step(run, step, before, after))
        except (KeyError, TypeError) as exc:
            raise RunDataError(f"{run.step_dir(step)}: a step file lacks {exc}") from None
        before = after
    costs = _costs(usage)
    evaluation = None
    chosen = evaluation_dir if evaluation_dir is not None else (find_evaluation(run_dir) if find else None)
    if chosen is not None:
        evaluation, _ = evaluation_data(chosen)
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
        ablation=ablation,
    )
