"""A learn run several times (`repeats = N`, or `grpo run --repeats N`): does its gain survive another seed?

`start_repeats` creates a repeated run, `runs/<learn>/<run-id>/` (`runs.repeats`), and
runs the learn once per repeat in `repeats/<r>/`, repeat r with the seed `seed + r − 1`,
one after the other. Every repeat answers through the cache the learn's repeats share
(`runs/<learn>/cache/`), so requests that coincide are paid once and a repeated learn
run again costs nothing. With `validate`, the repeats are then *ranked*: each
repeat's last library is sampled on the validation set, G answers per question with
the learn's own seed (the same for every repeat, so the ranking is paired), and the
repeat with the highest mean reward over its scored samples is the best (failed
samples are counted, and more than the learn's `max_failures` of them fail the run). Without `validate`, an evaluation
that compares the learn ranks them (`best_repeat`) by their gain over its baseline.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import atomic_write_json, read_json
from grpo_dsl.evaluation.evaluate import newest_evaluation, read_evaluation
from grpo_dsl.evaluation.sampling import Sampling
from grpo_dsl.learning.run import RunResult, resume_run
from grpo_dsl.library import Library
from grpo_dsl.plan import Plan
from grpo_dsl.rewards.scorer import RewardScorer
from grpo_dsl.rollout.tools import open_tools
from grpo_dsl.runs.directory import EventLog, RunDirectory
from grpo_dsl.runs.failures import Failures
from grpo_dsl.runs.progress import Progress
from grpo_dsl.runs.repeats import REPEATS_KIND, repeat_dir, repeat_dirs, repeat_seed
from grpo_dsl.runs.session import client_stack, ending_cleanly, usage_from_events

__all__ = ["RANK_STAGE", "RepeatsError", "RepeatsResult", "best_repeat", "resume_repeats", "start_repeats"]

RANK_STAGE = "rank"
"""The stage of the calls that rank the repeats on the validation set (sampled as the gate samples)."""


class RepeatsError(GrpoError):
    """Repeats that cannot be ranked or resumed; the message says why."""


@dataclass(frozen=True, slots=True)
class RepeatsResult:
    """How a repeated run ended: every repeat's `RunResult` so far, and the ranking
    (`{"data", "means", "best"}`) when the learn has `validate` and every repeat completed."""

    run_dir: Path
    status: str
    runs: tuple[RunResult, ...]
    ranking: Mapping[str, Any] | None = None
    message: str | None = None


def start_repeats(
    plan: Plan,
    learn: str,
    *,
    repeats: int,
    base_dir: Path,
    runs_root: Path,
    stream: TextIO | None = sys.stderr,
    on_start: Callable[[Path], None] | None = None,
    color: bool | None = None,
    shared_cache: bool = True,
) -> RepeatsResult:
    """Create a repeated run of `learn` with `repeats` repeats and run them all, then rank them
    (progress to `stream`, styled as `color` says, as `start_run`'s).

    Every repeat, and the ranking, asks through the shared response cache (without
    `shared_cache`, every call is paid for), so a request two repeats make alike is
    paid once and running the repeated learn again costs nothing."""
    seed = plan.learn(learn).seed
    group = RunDirectory.create(
        runs_root,
        learn,
        plan.to_json(),
        {
            "kind": REPEATS_KIND,
            "learn": learn,
            "base_dir": str(base_dir.resolve()),
            "plan_sha256": plan.sha256,
            "repeats": repeats,
            "seeds": [repeat_seed(seed, r) for r in range(1, repeats + 1)],
        },
    )
    if on_start is not None:
        on_start(group.path)
    return _run(group, stream, color=color, shared_cache=shared_cache)


def resume_repeats(
    group_dir: Path,
    *,
    stream: TextIO | None = sys.stderr,
    budget: Mapping[str, float] | None = None,
    color: bool | None = None,
    shared_cache: bool = True,
) -> RepeatsResult:
    """Continue a repeated run: finish the repeats that did not complete, start those not begun, rank them.

    `budget` replaces limits of the learn's budget in every repeat resumed or started (as `resume_run`'s).
    """
    return _run(RunDirectory(group_dir), stream, budget, color=color, shared_cache=shared_cache)


def _run(
    group: RunDirectory,
    stream: TextIO | None,
    budget: Mapping[str, float] | None = None,
    *,
    color: bool | None = None,
    shared_cache: bool = True,
) -> RepeatsResult:
    info = group.info()
    plan = Plan.from_json(group.plan_path.read_text(encoding="utf-8"))
    learn, base_dir = info["learn"], Path(info["base_dir"])
    runs: list[RunResult] = []
    for r, seed in enumerate(info["seeds"], start=1):
        folder = repeat_dir(group.path, r)
        if folder.is_dir() and RunDirectory(folder).info().get("status") == "completed":
            runs.append(_recorded(folder))
            continue
        if not folder.is_dir():
            repeated = plan.with_seed(learn, seed)
            RunDirectory.create(
                group.path,
                "repeats",
                repeated.to_json(),
                {"learn": learn, "base_dir": str(base_dir), "plan_sha256": repeated.sha256, "repeat": r, "seed": seed},
                name=str(r),
            )
        if stream is not None:
            stream.write(f"repeat {r} of {len(info['seeds'])}: seed {seed}, {folder}\n")
        result = resume_run(folder, stream=stream, budget=budget, color=color, shared_cache=shared_cache)
        runs.append(result)
        if result.status != "completed":
            stopped = f"repeat {r} {result.status}: {result.message}; continue with `grpo run --resume {group.path}`"
            group.update_info(status=result.status, message=stopped)
            return RepeatsResult(group.path, result.status, tuple(runs), None, stopped)
    ranking = None
    if plan.learn(learn).validate is not None:
        status, message, ranking = asyncio.run(
            _rank(group, plan, learn, base_dir, [r.library for r in runs], stream, color, shared_cache)
        )
        if status != "completed":
            group.update_info(status=status, message=message)
            return RepeatsResult(group.path, status, tuple(runs), None, message)
    group.update_info(status="completed", message=None, ranking=ranking)
    return RepeatsResult(group.path, "completed", tuple(runs), ranking)


def _recorded(folder: Path) -> RunResult:
    """A completed repeat as it ended, read back from its run directory."""
    run = RunDirectory(folder)
    library = Library.from_json(read_json(run.library_path)) if run.library_path.is_file() else Library.empty()
    usage = read_json(run.usage_path) if run.usage_path.is_file() else {}
    return RunResult(folder, "completed", library, (), usage)


async def _rank(
    group: RunDirectory,
    plan: Plan,
    learn: str,
    base_dir: Path,
    libraries: list[Library],
    stream: TextIO | None,
    color: bool | None,
    shared_cache: bool,
) -> tuple[str, str | None, dict[str, Any] | None]:
    """Sample every repeat's last library on the validation set, with the learn's own seed."""
    view = plan.learn(learn)
    sampling = Sampling.of_validation(plan, view, base_dir)
    events = EventLog(group.events_path)
    usage = usage_from_events(plan, group.events_path)
    progress = Progress(stream, title=f"rank {learn}", cost=lambda: usage.total_usd, color=color)
    means: list[float] = []
    advice = f"Fix the cause and continue with `grpo run --resume {group.path}` (the cache keeps every answer), or raise `max_failures` of learn `{learn}`."
    failures = Failures(view.max_failures, "the ranking of the repeats", advice)
    async with ending_cleanly(events, f"grpo run --resume {group.path}") as end:
        async with (
            client_stack(plan, base_dir, group, usage, None, events, progress, shared_cache=shared_cache) as (client, models),
            RewardScorer(plan.rewards(), base_dir=base_dir, client=client, models=models) as scorer,
            open_tools(sampling.task, base_dir, scorer, group, events) as tools,
        ):
            sampling = sampling.with_tools(tools)
            progress.message(f"ranking {len(libraries)} repeats on `{view.validate}`")
            for library in libraries:
                results = await sampling.sample(
                    client.complete, scorer, library, stage=RANK_STAGE, keys="validate", failures=(failures, "samples")
                )
                scored = [r for q in results for r in q.scored]
                means.append(sum(scored) / len(scored) if scored else 0.0)
            failures.check()
    progress.close()
    atomic_write_json(group.usage_path, usage.to_json())
    events.append("repeats_ranked" if end.status == "completed" else "ranking_" + end.status, means=means)
    events.close()
    if end.status != "completed":
        return end.status, end.message, None
    best = max(range(len(means)), key=lambda i: (means[i], -i)) + 1
    return "completed", None, {"by": "validate", "data": view.validate, "means": means, "best": best}


def best_repeat(group_dir: Path) -> tuple[Path, str]:
    """The repeat of a repeated run to publish, and why: the one the validation ranking put
    first, or else the one with the highest gain in the newest evaluation that compared the
    repeats (on its first metric). Raises `RepeatsError` when neither ranks them."""
    info = RunDirectory(group_dir).info()
    total = len(info.get("seeds", ()))
    ranking = info.get("ranking")
    if ranking:
        best = int(ranking["best"])
        why = f"repeat {best} of {total}, ranked best on `{ranking['data']}` (mean reward {ranking['means'][best - 1]:.3f})"
        return repeat_dir(group_dir, best), why
    repeats = {d.resolve(): int(d.name) for d in repeat_dirs(group_dir)}
    found = newest_evaluation(group_dir.parents[1], set(repeats))
    if found is None:
        raise RepeatsError(
            f"the {total} repeats of {group_dir} are not ranked: learn `{info['learn']}` has no `validate`, and no "
            "evaluation compared them yet; run `grpo eval` on an evaluate that compares it, then emit again"
        )
    document = read_evaluation(found)
    origins = {lib["name"]: Path(lib["origin"]).resolve() for lib in document["libraries"] if lib.get("origin")}
    metric = document["metrics"][0]
    gains = {
        repeats[origins[c["candidate"]]]: c["difference"]
        for c in document["comparisons"]
        if c["metric"] == metric and origins.get(c["candidate"]) in repeats
    }
    if not gains:
        raise RepeatsError(f"the evaluation {found} compared no repeat of {group_dir} with a baseline")
    best = max(sorted(gains), key=lambda r: gains[r])
    baseline = document["libraries"][0]["name"]
    why = f"repeat {best} of {total}, ranked best by the evaluation {found} (gain over {baseline} on {metric}: {gains[best]:+.3f})"
    return repeat_dir(group_dir, best), why
