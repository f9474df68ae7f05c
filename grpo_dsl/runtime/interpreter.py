"""Start, resume and stop learning runs: the run directory, the client stack, the steps.

`start_run` creates `runs/<learn>/<run-id>/` and executes a plan's `learn` block in
it; `resume_run` continues a run directory after its last completed step. Both stop
cleanly on a budget, Ctrl-C or a fatal endpoint error, with everything so far saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..library import Library
from ..plan import Plan
from .accounting import Budget, Usage
from .client import BudgetExceeded, ChatRequest, ChatResponse, EndpointError, LLMClient
from .evaluation import gate_decision, sample_library
from .learn import EventedClient, Learner, StepOutcome
from .local import local_endpoints
from .progress import Progress
from .questions import load_questions
from .rewards import RewardScorer
from .rundir import EventLog, RunDirectory, atomic_write_json, read_events, read_json
from .stack import build_client

__all__ = [
    "RunEnd",
    "RunResult",
    "client_stack",
    "ending_cleanly",
    "latest_run",
    "resume_run",
    "settle_tasks",
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


def latest_run(runs_root: Path, learn: str) -> Path | None:
    """The most recent run directory of `learn` under `runs_root`, if any."""
    base = runs_root / learn
    runs = sorted(p for p in base.iterdir() if (p / "run.json").exists()) if base.is_dir() else []
    return runs[-1] if runs else None


@dataclass(slots=True)
class RunEnd:
    """How a block of run work ended: `completed`, `stopped`, `interrupted` or `failed`."""

    status: str = "completed"
    message: str | None = None


@contextlib.asynccontextmanager
async def ending_cleanly(
    events: EventLog, resume_command: str | None, failures: tuple[type[Exception], ...] = ()
) -> AsyncIterator[RunEnd]:
    """Turn the ways a run can end into a `RunEnd`, never an exception.

    A budget stops the run; a fatal endpoint error, one of `failures` or any other
    exception fails it (an unexpected one is logged with its traceback); Ctrl-C
    interrupts it, with `resume_command` (if any) in the message. Every other task of the
    loop is settled before the block ends.
    """
    end = RunEnd()
    fatal: tuple[type[Exception], ...] = (EndpointError, *failures)
    try:
        yield end
    except BudgetExceeded as exc:
        end.status, end.message = "stopped", str(exc)
    except fatal as exc:
        end.status, end.message = "failed", str(exc)
    except (KeyboardInterrupt, asyncio.CancelledError):
        end.status = "interrupted"
        end.message = f"interrupted; continue with `{resume_command}`" if resume_command else "interrupted"
    except Exception as exc:
        end.status, end.message = "failed", f"{type(exc).__name__}: {exc}"
        events.append("error", traceback=traceback.format_exc())
    finally:
        await settle_tasks()


async def settle_tasks() -> None:
    """Cancel and wait for every other task of the loop, so nothing runs after a run ends.

    After a budget stop, an error or Ctrl-C, the sibling tasks of a cancelled
    `gather` may still be running; they must finish before the log is closed.
    """
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def usage_from_events(plan: Plan, events_path: Path) -> Usage:
    """What a run has spent so far, counted from its event log.

    The log records every answered call, so a run killed between two writes of
    `usage.json` still resumes knowing every call it paid for.
    """
    usage = Usage(plan.data["models"])
    for event in read_events(events_path):
        if event.get("event") == "call":
            usage.record(
                ChatRequest(model=str(event["model"]), messages=(), stage=str(event["stage"])),
                ChatResponse(
                    content=None,
                    tool_calls=(),
                    finish_reason=None,
                    prompt_tokens=int(event.get("prompt_tokens") or 0),
                    completion_tokens=int(event.get("completion_tokens") or 0),
                    cached=bool(event.get("cached")),
                ),
            )
    return usage


def initial_library(plan: Plan, learn: str, runs_root: Path) -> Library:
    """The library a learn starts from: empty, or the latest library of the learn named by `init`."""
    init = plan.data["learns"][learn].get("init")
    if not init:
        return Library.empty()
    previous = latest_run(runs_root, init)
    if previous is None or not (previous / "library.json").exists():
        raise RuntimeError(f"learn `{learn}` starts from `{init}`, which has no run with a library under {runs_root}")
    return Library.from_json(read_json(previous / "library.json"))


@contextlib.asynccontextmanager
async def client_stack(
    plan: Plan, base_dir: Path, run: RunDirectory, usage: Usage, budget: Budget | None, events: EventLog, progress: Progress
) -> AsyncIterator[tuple[LLMClient, dict[str, dict[str, Any]]]]:
    """The run's client and its models as endpoints (local models started and pointed at)."""
    async with local_endpoints(plan.data["models"], base_dir=base_dir) as models:
        client = build_client(
            models,
            cache_dir=run.cache_dir,
            usage=usage,
            budget=budget,
            on_event=lambda event: events.append(str(event.get("event", "client")), **{k: v for k, v in event.items() if k != "event"}),
        )
        try:
            yield EventedClient(client, events, progress), models
        finally:
            await client.aclose()


