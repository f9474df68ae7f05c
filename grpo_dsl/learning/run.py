"""Start, resume and stop learning runs: the run directory, the client stack, the steps.

`start_run` creates `runs/<learn>/<run-id>/` and executes a plan's `learn` block in
it; `resume_run` continues a run directory after its last completed step, with the
plan it started with (its sha256 is checked) and optionally a larger budget. Both
hold the run directory's lock, and stop cleanly on a budget, Ctrl-C, a fatal
endpoint error, too many failures or a full disk, with everything so far saved.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from grpo_dsl.clients.accounting import Budget
from grpo_dsl.core.files import atomic_write_json, read_json
from grpo_dsl.evaluation.sampling import Sampling, gate_decision
from grpo_dsl.learning.prune import validation_pruning
from grpo_dsl.learning.step import Learner, StepOutcome
from grpo_dsl.library import Library
from grpo_dsl.modules import EmitResult, ModuleError, emit_from_run, load_module, parse_reference
from grpo_dsl.plan import Plan, PlanError
from grpo_dsl.plan.estimate import DataRows, Growth, expected_run, reestimate
from grpo_dsl.rewards.functions import (
    RewardFunction,
    check_reward_functions,
    recorded_functions,
    resumed_functions,
    same_as_recorded,
)
from grpo_dsl.rewards.scorer import RewardScorer
from grpo_dsl.rollout.tools import ToolFunction, Tools, check_tool_functions, open_tools
from grpo_dsl.rollout.questions import load_questions
from grpo_dsl.runs.directory import EventLog, RunDirectory, RunError
from grpo_dsl.runs.loop import blocking
from grpo_dsl.runs.progress import Progress, format_cost
from grpo_dsl.runs.repeats import runs_root_of
from grpo_dsl.runs.session import (
    client_stack,
    ending_cleanly,
    judge_fields,
    latest_completed_run,
    run_budget,
    structured_mode,
    usage_from_events,
)
from grpo_dsl.runs.tracing import traced_run

__all__ = [
    "RunResult",
    "aresume_run",
    "astart_run",
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
    estimate: Mapping[str, Any] | None = None
    """The whole run's cost as expected before it started (`calls`, `prompt_tokens`, `completion_tokens`, `usd`)."""
    reestimate: Mapping[str, Any] | None = None
    """The same, re-estimated from what step 1 really cost (None before step 1 or for a one-step run)."""

    def emits(self) -> tuple[str, ...]:
        """The program's `emit` blocks whose library is this run's learn."""
        run = RunDirectory(self.run_dir)
        info = run.info()
        plan = recorded_plan(run, info)
        return tuple(name for name in plan.names("emit") if plan.emit(name).library == info["learn"])

    def emit(self, name: str | None = None, *, step: int | None = None, force: bool = False) -> EmitResult:
        """Write this run's library as a version of the prompt module of emit block `name`
        (default: the program's only emit block of this learn).

        `step` and `force` are those of `grpo emit`: the library after another step,
        and publishing a run that did not complete. Raises `ModuleError` when the
        module cannot be written, or when `name` is not given and the learn has no
        emit block or several.
        """
        if name is None:
            emits = self.emits()
            if len(emits) != 1:
                raise ModuleError(f"the learn of {self.run_dir} has {len(emits)} emit blocks ({', '.join(emits) or 'none'}): name one")
            name = emits[0]
        run = RunDirectory(self.run_dir)
        info = run.info()
        return emit_from_run(recorded_plan(run, info), name, self.run_dir, step=step, base_dir=Path(str(info["base_dir"])), force=force)


