"""Counterfactual replay: a recorded run again, under another policy.

`replay_run` makes a new run directory, `runs/<learn>-replay/<run-id>/`, whose plan
is the recorded one with the learn's policy replaced. Steps before `from_step` are
copied as recorded. From there each step starts from the replayed library:

- when it shows the models what the recorded library showed them (same ids and
  texts), the recorded rollouts, rewards, summaries and proposals are reused and
  so is the recorded consolidation (unless `max_per_group` changed, which changes
  what is consolidated), so only the update rule runs;
- when it differs, every call of the step depends on it, so the step runs again
  through the client stack, reading the recorded run's responses: an identical
  request is answered from them for free.

Offline, no client exists: every step applies the new rule to the recorded
operations, whatever library it starts from. `format_replay` prints the two final
libraries side by side and what each run spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO, TypeAlias

from grpo_dsl.clients.accounting import Usage
from grpo_dsl.clients.protocol import ChatRequest, ChatResponse, LLMClient
from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import atomic_write_json, read_json
from grpo_dsl.learning.prune import Pruning, validation_pruning
from grpo_dsl.learning.run import initial_library, validation_gate
from grpo_dsl.learning.step import Learner
from grpo_dsl.library import Library, Operation, RuleError, load_rule
from grpo_dsl.modules.history import ExperienceDiff, diff_experiences
from grpo_dsl.plan import Plan, load_plan
from grpo_dsl.rewards.scorer import RewardScorer
from grpo_dsl.rollout.tools import ToolBox, open_tools
from grpo_dsl.runs.directory import EventLog, RunDirectory
from grpo_dsl.runs.progress import Progress
from grpo_dsl.runs.repeats import runs_root_of
from grpo_dsl.runs.session import (
    client_stack,
    ending_cleanly,
    judge_fields,
    model_documents,
    run_budget,
    structured_mode,
    usage_from_events,
)

__all__ = ["ReplayError", "ReplayResult", "ReplayedStep", "StepSource", "format_replay", "replay_policy", "replay_run"]

StepSource: TypeAlias = Literal["copied", "applied", "consolidated", "rerun"]
"""How a replayed step was made: copied as recorded (before `from_step`); the new rule
applied to the recorded operations; the recorded proposals consolidated again; or
the whole step run again because its library differed."""

_SOURCE_TEXT: dict[StepSource, str] = {
    "copied": "copied as recorded",
    "applied": "recorded operations, new rule",
    "consolidated": "recorded proposals, consolidated again",
    "rerun": "library differs: run again",
}


class ReplayError(GrpoError):
    """A replay that cannot start: not a run directory, no such policy, a step out of range."""


@dataclass(frozen=True, slots=True)
class ReplayedStep:
    """One step of a replay: how it was made, and the library after it in both runs."""

    step: int
    source: StepSource
    start_matched: bool
    """Whether the step started from a library with the recorded one's ids and texts."""
    mean_reward: float
    library: Library
    original: Library

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "source": self.source,
            "start_matched": self.start_matched,
            "mean_reward": self.mean_reward,
            "library_version": self.library.version,
            "library_size": len(self.library),
            "library_hash": self.library.content_hash(),
            "original_version": self.original.version,
            "original_size": len(self.original),
            "original_hash": self.original.content_hash(),
        }


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """A finished replay: where it ran, its steps, both final libraries and both runs' usage.

    `status` is completed, stopped (a budget), interrupted or failed, as for a run.
    """

    run_dir: Path
    original_dir: Path
    policy: str
    from_step: int
    offline: bool
    status: str
    message: str | None
    steps: tuple[ReplayedStep, ...]
    library: Library
    original_library: Library
    usage: Mapping[str, Any]
    original_usage: Mapping[str, Any]

    @property
    def diff(self) -> ExperienceDiff:
        """From the recorded run's last replayed library to the replay's."""
        return diff_experiences(self.original_library.listed(), self.library.listed())

    @property
    def identical(self) -> bool:
        """Whether the replay ended with exactly the recorded library, history and provenance included."""
        return self.library.to_json() == self.original_library.to_json()

    def to_json(self) -> dict[str, Any]:
        diff = self.diff
        return {
            "schema": "grpo-replay/1",
            "original": str(self.original_dir),
            "policy": self.policy,
            "from_step": self.from_step,
            "offline": self.offline,
            "status": self.status,
            "message": self.message,
            "steps": [s.to_json() for s in self.steps],
            "identical": self.identical,
            "diff": {
                "added": [dict(e) for e in diff.added],
                "removed": [dict(e) for e in diff.removed],
                "modified": [{"id": m.id, "old": m.old, "new": m.new} for m in diff.modified],
            },
            "usage": {"replay": dict(self.usage), "original": dict(self.original_usage)},
        }


