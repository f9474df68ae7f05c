"""The interpreter of a `learn` block: Training-Free GRPO, one step per batch.

A step (see docs/learning.md) rolls out G answers per question with the library in
the prompt, scores them, drops groups whose rewards are all equal (when ground truth
is used), summarises each rollout of a kept group, asks the learner for one
semantic advantage per kept group, consolidates the batch's proposals, applies them
with the policy's rule, optionally gates the new library on held-out questions, and
checkpoints. Each group runs its stages as soon as its own rollouts are scored; only
consolidation waits for the whole batch.

A rollout whose calls failed, or whose reward failed, has no reward: it stays in the
record but not in its group. Failed rollouts and learner calls are counted
(`runs.failures`); beyond the learn's `max_failures` the step stops the run. Lessons
are stored as direct statements (`prompts.learner.direct_statement`), and a learner
reply that stopped at `max_tokens` is rejected and recorded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grpo_dsl.clients.protocol import (
    BudgetExceeded,
    ChatRequest,
    EndpointError,
    LLMClient,
    StorageError,
    StructuredOutputError,
    derive_seed,
)
from grpo_dsl.clients.structured import complete_json
from grpo_dsl.core.files import atomic_write_json
from grpo_dsl.core.tasks import gather_tasks
from grpo_dsl.learning.demos import GroupResult, candidates, demo_operations, prompt_key
from grpo_dsl.learning.prune import Pruning
from grpo_dsl.library import (
    OPERATIONS_SCHEMA,
    ApplyContext,
    ApplyReport,
    Library,
    Operation,
    Rule,
    apply,
    cited_ids,
    load_rule,
    normalize_text,
    operations_from_json,
)
from grpo_dsl.plan import Plan
from grpo_dsl.prompts.learner import (
    LEARNER_MAX_TOKENS,
    PROPOSALS_PER_CONSOLIDATION,
    SHOWN_OUTPUT_CHARS,
    LearnerPrompts,
    direct_statement,
)
from grpo_dsl.prompts.messages import compose_templates, render_messages
from grpo_dsl.rewards.scorer import RewardScorer
from grpo_dsl.rollout.answer import Rollout, rollout
from grpo_dsl.rollout.tools import ToolBox
from grpo_dsl.rollout.questions import Question, epoch_order, load_questions
from grpo_dsl.runs.directory import EventLog, RunDirectory
from grpo_dsl.runs.failures import Failures, TooManyFailures
from grpo_dsl.runs.progress import Progress
from grpo_dsl.runs.tracing import span

__all__ = ["GroupOutcome", "Learner", "StepOutcome"]

UNCORROBORATED = "made by one group while other proposals were made by several"
"""Why a proposal is left out of consolidation: when some groups agree on a proposal, word for
word, proposals no other group made are not consolidated (see docs/learning.md)."""

REQUESTED_SCHEMA = {
    **OPERATIONS_SCHEMA,
    "properties": {"operations": {**OPERATIONS_SCHEMA["properties"]["operations"], "minItems": 1}},
}
"""The operations schema as sent to the learner: at least one operation, so "no change" is an explicit
`keep` (a model held to the schema by a grammar otherwise tends to close an empty list at once)."""

REPLY_SHAPE = {"type": "object", "required": ["operations"], "properties": {"operations": {"type": "array"}}}
"""What a learner reply must be to be kept; its operations are then checked one by one."""

NOT_A_RULE = "it describes the attempts shown to the learner, not a general rule"
TRUNCATED_REPLY = "the learner's reply stopped at max_tokens"
PASSED_THROUGH = (BudgetExceeded, EndpointError, StorageError, TooManyFailures)
"""What a learner call lets through: these end the run; any other failure is counted and recorded."""


@dataclass(slots=True)
class GroupOutcome:
    """What one question's group produced in a step."""

    group: str
    question: Question
    messages: list[dict[str, str]]
    rollouts: list[Rollout]
    rewards: list[float | None] = field(default_factory=list)
    """One per rollout; None for a rollout that failed or whose reward failed."""
    reward_errors: list[str | None] = field(default_factory=list)
    kept: bool = False
    skip_reason: str | None = None
    summaries: list[str] = field(default_factory=list)
    rule: str | None = None
    proposals: list[Operation] = field(default_factory=list)
    proposal_error: str | None = None

    @property
    def scored(self) -> list[tuple[Rollout, float]]:
        """The rollouts that have a reward, with it: the group the learner compares."""
        return [(r, reward) for r, reward in zip(self.rollouts, self.rewards) if reward is not None]


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """The numbers of one completed step, for the summary and the report."""

    step: int
    epoch: int
    mean_reward: float
    groups: int
    kept: int
    skipped: int
    applied: int
    rejected: int
    library_size: int
    gate: str | None
    demos: int = 0
    pruned: int = 0
    failed_rollouts: int = 0
    failed_calls: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "mean_reward": self.mean_reward,
            "groups": self.groups,
            "kept": self.kept,
            "skipped": self.skipped,
            "applied": self.applied,
            "rejected": self.rejected,
            "library_size": self.library_size,
            "gate": self.gate,
            "demos": self.demos,
            "pruned": self.pruned,
            "failed_rollouts": self.failed_rollouts,
            "failed_calls": self.failed_calls,
        }