async def astart_run(
    plan: Plan,
    learn: str,
    *,
    base_dir: Path,
    runs_root: Path,
    stream: TextIO | None = sys.stderr,
    on_start: Callable[[Path], None] | None = None,
    color: bool | None = None,
    rewards: Mapping[str, RewardFunction] | None = None,
    tools: Mapping[str, ToolFunction] | None = None,
    shared_cache: bool = True,
) -> RunResult:
    """Create a run directory for `learn` and run it to its end (or a clean stop), in
    the running event loop.

    The progress goes to `stream`, styled as `color` says (`Progress`). `on_start` is
    told the run directory as soon as it exists. `rewards` are Python functions that
    replace the program's rewards of their names for this run, and `tools` functions
    that answer the task's Python tools of their names; their names are recorded in
    run.json, and a resumption must give them again. Without `shared_cache` every call
    is paid for (the run still records its answers). Raises `SandboxUnavailable` before
    the directory exists when the task's python tool cannot run here, and
    `RewardFunctionError` when a function replaces no reward or answers no Python tool.
    """
    task = plan.task(plan.learn(learn).task)
    functions = check_reward_functions(plan.rewards(), rewards)
    tool_functions = check_tool_functions(task, tools)
    Tools.of(task, base_dir)
    run = RunDirectory.create(
        runs_root,
        learn,
        plan.to_json(),
        {
            "learn": learn,
            "base_dir": str(base_dir.resolve()),
            "plan_sha256": plan.sha256,
            **recorded_functions(functions),
            **recorded_functions(tool_functions, "tool_functions"),
        },
    )
    if on_start is not None:
        on_start(run.path)
    with run.lock():
        return await _execute(run, plan, learn, base_dir.resolve(), stream, color, functions, tool_functions, shared_cache)


start_run = blocking(astart_run)


async def aresume_run(
    run_dir: Path,
    *,
    stream: TextIO | None = sys.stderr,
    budget: Mapping[str, float] | None = None,
    rewards: Mapping[str, RewardFunction] | None = None,
    tools: Mapping[str, ToolFunction] | None = None,
    color: bool | None = None,
    shared_cache: bool = True,
) -> RunResult:
    """Continue a run directory after its last completed step, in the running event
    loop (progress as `astart_run`'s; its own record answers every call it had made).

    `budget` (`usd`, `tokens`, `calls`) replaces those limits of the learn's budget,
    for this and later resumptions: a run stopped by its budget goes on with a
    larger one. `rewards` and `tools` give again the reward and tool functions the
    run started with. Raises `RunError` when another process holds the directory,
    or when its files are missing, damaged or changed since the run started, and
    `RewardFunctionError` when the functions given are not the ones it started with.
    """
    run = RunDirectory(run_dir)
    with run.lock():
        info = run.info()
        plan = recorded_plan(run, info)
        functions = resumed_functions(plan.rewards(), rewards, info, str(run.path))
        tool_functions = check_tool_functions(plan.task(plan.learn(str(info["learn"])).task), tools)
        same_as_recorded(tool_functions, info, str(run.path), "tool_functions")
        if budget:
            run.update_info(budget={**(info.get("budget") or {}), **budget})
        return await _execute(
            run, plan, str(info["learn"]), Path(str(info["base_dir"])), stream, color, functions, tool_functions, shared_cache
        )


resume_run = blocking(aresume_run)


def recorded_plan(run: RunDirectory, info: Mapping[str, Any]) -> Plan:
    """The plan a run started with, checked against the sha256 its run.json recorded."""
    for key in ("learn", "base_dir", "plan_sha256"):
        if not isinstance(info.get(key), str):
            raise RunError(f"{run.info_path} is damaged: it has no `{key}`")
    try:
        plan = Plan.from_json(run.plan_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, PlanError) as exc:
        raise RunError(f"{run.plan_path} cannot be read ({exc}): the run cannot be resumed; start a new one") from None
    if plan.sha256 != info["plan_sha256"]:
        raise RunError(
            f"{run.plan_path} was changed after the run started (its sha256 is {plan.sha256[:12]}..., the run "
            f"started with {str(info['plan_sha256'])[:12]}...): a run resumes only the plan it started with; "
            "restore it, or start a new run with the changed program"
        )
    if info["learn"] not in plan.names("learn"):
        raise RunError(f"{run.info_path} names learn `{info['learn']}`, which {run.plan_path} does not have")
    return plan