class _NoCalls:
    """The client of an offline replay: any call is a bug, so it fails loudly."""

    async def complete(self, request: ChatRequest) -> ChatResponse:
        raise ReplayError(f"an offline replay makes no calls, yet a {request.stage} call was attempted")


def replay_policy(policy_file: Path, name: str) -> Plan:
    """The plan of `policy_file`, checked to declare policy `name` with a rule that loads.

    Raises `ProgramError` when the file does not compile and `ReplayError` when it
    declares no such policy or its rule cannot be loaded.
    """
    plan = load_plan(policy_file)
    if name not in plan.names("policy"):
        known = ", ".join(f"`{p}`" for p in plan.names("policy")) or "none"
        raise ReplayError(f"{policy_file} declares no policy `{name}` (it declares: {known})")
    rule = plan.policy(name).rule
    if rule is not None:
        folder = policy_file.resolve().parent
        try:
            load_rule(str((folder / rule.path).resolve()), rule.function, folder)
        except RuleError as error:
            raise ReplayError(str(error)) from None
    return plan


def replay_run(
    run_dir: Path,
    policy_file: Path,
    policy_name: str,
    *,
    from_step: int = 1,
    runs_root: Path = Path("runs"),
    offline: bool = False,
    shared_cache: bool = True,
    stream: TextIO | None = sys.stderr,
    on_start: Callable[[Path], None] | None = None,
    color: bool | None = None,
) -> ReplayResult:
    """Replay the recorded run `run_dir` under policy `policy_name` of `policy_file`.

    The replay runs every step the recorded run completed, from `from_step` (earlier
    ones are copied), in a new directory under `runs_root/<learn>-replay/`, and
    writes `replay.json` there. `on_start` is told that directory once it exists; the
    progress goes to `stream`, styled as `color` says (`Progress`). Without
    `shared_cache` only the two runs' own records answer for free.
    """
    original = RunDirectory(run_dir)
    if not original.info_path.is_file() or not original.plan_path.is_file():
        raise ReplayError(f"not a run directory: {run_dir}")
    completed = original.completed_steps()
    if not completed:
        raise ReplayError(f"{run_dir} has no completed step to replay")
    if not 1 <= from_step <= completed[-1]:
        raise ReplayError(f"--from-step must be between 1 and {completed[-1]}, the last step {run_dir} completed")
    policy_plan = replay_policy(policy_file, policy_name)
    info = original.info()
    given = [
        f"{verb} {', '.join(f'`{name}`' for name in info[key])} with {key.replace('_', ' ')}"
        for verb, key in (("scored", "reward_functions"), ("called", "tool_functions"))
        if info.get(key)
    ]
    if given and not offline:
        raise ReplayError(
            f"{run_dir} {' and '.join(given)} given from Python, which a replay does not have: "
            "replay it --offline (the recorded operations under the new rule, no call)"
        )
    learn = info["learn"]
    recorded_plan = Plan.from_json(original.plan_path.read_text(encoding="utf-8"))
    plan = recorded_plan.with_policy(learn, policy_plan, policy_name, policy_file.resolve().parent)
    try:
        start = initial_library(recorded_plan, learn, runs_root_of(original.path), Path(info["base_dir"]))
    except RuntimeError as error:
        raise ReplayError(str(error)) from None
    recorded = [start] + [Library.from_json(original.read_step(s, "library")) for s in completed]
    label = f"{policy_file}:{policy_name}"
    replay = RunDirectory.create(
        runs_root,
        f"{learn}-replay",
        plan.to_json(),
        {
            "learn": learn,
            "base_dir": info["base_dir"],
            "plan_sha256": plan.sha256,
            "replay_of": str(original.path.resolve()),
            "policy": label,
            "from_step": from_step,
            "offline": offline,
        },
    )
    if on_start is not None:
        on_start(replay.path)
    for step in range(1, from_step):
        shutil.copytree(original.step_dir(step), replay.step_dir(step))
    session = _Replay(
        plan, recorded_plan, learn, Path(info["base_dir"]), original, replay, recorded, from_step, offline, shared_cache=shared_cache
    )
    status, message, steps = asyncio.run(session.run(stream, color))
    original_usage = (
        read_json(original.usage_path) if original.usage_path.is_file() else usage_from_events(recorded_plan, original.events_path).to_json()
    )
    last = steps[-1].step if steps else from_step - 1
    result = ReplayResult(
        run_dir=replay.path,
        original_dir=original.path,
        policy=label,
        from_step=from_step,
        offline=offline,
        status=status,
        message=message,
        steps=tuple(steps),
        library=steps[-1].library if steps else recorded[from_step - 1],
        original_library=recorded[last],
        usage=session.usage.to_json(),
        original_usage=original_usage,
    )
    atomic_write_json(replay.path / "replay.json", result.to_json())
    return result