class Learner:
    """Runs the steps of one `learn` declaration of a plan inside a run directory."""

    pipelined = True
    """Each group summarises and proposes as soon as its own rollouts are scored. When
    False, every stage waits for the whole batch (the baseline of benchmarks/bench_learn_step.py)."""

    def __init__(
        self,
        plan: Plan,
        learn_name: str,
        *,
        base_dir: Path,
        run: RunDirectory,
        client: LLMClient,
        scorer: RewardScorer,
        events: EventLog,
        progress: Progress,
        tools: ToolBox,
        structured: str = "json_schema",
        evaluate_gate: Callable[[Library, Library, int], Any] | None = None,
        prune: Callable[[Library, int], Awaitable[Pruning]] | None = None,
    ):
        self.plan = plan
        self.learn = plan.learn(learn_name)
        self.learn_name = learn_name
        self.task = plan.task(self.learn.task)
        self.tools = tools
        self.base_dir = base_dir
        self.run = run
        self.client = client
        self.scorer = scorer
        self.events = events
        self.progress = progress
        self.evaluate_gate = evaluate_gate
        self.prune = prune
        self.policy = self.learn.policy
        rule_ref = self.policy.rule
        self.rule: Rule = load_rule(rule_ref.path, rule_ref.function, base_dir) if rule_ref else apply
        self.templates = compose_templates(self.task.system, self.task.prompt, self.task.experiences, self.task.demos_placement)
        self.bare_templates = compose_templates(self.task.system, self.task.prompt, "none")
        self.prompts = LearnerPrompts()
        self.structured = structured
        questions = load_questions(plan.dataset(self.learn.data), base_dir, self.learn.seed)
        self.schedule = self._schedule(questions)
        self.held_out = self._held_out(plan, base_dir) if self.policy.demos else frozenset()
        self.failures = self._failures(0)

    # ------------------------------------------------------------------ schedule

    def _schedule(self, questions: list[Question]) -> list[tuple[int, list[Question]]]:
        """(epoch, batch) for every step, in order; step numbers start at 1."""
        size = self.learn.batch_size
        steps: list[tuple[int, list[Question]]] = []
        for epoch in range(self.learn.epochs):
            order = epoch_order(questions, self.learn.seed, epoch)
            steps.extend((epoch, order[i : i + size]) for i in range(0, len(order), size))
        return steps

    @property
    def total_steps(self) -> int:
        return len(self.schedule)

    def _held_out(self, plan: Plan, base_dir: Path) -> frozenset[str]:
        """The prompts of the validation and evaluation questions, which never become demos."""
        names = {self.learn.validate} | {plan.evaluate(name).data for name in plan.names("evaluate")}
        return frozenset(
            prompt_key(q.fields, self.task.variables)
            for name in sorted(n for n in names if n is not None)
            for q in load_questions(plan.dataset(name), base_dir)
        )

    def _failures(self, step: int) -> Failures:
        return Failures(
            self.learn.max_failures,
            f"step {step}",
            f"Fix the cause and continue with `grpo run --resume {self.run.path}` (answers already received come "
            f"from the cache), or raise `max_failures` of learn `{self.learn_name}` and start a new run.",
        )

    # ------------------------------------------------------------------ calls

    def _learner_failed(self, step: int, event: str, error: str, **fields: Any) -> None:
        """Record a learner call that failed after its retries (an exception) and count it."""
        self.events.append(event, step=step, error=error, **fields)
        self.failures.attempt("learner calls", error)

    async def _call_json(self, request: ChatRequest) -> dict[str, Any]:
        return await complete_json(
            self.client,
            request,
            REQUESTED_SCHEMA,
            structured=self.structured,
            on_event=lambda event: self.events.append(event.pop("event"), **event),
            accept=REPLY_SHAPE,
        )

    def _learner_request(self, stage: str, prompt: str, sample_key: str, max_tokens: int) -> ChatRequest:
        return ChatRequest(
            model=self.learn.learner,
            messages=({"role": "user", "content": prompt},),
            temperature=self.prompts.temperature,
            max_tokens=max_tokens,
            seed=derive_seed(self.learn.seed, sample_key, 0),
            stage=stage,
            sample_key=sample_key,
            split=self.learn.data,
        )

    # ------------------------------------------------------------------ rollouts

    async def _rollout(self, step: int, epoch: int, question: Question, index: int, messages: list[dict[str, str]]) -> Rollout:
        result = await rollout(
            self.client.complete,
            self.task,
            messages,
            tools=self.tools,
            index=index,
            temperature=self.learn.temperature,
            seed=derive_seed(self.learn.seed, f"{epoch}:{question.id}", index),
            key=f"{step}/{question.id}/{index}",
            stage="rollout",
            split=self.learn.data,
        )
        if result.error:
            self.events.append("rollout_failed", step=step, question=question.id, index=index, error=result.error)
        return result

    # ------------------------------------------------------------------ one group

    async def _group(self, step: int, epoch: int, question: Question, library: Library) -> GroupOutcome:
        with span(f"group {step}:{question.id}", {"grpo.group": f"{step}:{question.id}", "grpo.question": question.id}) as traced:
            group = await self.sample_group(step, epoch, question, library)
            await self.learn_from_group(step, group, library)
            scored = [reward for reward in group.rewards if reward is not None]  # failed rollouts have no reward
            traced.set(
                {
                    "grpo.kept": group.kept,
                    "grpo.rewards": scored,
                    "grpo.failed_rollouts": len(group.rewards) - len(scored),
                    "grpo.skip_reason": group.skip_reason,
                }
            )
        return group

    async def sample_group(self, step: int, epoch: int, question: Question, library: Library) -> GroupOutcome:
        """Roll out and score one question's group, and decide whether it carries a signal."""
        messages = render_messages(self.templates, question.fields, library.prompt_entries(), library.demo_entries())
        group = GroupOutcome(group=f"{step}:{question.id}", question=question, messages=messages, rollouts=[])
        group.rollouts = list(
            await gather_tasks(*(self._rollout(step, epoch, question, i, messages) for i in range(self.learn.group_size)))
        )
        results = await gather_tasks(
            *(
                self.scorer.score(
                    self.learn.reward, r.output, question.fields, tokens=r.tokens, tool_calls=r.tool_calls, split=self.learn.data
                )
                for r in group.rollouts
            )
        )
        group.reward_errors = [r.error or res.error for r, res in zip(group.rollouts, results)]
        group.rewards = [None if error else res.value for error, res in zip(group.reward_errors, results)]
        for r, res in zip(group.rollouts, results):
            if res.error and not r.error:
                self.events.append("reward_failed", step=step, question=question.id, index=r.index, error=res.error)
        for error in group.reward_errors:
            self.failures.attempt("rollouts", error)
        self.progress.rewards(group.rewards)
        scored = [reward for _, reward in group.scored]
        if not scored:
            group.skip_reason = "every rollout failed"
        elif len(scored) < 2:
            group.skip_reason = "fewer than two rollouts have a reward"
        elif self.learn.ground_truth and len(set(scored)) == 1:
            group.skip_reason = "every reward is equal"
        if group.skip_reason:
            self.events.append("group_skipped", step=step, group=group.group, reason=group.skip_reason)
        else:
            group.kept = True
        return group

    async def learn_from_group(self, step: int, group: GroupOutcome, library: Library) -> None:
        """Summarise a kept group's rollouts and ask for its semantic advantage (its proposals)."""
        if not group.kept:
            return
        experiences = library.prompt_entries()
        question = group.question
        reference = question.fields.get("answer") if self.learn.ground_truth else None
        question_text = render_messages(self.bare_templates, question.fields)[-1]["content"]
        if self.learn.summarize:
            summaries = await gather_tasks(
                *(self._summarise(step, group, question_text, reference, r, reward, experiences) for r, reward in group.scored)
            )
            group.summaries = list(summaries)
        else:
            group.summaries = [_truncate(r.transcript()) for r, _ in group.scored]
        await self._advantage(step, group, question_text, reference, experiences)

    async def _summarise(
        self,
        step: int,
        group: GroupOutcome,
        question_text: str,
        reference: Any,
        rollout: Rollout,
        reward: float,
        experiences: Sequence[Mapping[str, str]],
    ) -> str:
        prompt = self.prompts.summary(
            question=question_text,
            reference=reference,
            output=_truncate(rollout.transcript()),
            reward=_format_reward(reward),
            error=rollout.error,
            experiences=experiences,
        )
        request = self._learner_request("summary", prompt, f"{group.group}/summary/{rollout.index}", LEARNER_MAX_TOKENS["summary"])
        try:
            response = await self.client.complete(request)
        except PASSED_THROUGH:
            raise
        except Exception as exc:
            self._learner_failed(step, "summary_failed", str(exc), group=group.group, index=rollout.index)
            return _truncate(rollout.transcript())
        self.failures.attempt("learner calls")
        if response.finish_reason == "length":
            self.events.append("learner_reply_truncated", step=step, group=group.group, stage="summary", index=rollout.index)
            return _truncate(rollout.transcript())
        return (response.content or "").strip()

    async def _advantage(
        self, step: int, group: GroupOutcome, question_text: str, reference: Any, experiences: Sequence[Mapping[str, str]]
    ) -> None:
        if self.learn.summarize:
            ranked = sorted(zip((reward for _, reward in group.scored), group.summaries), key=lambda pair: -pair[0])
            prompt = self.prompts.advantage(
                question=question_text,
                reference=reference,
                attempts=[{"reward": _format_reward(r), "summary": s} for r, s in ranked],
                contrast=ranked[0][0] != ranked[-1][0],
                experiences=experiences,
                policy=self.policy,
                schema=self._schema_text(),
            )
        else:
            rule = await self._contrast(step, group, question_text, reference)
            if rule is None:
                return
            group.rule = rule
            prompt = self.prompts.advantage_from_rule(rule=rule, experiences=experiences, policy=self.policy, schema=self._schema_text())
        request = self._learner_request("advantage", prompt, f"{group.group}/advantage", LEARNER_MAX_TOKENS["advantage"])
        try:
            reply = await self._call_json(request)
        except PASSED_THROUGH:
            raise
        except StructuredOutputError as exc:
            self.failures.attempt("learner calls")
            group.proposal_error = str(exc)
            self.events.append("learner_reply_malformed", step=step, group=group.group, stage="advantage", error=str(exc))
            return
        except Exception as exc:
            group.proposal_error = str(exc)
            self._learner_failed(step, "advantage_failed", str(exc), group=group.group)
            return
        self.failures.attempt("learner calls")
        parsed = operations_from_json(reply, source={"step": step, "groups": [group.group]})
        for problem in parsed.errors:
            self.events.append("operation_invalid", step=step, group=group.group, error=problem)
        answer = str(reference).strip() if reference is not None else ""
        for op in parsed.operations:
            if op.op == "keep":
                continue
            stated = self._stated(step, group.group, op)
            unusable = _proposal_problem(stated.text, answer) if stated is not None else None
            if unusable:
                self.events.append("operation_rejected", step=step, group=group.group, reason=unusable, op=op.to_json())
            elif stated is not None:
                group.proposals.append(stated)

    def _stated(self, step: int, group: str | None, op: Operation) -> Operation | None:
        """`op` with its text as a direct statement (`direct_statement`), or None (recorded) when it has none."""
        if op.text is None:
            return op
        text = direct_statement(op.text)
        if text is None:
            self.events.append("operation_rejected", step=step, group=group, reason=NOT_A_RULE, op=op.to_json())
            return None
        return op if text == op.text else dataclasses.replace(op, text=text)

    async def _contrast(self, step: int, group: GroupOutcome, question_text: str, reference: Any) -> str | None:
        """The rule, in the learner's own words, that the group's best attempt follows and its worst breaks
        (with `summarize = false`, in place of the G summaries).

        Asked in free text, without a schema: small models that write a sound rule in
        prose often write the task's answer instead when made to fill a JSON field.
        """
        ranked = sorted(zip((reward for _, reward in group.scored), group.summaries), key=lambda pair: -pair[0])
        better, worse = ({"value": r, "reward": _format_reward(r), "summary": s} for r, s in (ranked[0], ranked[-1]))
        prompt = self.prompts.contrast(
            question=question_text,
            reference=reference,
            better=better,
            worse=worse,
            contrast=ranked[0][0] != ranked[-1][0],
            policy=self.policy,
        )
        request = self._learner_request("contrast", prompt, f"{group.group}/contrast", LEARNER_MAX_TOKENS["contrast"])
        try:
            response = await self.client.complete(request)
        except PASSED_THROUGH:
            raise
        except Exception as exc:
            group.proposal_error = str(exc)
            self._learner_failed(step, "contrast_failed", str(exc), group=group.group)
            return None
        self.failures.attempt("learner calls")
        said = " ".join((response.content or "").split())
        rule = direct_statement(said) if said else None
        if response.finish_reason == "length":
            group.proposal_error = TRUNCATED_REPLY
            self.events.append("learner_reply_truncated", step=step, group=group.group, stage="contrast", reply=said)
            return None
        if rule is None:
            group.proposal_error = NOT_A_RULE if said else "the learner stated no rule"
            self.events.append("contrast_rejected", step=step, group=group.group, reason=group.proposal_error, reply=said)
            return None
        return rule

    def _schema_text(self) -> str | None:
        return json.dumps(REQUESTED_SCHEMA) if self.structured == "text" else None

    # ------------------------------------------------------------------ consolidation

    async def consolidate(self, step: int, library: Library, groups: Sequence[GroupOutcome]) -> list[Operation]:
        """Merge the kept groups' proposals into one list of operations against `library`."""
        proposals = [(g.group, op) for g in groups for op in g.proposals[: self.policy.max_per_group]]
        for g in groups:
            for op in g.proposals[self.policy.max_per_group :]:
                self.events.append("operation_rejected", step=step, group=g.group, reason="more operations than max_per_group", op=op.to_json())
        if not proposals:
            return []
        ranked = _ranked_proposals(proposals)
        if not self.learn.summarize and len(ranked[0][0]) > 1:
            for names, op in ranked:
                if len(names) == 1:
                    self.events.append("operation_rejected", step=step, group=names[0], reason=UNCORROBORATED, op=op.to_json())
            ranked = [entry for entry in ranked if len(entry[0]) > 1]
        merged: list[Operation] = []
        for start in range(0, len(ranked), PROPOSALS_PER_CONSOLIDATION):
            chunk = ranked[start : start + PROPOSALS_PER_CONSOLIDATION]
            prompt = self.prompts.consolidate(
                experiences=library.prompt_entries(),
                proposals=[{"operation": json.dumps(_without_source(op)), "groups": len(names)} for names, op in chunk],
                policy=self.policy,
                schema=self._schema_text(),
            )
            key = f"{step}/consolidate/{start // PROPOSALS_PER_CONSOLIDATION}"
            request = self._learner_request("consolidate", prompt, key, LEARNER_MAX_TOKENS["consolidate"])
            groups_in_chunk = sorted({name for names, _ in chunk for name in names})
            try:
                reply = await self._call_json(request)
            except PASSED_THROUGH:
                raise
            except Exception as exc:
                if isinstance(exc, StructuredOutputError):
                    self.failures.attempt("learner calls")
                    self.events.append("learner_reply_malformed", step=step, stage="consolidate", error=str(exc))
                else:
                    self._learner_failed(step, "consolidate_failed", str(exc))
                self.events.append("consolidation_fallback", step=step, detail="the proposals are applied unmerged")
                merged.extend(op for _, op in chunk)
                continue
            self.failures.attempt("learner calls")
            parsed = operations_from_json(reply, source={"step": step, "groups": groups_in_chunk})
            for problem in parsed.errors:
                self.events.append("operation_invalid", step=step, stage="consolidate", error=problem)
            merged.extend(op for op in (self._stated(step, None, op) for op in parsed.operations) if op is not None)
        return merged

    def demo_operations(self, step: int, library: Library, groups: Sequence[GroupOutcome]) -> list[Operation]:
        """The demo operations of a step: its groups' winning answers against the policy's `demos` slots."""
        if not self.policy.demos:
            return []
        results = [
            GroupResult(g.group, g.question.id, g.question.fields, [None if r.error else r.output for r in g.rollouts], g.rewards)
            for g in groups
        ]
        found = candidates(
            results,
            variables=self.task.variables,
            source=self.learn.demo_source,
            ground_truth=self.learn.ground_truth,
            held_out=self.held_out,
        )
        return demo_operations(library, found, self.policy.demos, step)

    # ------------------------------------------------------------------ one step

    async def run_step(
        self,
        step: int,
        library: Library,
        *,
        recorded_groups: Sequence[GroupOutcome] | None = None,
        recorded_operations: Sequence[Operation] | None = None,
    ) -> tuple[Library, StepOutcome]:
        """Run step `step` (1-based) from `library` and checkpoint it; return the new library.

        `recorded_groups` (see `read_groups`) stand in for the step's rollouts, rewards,
        summaries and proposals, and `recorded_operations` for its consolidation: what
        is given is reused as it is, not asked for again.
        """
        with span(f"step {step}", {"grpo.step": step, "grpo.library_version": library.version}) as traced:
            new_library, outcome = await self._run_step(step, library, recorded_groups, recorded_operations)
            traced.set({f"grpo.{key}": value for key, value in outcome.to_json().items() if key != "step"})
        return new_library, outcome

    async def _run_step(
        self,
        step: int,
        library: Library,
        recorded_groups: Sequence[GroupOutcome] | None,
        recorded_operations: Sequence[Operation] | None,
    ) -> tuple[Library, StepOutcome]:
        epoch, batch = self.schedule[step - 1]
        self.failures = self._failures(step)
        self.failures.expect("rollouts", len(batch) * self.learn.group_size)
        self.events.append("step_started", step=step, epoch=epoch, questions=[q.id for q in batch], library_version=library.version)
        self.progress.step_started(step, self.total_steps, len(batch), self.learn.group_size)
        if recorded_groups is not None:
            groups = list(recorded_groups)
        elif self.pipelined:
            groups = list(await gather_tasks(*(self._group(step, epoch, q, library) for q in batch)))
        else:
            groups = list(await gather_tasks(*(self.sample_group(step, epoch, q, library) for q in batch)))
            await gather_tasks(*(self.learn_from_group(step, g, library) for g in groups))
        if recorded_operations is not None:
            operations = list(recorded_operations)
        else:
            operations = await self.consolidate(step, library, [g for g in groups if g.kept])
            operations += self.demo_operations(step, library, groups)
        self.failures.check()
        library = library.record_uses(i for g in groups for summary in g.summaries for i in cited_ids(summary))
        new_library, report = self.rule(library, operations, self.policy, ApplyContext(step=step, groups=tuple(g.group for g in groups)))
        gate = None
        if self.evaluate_gate is not None and new_library.content_hash() != library.content_hash():
            accepted, gate_result = await self.evaluate_gate(library, new_library, step)
            gate = "accepted" if accepted else "rejected"
            self.events.append("gate", step=step, decision=gate, result=gate_result)
            if not accepted:
                new_library = library
        pruned = 0
        if self.prune is not None and (new_library.experiences or new_library.demos):
            new_library, pruned = await self._pruned(step, new_library)
        self.failures.check()
        self._checkpoint(step, groups, operations, report, new_library, gate)
        rewards = [r for g in groups for r in g.rewards if r is not None]
        outcome = StepOutcome(
            step=step,
            epoch=epoch,
            mean_reward=sum(rewards) / len(rewards) if rewards else 0.0,
            groups=len(groups),
            kept=sum(g.kept for g in groups),
            skipped=sum(not g.kept for g in groups),
            applied=len(report.applied),
            rejected=len(report.rejected),
            library_size=len(new_library.experiences),
            demos=len(new_library.demos),
            gate=gate,
            pruned=pruned,
            failed_rollouts=self.failures.count("rollouts"),
            failed_calls=self.failures.count("learner calls"),
        )
        self.run.write_step(step, "outcome", outcome.to_json())
        atomic_write_json(self.run.library_path, new_library.to_json())
        self.events.append("step_completed", **outcome.to_json())
        return new_library, outcome

    async def _pruned(self, step: int, library: Library) -> tuple[Library, int]:
        """The library without the items pruning finds hurting, and how many it deleted;
        what was measured and done is the step's `prune.json`."""
        assert self.prune is not None
        found = await self.prune(library, step)
        # the deletions are the runtime's measured decision, not the learner's: allowed whatever `ops` says
        policy = replace(self.policy, ops=tuple(dict.fromkeys((*self.policy.ops, "delete"))))
        pruned, report = library, ApplyReport()
        if found.operations:
            pruned, report = self.rule(library, found.operations, policy, ApplyContext(step=step))
        self.run.write_step(step, "prune", {**found.to_json(), "report": report.to_json()})
        deleted = [o.id for o in report.applied]
        self.events.append("pruned", step=step, deleted=deleted, rejected=[o.to_json() for o in report.rejected])
        return pruned, len(deleted)

    def _checkpoint(
        self,
        step: int,
        groups: Sequence[GroupOutcome],
        operations: Sequence[Operation],
        report: ApplyReport,
        library: Library,
        gate: str | None,
    ) -> None:
        write = self.run.write_step
        write(step, "rollouts", [
            {"group": g.group, "question": g.question.id, "messages": g.messages, "rollouts": [r.to_json() for r in g.rollouts]}
            for g in groups
        ])
        write(step, "rewards", [
            {"group": g.group, "rewards": g.rewards, "errors": g.reward_errors, "kept": g.kept, "skip_reason": g.skip_reason}
            for g in groups
        ])
        write(step, "summaries", [{"group": g.group, "summaries": g.summaries} for g in groups if g.kept])
        write(step, "proposals", [
            {"group": g.group, "rule": g.rule, "operations": [op.to_json() for op in g.proposals], "error": g.proposal_error}
            for g in groups if g.kept
        ])
        write(step, "operations", [op.to_json() for op in operations])
        write(step, "report", {**report.to_json(), "gate": gate})
        write(step, "library", library.to_json())


    def read_groups(self, run: RunDirectory, step: int) -> list[GroupOutcome]:
        """The groups of step `step` as `run` checkpointed them: the inverse of `_checkpoint`."""
        questions = {q.id: q for q in self.schedule[step - 1][1]}
        rewards = {g["group"]: g for g in run.read_step(step, "rewards")}
        summaries = {g["group"]: g["summaries"] for g in run.read_step(step, "summaries")}
        proposals = {g["group"]: g for g in run.read_step(step, "proposals")}
        groups = []
        for recorded in run.read_step(step, "rollouts"):
            name = recorded["group"]
            scored = rewards[name]
            proposed = proposals.get(name, {})
            groups.append(
                GroupOutcome(
                    group=name,
                    question=questions[recorded["question"]],
                    messages=recorded["messages"],
                    rollouts=[Rollout(**{**r, "trajectory": tuple(r["trajectory"])}) for r in recorded["rollouts"]],
                    rewards=scored["rewards"],
                    reward_errors=scored["errors"],
                    kept=scored["kept"],
                    skip_reason=scored["skip_reason"],
                    summaries=summaries.get(name, []),
                    rule=proposed.get("rule"),
                    proposals=[Operation.from_json(op) for op in proposed.get("operations", [])],
                    proposal_error=proposed.get("error"),
                )
            )
        return groups