def initial_library(plan: Plan, learn: str, runs_root: Path, base_dir: Path) -> Library:
    """The library a learn starts from: empty, the library of the newest completed run of
    the learn named by `init`, or the prompt module version `init` names (relative to `base_dir`)."""
    init = plan.learn(learn).init
    if not init:
        return Library.empty()
    if init not in plan.names("learn"):
        path, version = parse_reference(init)
        try:
            return load_module(base_dir / path, version).library
        except ModuleError as exc:
            raise RunError(f"learn `{learn}` starts from the module {init!r}: {exc}") from None
    previous, _ = latest_completed_run(runs_root, init)
    if previous is None or not (previous / "library.json").exists():
        raise RunError(f"learn `{learn}` starts from `{init}`, which has no completed run with a library under {runs_root}")
    try:
        return Library.from_json(read_json(previous / "library.json"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{previous / 'library.json'} cannot be read ({exc}): learn `{learn}` cannot start from it") from None


def _budget(learn: Any, override: Mapping[str, Any] | None) -> Budget:
    """The learn's budget with the limits given at a resumption (`--budget`) in place of its own."""
    budget = run_budget(learn)
    limits = {"usd": budget.usd, "tokens": budget.tokens, "calls": budget.calls, **(override or {})}
    return Budget.from_json(limits)


def _restored(run: RunDirectory, step: int) -> Library:
    """The library of completed step `step`."""
    try:
        return Library.from_json(run.read_step(step, "library"))
    except ValueError as exc:
        raise RunError(f"{run.step_dir(step) / 'library.json'} is damaged ({exc}); delete {run.step_dir(step)} to run that step again") from None


async def _execute(
    run: RunDirectory,
    plan: Plan,
    learn: str,
    base_dir: Path,
    stream: TextIO | None,
    color: bool | None,
    functions: Mapping[str, RewardFunction],
    tool_functions: Mapping[str, ToolFunction],
    shared_cache: bool,
) -> RunResult:
    learn_view = plan.learn(learn)
    completed = run.completed_steps()
    library = _restored(run, completed[-1]) if completed else initial_library(plan, learn, runs_root_of(run.path), base_dir)
    steps = [_outcome(run, s) for s in completed]
    events = EventLog(run.events_path)
    usage = usage_from_events(plan, run.events_path)
    info = run.info()
    budget = _budget(learn_view, info.get("budget"))
    revised: Mapping[str, Any] | None = info.get("reestimate")
    # a repeat of a learn with `repeats` is expected to cost one run, not all of them
    expected = learn_view.estimate["total"]["expected"] if learn_view.repeats == 1 else expected_run(plan, learn, _data_rows(plan, learn, base_dir))
    progress = Progress(stream, title=f"run {learn}", cost=lambda: usage.total_usd, budget_usd=budget.usd, color=color)
    if completed and _damaged(run.library_path):
        progress.message(f"{run.library_path} was damaged; it is written again from step {completed[-1]}")
    events.append("run_resumed" if completed else "run_started", learn=learn, completed_steps=len(completed))
    async with ending_cleanly(events, f"grpo run --resume {run.path}") as end:
        async with (
            traced_run(
                f"learn {learn}",
                {"grpo.learn": learn, "grpo.run_dir": str(run.path), "grpo.plan_sha256": plan.sha256, "grpo.completed_steps": len(completed)},
            ),
            client_stack(plan, base_dir, run, usage, budget, events, progress, shared_cache=shared_cache) as (client, models),
            RewardScorer(
                plan.rewards(), base_dir=base_dir, client=client, models=models, shown=judge_fields(plan, learn_view), functions=functions
            ) as scorer,
            open_tools(plan.task(learn_view.task), base_dir, scorer, run, events, tool_functions) as tools,
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
                tools=tools,
                structured=structured_mode(models, learn_view.learner),
            )
            progress.expect(learn_view.estimate, learner.total_steps, usage.to_json()["by_stage"])
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
                if step == 1 and learner.total_steps > 1:
                    growth = Growth(len(library.experiences), round(sum(len(e.text) for e in library.experiences) / max(1, len(library.experiences))))
                    revised = reestimate(plan, learn, _data_rows(plan, learn, base_dir), usage.to_json()["entries"], 1, growth)
                    run.update_info(reestimate=revised)
                    events.append("reestimate", after_step=1, **revised)
                    progress.message(f"after step 1 the run is expected to take {format_cost(revised)} (before it: {format_cost(expected)})")
    progress.close()
    status, message = _finish(run, events, end.status, end.message, len(steps), library, usage.to_json())
    return RunResult(run.path, status, library, tuple(steps), usage.to_json(), message, expected, revised)


def _data_rows(plan: Plan, learn: str, base_dir: Path) -> dict[str, DataRows]:
    """The rows of a learn's datasets as the estimate reads them."""
    view = plan.learn(learn)
    rows = {}
    for name in filter(None, (view.data, view.validate)):
        questions = load_questions(plan.dataset(name), base_dir, view.seed)
        rows[name] = DataRows(len(questions), tuple(q.fields for q in questions))
    return rows


def _outcome(run: RunDirectory, step: int) -> StepOutcome:
    try:
        return StepOutcome(**run.read_step(step, "outcome"))
    except TypeError as exc:
        raise RunError(f"{run.step_dir(step) / 'outcome.json'} is damaged ({exc}); delete {run.step_dir(step)} to run that step again") from None


def _damaged(path: Path) -> bool:
    try:
        Library.from_json(read_json(path))
    except (OSError, ValueError):
        return True
    return False


def _finish(
    run: RunDirectory, events: EventLog, status: str, message: str | None, steps: int, library: Library, usage: Mapping[str, Any]
) -> tuple[str, str | None]:
    """Record how the run ended: usage.json, library.json, the last event and run.json.

    Each write is tried even when one fails (a full disk); what could not be written
    is added to the message, and the run is then failed.
    """
    unwritten = []
    writes: list[tuple[str, Callable[[], None]]] = [
        ("usage.json", lambda: atomic_write_json(run.usage_path, usage)),
        ("library.json", lambda: atomic_write_json(run.library_path, library.to_json()) if steps else None),
        ("events.jsonl", lambda: events.append("run_" + ("finished" if status == "completed" else status), message=message)),
    ]
    for name, write in writes:
        try:
            write()
        except OSError as exc:
            unwritten.append(f"{name} ({exc.strerror or exc})")
    events.close()
    if unwritten:
        status = "failed"
        message = "; ".join(filter(None, [message, "could not record " + ", ".join(unwritten)]))
    try:
        run.update_info(status=status, message=message, steps_completed=steps)
    except OSError as exc:
        message = f"{message}; run.json could not be updated ({exc.strerror or exc}): it still says `running`"
    return status, message


def validation_gate(plan: Plan, learn: str, base_dir: Path, learner: Learner, scorer: RewardScorer) -> Any:
    """The gate of a learn with `validate`: old and new library sampled on the held-out set,
    their failed samples counted in the step's failures."""
    learn_view = plan.learn(learn)
    sampling = Sampling.of_validation(plan, learn_view, base_dir).with_tools(learner.tools)

    async def evaluate(old: Library, new: Library, step: int) -> tuple[bool, dict[str, Any]]:
        results = []
        for library in (old, new):
            results.append(
                await sampling.sample(learner.client.complete, scorer, library, stage="validate", failures=(learner.failures, "validation samples"))
            )
        return gate_decision(results[0], results[1], seed=learn_view.seed + step)

    return evaluate