class _Replay:
    """One replay's steps, inside its run directory."""

    def __init__(
        self,
        plan: Plan,
        original_plan: Plan,
        learn: str,
        base_dir: Path,
        original: RunDirectory,
        replay: RunDirectory,
        recorded: list[Library],
        from_step: int,
        offline: bool,
        *,
        shared_cache: bool,
    ) -> None:
        self.plan = plan
        self.learn = learn
        self.base_dir = base_dir
        self.original = original
        self.replay = replay
        self.recorded = recorded
        """The recorded library before step 1, then after each completed step."""
        self.from_step = from_step
        self.offline = offline
        self.shared_cache = shared_cache
        self.usage = Usage(model_documents(plan))
        self.events = EventLog(replay.events_path)
        self.recorded_policy = original_plan.learn(learn).policy

    async def run(self, stream: TextIO | None, color: bool | None = None) -> tuple[str, str | None, list[ReplayedStep]]:
        steps: list[ReplayedStep] = []
        progress = Progress(stream, title=f"replay {self.learn}", cost=lambda: self.usage.total_usd, budget_usd=run_budget(self.plan.learn(self.learn)).usd, color=color)
        self.events.append("replay_started", original=str(self.original.path), from_step=self.from_step, offline=self.offline)
        async with ending_cleanly(self.events, None, (RuleError, ReplayError)) as end:
            async with contextlib.AsyncExitStack() as stack:
                learner = await self._learner(stack, progress)
                library = self.recorded[self.from_step - 1]
                for step in range(self.from_step, len(self.recorded)):
                    replayed, library = await self._step(learner, step, library)
                    steps.append(replayed)
                    atomic_write_json(self.replay.usage_path, self.usage.to_json())
        progress.close()
        status, message = end.status, end.message
        atomic_write_json(self.replay.usage_path, self.usage.to_json())
        self.events.append("run_" + ("finished" if status == "completed" else status), message=message)
        self.events.close()
        self.replay.update_info(status=status, message=message, steps_completed=self.from_step - 1 + len(steps))
        return status, message, steps

    async def _learner(self, stack: contextlib.AsyncExitStack, progress: Progress) -> Learner:
        learn = self.plan.learn(self.learn)
        client: LLMClient
        models: dict[str, Mapping[str, Any]]
        if self.offline:
            client, models = _NoCalls(), model_documents(self.plan)
        else:
            budget = run_budget(learn)
            client, models = await stack.enter_async_context(
                client_stack(
                    self.plan,
                    self.base_dir,
                    self.replay,
                    self.usage,
                    budget,
                    self.events,
                    progress,
                    shared_cache=self.shared_cache,
                    also_read=(self.original.record_path,),
                )
            )
        scorer = await stack.enter_async_context(
            RewardScorer(self.plan.rewards(), base_dir=self.base_dir, client=client, models=models, shown=judge_fields(self.plan, learn))
        )
        tools = (
            ToolBox()  # offline, nothing is rolled out
            if self.offline
            else await stack.enter_async_context(open_tools(self.plan.task(learn.task), self.base_dir, scorer, self.replay, self.events))
        )
        learner = Learner(
            self.plan,
            self.learn,
            base_dir=self.base_dir,
            run=self.replay,
            client=client,
            scorer=scorer,
            events=self.events,
            progress=progress,
            tools=tools,
            structured=structured_mode(models, learn.learner),
        )
        if learn.validate:
            learner.evaluate_gate = self._recorded_gate if self.offline else validation_gate(self.plan, self.learn, self.base_dir, learner, scorer)
        if learn.prune == "hurting":
            learner.prune = self._recorded_prune if self.offline else validation_pruning(self.plan, self.learn, self.base_dir, learner, scorer)
        return learner

    async def _recorded_gate(self, old: Library, new: Library, step: int) -> tuple[bool, dict[str, Any]]:
        """Offline, a step's gate decides as the recorded one did, and accepts where it did not gate."""
        decision = self.original.read_step(step, "report").get("gate")
        return decision != "rejected", {"recorded_decision": decision}

    async def _recorded_prune(self, library: Library, step: int) -> Pruning:
        """Offline, a step prunes what the recorded step pruned (nothing when it did not prune)."""
        path = self.original.step_dir(step) / "prune.json"
        if not path.is_file():
            return Pruning((), ())
        recorded = read_json(path)
        return Pruning((), tuple(Operation.from_json(op) for op in recorded["operations"]))

    async def _step(self, learner: Learner, step: int, library: Library) -> tuple[ReplayedStep, Library]:
        matched = library.content_hash() == self.recorded[step - 1].content_hash()
        source: StepSource
        if matched or self.offline:
            groups = learner.read_groups(self.original, step)
            reconsolidate = not self.offline and learner.policy.max_per_group != self.recorded_policy.max_per_group
            operations = None if reconsolidate else self._operations(step)
            source = "consolidated" if reconsolidate else "applied"
            library, outcome = await learner.run_step(step, library, recorded_groups=groups, recorded_operations=operations)
        else:
            source = "rerun"
            library, outcome = await learner.run_step(step, library)
        replayed = ReplayedStep(step, source, matched, outcome.mean_reward, library, self.recorded[step])
        self.events.append("step_replayed", **replayed.to_json())
        return replayed, library

    def _operations(self, step: int) -> list[Operation]:
        return [Operation.from_json(op) for op in self.original.read_step(step, "operations")]


