"""Start, resume and stop learning runs: the run directory, the client stack, the steps.

`start_run` creates `runs/<learn>/<run-id>/` and executes a plan's `learn` block in
it; `resume_run` continues a run directory after its last completed step. Both stop
cleanly on a budget, Ctrl-C or a fatal endpoint error, with everything so far saved.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import atomic_write_json, read_json
from grpo_dsl.evaluation.sampling import gate_decision, sample_library
from grpo_dsl.learning.prune import validation_pruning
from grpo_dsl.learning.step import Learner, StepOutcome
from grpo_dsl.library import Library
from grpo_dsl.modules import ModuleError, load_module, parse_reference
from grpo_dsl.plan import Plan
from grpo_dsl.rewards.scorer import RewardScorer
from grpo_dsl.rollout.questions import load_questions
from grpo_dsl.runs.directory import EventLog, RunDirectory
from grpo_dsl.runs.progress import Progress
from grpo_dsl.runs.repeats import runs_root_of, shared_cache_of
from grpo_dsl.runs.session import (
    client_stack,
    ending_cleanly,
    latest_run,
    run_budget,
    structured_mode,
    usage_from_events,
)

__all__ = [
    "RunResult",
    "StartError",
    "resume_run",
    "start_run",
    "validation_gate",
]


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended: `status` is completed, stopped (a budget), interrupted or failed."""

    run_dir: Path
    status: str
    library: Library
    steps: tuple[StepOutcome, ...]
    usage: dict[str, Any]
    message: str | None = None


def start_run(
    plan: Plan,
    learn: str,
    *,
    base_dir: Path,
    runs_root: Path,
    stream: TextIO | None = sys.stderr,
    on_start: Callable[[Path], None] | None = None,
) -> RunResult:
    """Create a run directory for `learn` and run it to its end (or a clean stop).

    `on_start` is told the run directory as soon as it exists.
    """
    run = RunDirectory.create(
        runs_root,
        learn,
        plan.to_json(),
        {"learn": learn, "base_dir": str(base_dir.resolve()), "plan_sha256": plan.sha256},
    )
    if on_start is not None:
        on_start(run.path)
    return asyncio.run(_execute(run, plan, learn, base_dir.resolve(), stream))


def resume_run(run_dir: Path, *, stream: TextIO | None = sys.stderr) -> RunResult:
    """Continue a run directory after its last completed step."""
    run = RunDirectory(run_dir)
    info = run.info()
    plan = Plan.from_json(run.plan_path.read_text(encoding="utf-8"))
    return asyncio.run(_execute(run, plan, info["learn"], Path(info["base_dir"]), stream))


class StartError(GrpoError, RuntimeError):
    """A learn that cannot start: the library its `init` names cannot be found."""


def initial_library(plan: Plan, learn: str, runs_root: Path, base_dir: Path) -> Library:
    """The library a learn starts from: empty, the latest library of the learn named by
    `init`, or the prompt module version `init` names (relative to `base_dir`)."""
    init = plan.learn(learn).init
    if not init:
        return Library.empty()
    if init not in plan.names("learn"):
        path, version = parse_reference(init)
        try:
            return load_module(base_dir / path, version).library
        except ModuleError as exc:
            raise StartError(f"learn `{learn}` starts from the module {init!r}: {exc}") from None
    previous = latest_run(runs_root, init)
    if previous is None or not (previous / "library.json").exists():
        raise StartError(f"learn `{learn}` starts from `{init}`, which has no run with a library under {runs_root}")
    return Library.from_json(read_json(previous / "library.json"))


async def _execute(run: RunDirectory, plan: Plan, learn: str, base_dir: Path, stream: TextIO | None) -> RunResult:
    events = EventLog(run.events_path)
    usage = usage_from_events(plan, run.events_path)
    learn_view = plan.learn(learn)
    budget = run_budget(learn_view)
    progress = Progress(stream, cost=lambda: usage.total_usd)
    completed = run.completed_steps()
    library = (
        Library.from_json(run.read_step(completed[-1], "library"))
        if completed
        else initial_library(plan, learn, runs_root_of(run.path), base_dir)
    )
    steps = [StepOutcome(**run.read_step(s, "outcome")) for s in completed]
    events.append("run_resumed" if completed else "run_started", learn=learn, completed_steps=len(completed))
    async with ending_cleanly(events, f"grpo run --resume {run.path}") as end:
        async with (
            client_stack(plan, base_dir, run, usage, budget, events, progress, shared_cache_of(run.path)) as (client, models),
            RewardScorer(plan.rewards(), base_dir=base_dir, client=client, models=models) as scorer,
        ):
            learner = Learner(
                plan,
                learn,
                base_dir=base_dir,
                run=run,
                client=client,
                scorer=scorer,
                events=events,
                progress=progress,
                structured=structured_mode(models, learn_view.learner),
            )
            learner.evaluate_gate = validation_gate(plan, learn, base_dir, learner, scorer) if learn_view.validate else None
            if learn_view.prune == "hurting":
                learner.prune = validation_pruning(plan, learn, base_dir, learner, scorer)
            for step in range(len(completed) + 1, learner.total_steps + 1):
                library, outcome = await learner.run_step(step, library)
                steps.append(outcome)
                atomic_write_json(run.usage_path, usage.to_json())
                progress.step_finished(
                    f"reward {outcome.mean_reward:.3f}, kept {outcome.kept}/{outcome.groups} groups, "
                    f"{outcome.applied} ops applied, {outcome.rejected} rejected, library {outcome.library_size}"
                    + (f" and {outcome.demos} demos" if outcome.demos else "")
                    + (f", {outcome.pruned} pruned" if outcome.pruned else "")
                )
    status, message = end.status, end.message
    atomic_write_json(run.usage_path, usage.to_json())
    events.append("run_" + ("finished" if status == "completed" else status), message=message)
    events.close()
    run.update_info(status=status, message=message, steps_completed=len(steps))
    return RunResult(run.path, status, library, tuple(steps), usage.to_json(), message)


def validation_gate(plan: Plan, learn: str, base_dir: Path, learner: Learner, scorer: RewardScorer) -> Any:
    """The gate of a learn with `validate`: old and new library sampled on the held-out set."""
    learn_view = plan.learn(learn)
    assert learn_view.validate is not None, "a gate needs a `validate` dataset"
    questions = load_questions(plan.dataset(learn_view.validate), base_dir, learn_view.seed)

    async def evaluate(old: Library, new: Library, step: int) -> tuple[bool, dict[str, Any]]:
        results = []
        for library in (old, new):
            results.append(
                await sample_library(
                    learner.client.complete,
                    scorer,
                    task=learner.task,
                    templates=learner.templates,
                    reward=learn_view.reward,
                    questions=questions,
                    library=library,
                    samples=learn_view.group_size,
                    seed=learn_view.seed,
                    temperature=learn_view.temperature,
                    stage="validate",
                )
            )
        return gate_decision(results[0], results[1], seed=learn_view.seed + step)

    return evaluate