async def _execute(run: RunDirectory, plan: Plan, learn: str, base_dir: Path, stream: TextIO | None) -> RunResult:
    events = EventLog(run.events_path)
    usage = usage_from_events(plan, run.events_path)
    learn_plan = plan.data["learns"][learn]
    budget = Budget.from_json(learn_plan.get("budget") or {})
    progress = Progress(stream, cost=lambda: usage.total_usd)
    completed = run.completed_steps()
    library = (
        Library.from_json(run.read_step(completed[-1], "library"))
        if completed
        else initial_library(plan, learn, run.path.parent.parent)
    )
    steps = [StepOutcome(**run.read_step(s, "outcome")) for s in completed]
    events.append("run_resumed" if completed else "run_started", learn=learn, completed_steps=len(completed))
    async with ending_cleanly(events, f"grpo run --resume {run.path}") as end:
        async with (
            client_stack(plan, base_dir, run, usage, budget, events, progress) as (client, models),
            RewardScorer(plan.data["rewards"], base_dir=base_dir, client=client, models=models) as scorer,
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
                structured=models[learn_plan["learner"]].get("structured", "json_schema"),
            )
            learner.evaluate_gate = validation_gate(plan, learn, base_dir, learner, scorer) if learn_plan.get("validate") else None
            for step in range(len(completed) + 1, learner.total_steps + 1):
                library, outcome = await learner.run_step(step, library)
                steps.append(outcome)
                atomic_write_json(run.usage_path, usage.to_json())
                progress.step_finished(
                    f"reward {outcome.mean_reward:.3f}, kept {outcome.kept}/{outcome.groups} groups, "
                    f"{outcome.applied} ops applied, {outcome.rejected} rejected, library {outcome.library_size}"
                )
    status, message = end.status, end.message
    atomic_write_json(run.usage_path, usage.to_json())
    events.append("run_" + ("finished" if status == "completed" else status), message=message)
    events.close()
    run.update_info(status=status, message=message, steps_completed=len(steps))
    return RunResult(run.path, status, library, tuple(steps), usage.to_json(), message)


def validation_gate(plan: Plan, learn: str, base_dir: Path, learner: Learner, scorer: RewardScorer) -> Any:
    """The gate of a learn with `validate`: old and new library sampled on the held-out set."""
    learn_plan = plan.data["learns"][learn]
    questions = load_questions(plan.data["datasets"][learn_plan["validate"]], base_dir, learn_plan["seed"])

    async def evaluate(old: Library, new: Library, step: int) -> tuple[bool, dict[str, Any]]:
        results = []
        for library in (old, new):
            results.append(
                await sample_library(
                    learner.client.complete,
                    scorer,
                    task=learner.task,
                    templates=learner.templates,
                    reward=learn_plan["reward"],
                    questions=questions,
                    experiences=library.prompt_entries(),
                    samples=learn_plan["group_size"],
                    seed=learn_plan["seed"],
                    temperature=learn_plan["temperature"],
                    stage="validate",
                )
            )
        return gate_decision(results[0], results[1], seed=learn_plan["seed"] + step)

    return evaluate