# ---------------------------------------------------------------------- the report


def _usage_line(label: str, usage: Mapping[str, Any]) -> str:
    total = usage.get("total") or {}
    tokens = int(total.get("prompt_tokens", 0)) + int(total.get("completion_tokens", 0))
    return f"  {label:<9}{total.get('calls', 0):>9}{total.get('cached_calls', 0):>8}{tokens:>10}  ${float(total.get('usd', 0.0)):.4f}"


def format_replay(result: ReplayResult) -> str:
    """The replay for people: its steps, the two final libraries' diff, and both runs' spending."""
    mode = "offline" if result.offline else "online"
    last = result.steps[-1].step if result.steps else result.from_step - 1
    lines = [
        f"replay of {result.original_dir} under policy {result.policy}, from step {result.from_step} ({mode})",
        f"replay run {result.status}: {result.run_dir}",
    ]
    if result.message:
        lines.append(f"  {result.message}")
    if result.steps:
        lines += ["", "  step  replayed as                              reward  library  original"]
        for s in result.steps:
            note = "" if s.start_matched else "  (started from a different library)"
            lines.append(
                f"  {s.step:>4}  {_SOURCE_TEXT[s.source]:<39} {s.mean_reward:6.3f}  {len(s.library):>7}  {len(s.original):>8}{note}"
            )
    original, replayed = result.original_library, result.library
    lines += [
        "",
        f"library after step {last}: original v{original.version} ({len(original)} experiences), "
        f"replay v{replayed.version} ({len(replayed)} experiences)",
    ]
    diff = result.diff
    if result.identical:
        lines.append("  identical: same experiences, history and provenance")
    elif not (diff.added or diff.removed or diff.modified):
        lines.append("  same experiences; their history or provenance differs")
    lines += [f"  + {e['id']}  {e['text']}" for e in diff.added]
    lines += [f"  - {e['id']}  {e['text']}" for e in diff.removed]
    lines += [f"  ~ {m.id}  {m.words}" for m in diff.modified]
    lines += [
        "",
        "  spent       calls  cached    tokens  cost",
        _usage_line("original", result.original_usage),
        _usage_line("replay", result.usage),
    ]
    return "\n".join(lines) + "\n"