def _truncate(text: str) -> str:
    return text if len(text) <= SHOWN_OUTPUT_CHARS else text[: SHOWN_OUTPUT_CHARS // 2] + "\n...\n" + text[-SHOWN_OUTPUT_CHARS // 2 :]


def _proposal_problem(text: str | None, answer: str) -> str | None:
    """Why a proposed experience text cannot be used: it quotes the group's reference answer, or has no word."""
    if text is None:
        return None
    if answer and answer in text:
        return "it quotes the reference answer"
    if not any(character.isalpha() for character in text):
        return "it has no word"
    return None


def _ranked_proposals(proposals: Sequence[tuple[str, Operation]]) -> list[tuple[list[str], Operation]]:
    """Equal proposals once, with the groups that made them, the most often made first.

    Proposals are equal when their op, id and text (compared by `normalize_text`) are;
    ties keep the order in which they were first made.
    """
    merged: dict[tuple[str, str | None, str], tuple[list[str], Operation]] = {}
    for group, op in proposals:
        merged.setdefault((op.op, op.id, normalize_text(op.text or "")), ([], op))[0].append(group)
    return sorted(merged.values(), key=lambda entry: -len(entry[0]))


def _without_source(op: Operation) -> dict[str, Any]:
    return {key: value for key, value in op.to_json().items() if key != "source"}


def _format_reward(value: float) -> str:
    return f"{value:.3g}"
