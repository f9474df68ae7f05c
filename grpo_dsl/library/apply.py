"""The policy a library changes under, the report of one update, and the built-in rule `apply`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias, cast

from grpo_dsl.library.demos import Demo, Example
from grpo_dsl.library.experiences import Experience, Library
from grpo_dsl.library.operations import (
    DEMO_KINDS,
    LESSON_KINDS,
    ON_FULL_MODES,
    OnFull,
    Operation,
    OpKind,
    id_number,
    normalize_text,
    word_count,
)
from grpo_dsl.library.provenance import ProvenanceEntry, ProvenanceOp

__all__ = [
    "ApplyContext",
    "ApplyReport",
    "OpOutcome",
    "PolicySpec",
    "Rule",
    "RuleRef",
    "apply",
]


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A user update rule: `function` in the Python file `path` (relative to the program's folder)."""

    path: str
    function: str


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """How the library may change; a mirror of the plan's `Policy` (docs/plan.md).

    `keep` is always allowed whatever `ops` says. `max_per_group` limits what one
    group may propose and is enforced before the rule runs; `style` is guidance for
    the learner; the rule enforces `ops`, `capacity`, `max_words` and `on_full`.
    `demos` is how many demonstrations the library may hold; demo operations are
    allowed only when it is above 0.
    """

    ops: tuple[OpKind, ...] = ("add", "modify", "delete", "keep")
    max_per_group: int = 2
    capacity: int = 48
    max_words: int = 32
    on_full: OnFull = "reject"
    style: str | None = None
    rule: RuleRef | None = None
    demos: int = 0

    def allows(self, op: OpKind) -> bool:
        if op in DEMO_KINDS:
            return self.demos > 0
        return op == "keep" or op in self.ops

    def to_json(self) -> dict[str, Any]:
        return {
            "ops": list(self.ops),
            "max_per_group": self.max_per_group,
            "capacity": self.capacity,
            "max_words": self.max_words,
            "on_full": self.on_full,
            "style": self.style,
            "rule": {"path": self.rule.path, "function": self.rule.function} if self.rule else None,
            "demos": self.demos,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicySpec:
        """Read a plan's policy; absent keys take the defaults, wrong values raise ValueError."""
        default = cls()
        ops = tuple(data.get("ops", default.ops))
        unknown = [op for op in ops if op not in LESSON_KINDS]
        if unknown:
            raise ValueError(f"policy `ops` has unknown operation {unknown[0]!r}")
        numbers = {name: data.get(name, getattr(default, name)) for name in ("max_per_group", "capacity", "max_words")}
        for name, value in numbers.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"policy `{name}` must be a positive integer, not {value!r}")
        on_full = data.get("on_full", default.on_full)
        if on_full not in ON_FULL_MODES:
            raise ValueError(f"policy `on_full` must be one of {', '.join(ON_FULL_MODES)}, not {on_full!r}")
        style = data.get("style")
        rule = data.get("rule")
        demos = data.get("demos", default.demos)
        if not isinstance(demos, int) or isinstance(demos, bool) or demos < 0:
            raise ValueError(f"policy `demos` must be a non-negative integer, not {demos!r}")
        return cls(
            ops=cast(tuple[OpKind, ...], ops),
            max_per_group=numbers["max_per_group"],
            capacity=numbers["capacity"],
            max_words=numbers["max_words"],
            on_full=on_full,
            style=style if isinstance(style, str) else None,
            rule=RuleRef(rule["path"], rule["function"]) if rule else None,
            demos=demos,
        )


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """What a rule knows about the step besides the operations: its number and its groups."""

    step: int
    groups: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "groups": list(self.groups)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApplyContext:
        return cls(step=data["step"], groups=tuple(data.get("groups", ())))


@dataclass(frozen=True, slots=True)
class OpOutcome:
    """What became of the operation at `index` in the list: the id it touched or created,
    or the reason it was rejected, and the ids it evicted to make room."""

    index: int
    op: Operation
    id: str | None = None
    reason: str | None = None
    evicted: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op.to_json(),
            "id": self.id,
            "reason": self.reason,
            "evicted": list(self.evicted),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OpOutcome:
        return cls(
            index=data["index"],
            op=Operation.from_json(data["op"]),
            id=data.get("id"),
            reason=data.get("reason"),
            evicted=tuple(data.get("evicted", ())),
        )


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """Every operation of a list, applied or rejected (with the reason), in list order."""

    applied: tuple[OpOutcome, ...] = ()
    rejected: tuple[OpOutcome, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"applied": [o.to_json() for o in self.applied], "rejected": [o.to_json() for o in self.rejected]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApplyReport:
        return cls(
            applied=tuple(OpOutcome.from_json(o) for o in data["applied"]),
            rejected=tuple(OpOutcome.from_json(o) for o in data["rejected"]),
        )


Rule: TypeAlias = Callable[[Library, Sequence[Operation], PolicySpec, ApplyContext], tuple[Library, ApplyReport]]
"""The signature of every update rule, the built-in `apply` included."""


@dataclass(slots=True)
class _Step:
    """The working state of one `apply` call."""

    library: Library
    policy: PolicySpec
    context: ApplyContext
    live: list[Experience]
    next_id: int
    demos: list[Demo]
    next_demo: int
    retired: list[Experience] = field(default_factory=list)
    retired_demos: list[Demo] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)
    """id -> what happened to it in this step: "added", "modified", "deleted" or "evicted"."""
    outcomes: list[OpOutcome] = field(default_factory=list)

    def position(self, experience_id: str) -> int | None:
        return next((i for i, e in enumerate(self.live) if e.id == experience_id), None)

    def entry(self, op: ProvenanceOp, operation: Operation, **details: str) -> ProvenanceEntry:
        groups = operation.source.groups if operation.source and operation.source.groups else self.context.groups
        return ProvenanceEntry(op, self.context.step, groups, **{"rationale": operation.rationale, **details})

    def text_problem(self, text: str, current: Experience | None = None) -> str | None:
        if not text:
            return "empty text"
        words = word_count(text)
        if words > self.policy.max_words:
            return f"text has {words} words, the limit is {self.policy.max_words}"
        if current is not None and text == current.text:
            return f"text is the same as {current.id}'s"
        key = normalize_text(text)
        duplicate = next((e.id for e in self.live if e is not current and normalize_text(e.text) == key), None)
        return f"text duplicates {duplicate}" if duplicate else None


def apply(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """The built-in update rule: apply `operations` to `library` under `policy`.

    Pure and deterministic. Deletes and modifies are applied first, in list order,
    then adds, in list order, so that room freed by a delete is available to an
    add of the same step; demo operations follow the same order. An operation is rejected, with its reason in the report,
    when its kind is not in `policy.ops`; it names an id that is not live; an
    earlier operation of the list already changed that id (the first applied one
    wins); its text is empty, longer than `max_words`, unchanged, or equal to
    another experience's text (compared by `normalize_text`); or it is an add to a
    full library and `on_full` is `reject` (or every experience was changed in
    this step, so none may be evicted). `keep` is always applied and changes nothing.
    A demo operation is rejected when the policy holds no demos (`demos = 0`); it
    names a demo id that is not live or was already changed in this step; its answer
    is empty; its question already has a live demo; or it adds to a full set of demos.

    When anything changed the result has `version = library.version + 1`;
    otherwise the very same library is returned. New ids are numbered from
    `library.next_id`; replaced, deleted and evicted experiences go to `history`.
    """
    ops = tuple(operations)
    state = _Step(
        library,
        policy,
        context,
        live=list(library.experiences),
        next_id=library.next_id,
        demos=list(library.demos),
        next_demo=library.next_demo,
    )
    for index, operation in enumerate(ops):
        if operation.op in ("modify", "delete"):
            _change(state, index, operation)
        elif operation.op in ("replace_demo", "delete_demo"):
            _change_demo(state, index, operation)
    for index, operation in enumerate(ops):
        if operation.op == "add":
            _add(state, index, operation)
        elif operation.op == "add_demo":
            _add_demo(state, index, operation)
        elif operation.op == "keep":
            state.outcomes.append(OpOutcome(index, operation))
    outcomes = sorted(state.outcomes, key=lambda o: o.index)
    report = ApplyReport(
        applied=tuple(o for o in outcomes if o.reason is None),
        rejected=tuple(o for o in outcomes if o.reason is not None),
    )
    if not state.changed:
        return library, report
    updated = Library(
        version=library.version + 1,
        experiences=tuple(state.live),
        history=library.history + tuple(state.retired),
        next_id=state.next_id,
        demos=tuple(state.demos),
        demo_history=library.demo_history + tuple(state.retired_demos),
        next_demo=state.next_demo,
    )
    return updated, report


def _change(state: _Step, index: int, operation: Operation) -> None:
    target = cast(str, operation.id)
    position = state.position(target)
    current = state.live[position] if position is not None else None
    text = (operation.text or "").strip()
    retired = {e.id for e in state.library.history}
    forbidden = f"op `{operation.op}` not allowed by the policy"
    reason = _target_problem(state, operation, target, current is not None, retired, forbidden, "id")
    if reason is None and operation.op == "modify":
        reason = state.text_problem(text, current)
    if reason is not None or current is None or position is None:
        state.outcomes.append(OpOutcome(index, operation, id=target, reason=reason))
        return
    if operation.op == "delete":
        state.retired.append(replace(current, provenance=current.provenance + (state.entry("delete", operation),)))
        del state.live[position]
        state.changed[target] = "deleted"
    else:
        state.retired.append(current)
        provenance = current.provenance + (state.entry("modify", operation, replaced=current.text),)
        state.live[position] = replace(current, text=text, provenance=provenance)
        state.changed[target] = "modified"
    state.outcomes.append(OpOutcome(index, operation, id=target))


def _add(state: _Step, index: int, operation: Operation) -> None:
    text = (operation.text or "").strip()
    capacity = state.policy.capacity
    candidates = sorted((e for e in state.live if e.id not in state.changed), key=_eviction_order(state.policy.on_full))
    excess = len(state.live) - capacity + 1
    if not state.policy.allows("add"):
        reason = "op `add` not allowed by the policy"
    elif (problem := state.text_problem(text)) is not None:
        reason = problem
    elif excess > 0 and state.policy.on_full == "reject":
        reason = f"library is full ({capacity}) and on_full = reject"
    elif excess > len(candidates):
        reason = f"library is full ({capacity}) and every experience was changed in this step"
    else:
        new_id = f"E{state.next_id}"
        state.next_id += 1
        victims = candidates[: max(excess, 0)]
        for victim in victims:
            entry = state.entry("evict", operation, rationale=f"library full ({capacity}), made room for {new_id}")
            state.retired.append(replace(victim, provenance=victim.provenance + (entry,)))
            state.live.remove(victim)
            state.changed[victim.id] = "evicted"
        state.live.append(Experience(new_id, text, (state.entry("add", operation),), created_step=state.context.step))
        state.changed[new_id] = "added"
        state.outcomes.append(OpOutcome(index, operation, id=new_id, evicted=tuple(v.id for v in victims)))
        return
    state.outcomes.append(OpOutcome(index, operation, reason=reason))


NO_DEMOS = "the policy holds no demos (demos = 0)"


def _target_problem(
    state: _Step, operation: Operation, target: str, live: bool, retired: set[str], forbidden: str, noun: str
) -> str | None:
    """Why an operation on the live item `target` cannot apply: a kind the policy forbids,
    an item already changed in this step, or one that is not live."""
    if not state.policy.allows(operation.op):
        return forbidden
    if target in state.changed:
        return f"conflicting ops on {target} in one step: it was already {state.changed[target]}"
    if not live:
        return f"unknown {noun} {target}" + (" (it was deleted)" if target in retired else "")
    return None


def _demo_problem(state: _Step, operation: Operation, current: Demo | None = None) -> str | None:
    """Why a demo operation's example cannot go in, or None."""
    example = operation.example
    if not state.policy.allows(operation.op):
        return NO_DEMOS
    if example is None or not example.answer.strip():
        return "empty answer"
    taken = next((d.id for d in state.demos if d is not current and d.example.question == example.question), None)
    return f"question {example.question} already has demo {taken}" if taken else None


def _change_demo(state: _Step, index: int, operation: Operation) -> None:
    target = cast(str, operation.id)
    position = next((i for i, d in enumerate(state.demos) if d.id == target), None)
    current = state.demos[position] if position is not None else None
    retired = {d.id for d in state.library.demo_history}
    reason = _target_problem(state, operation, target, current is not None, retired, NO_DEMOS, "demo")
    if reason is None and operation.op == "replace_demo":
        reason = _demo_problem(state, operation, current)
    if reason is not None or current is None or position is None:
        state.outcomes.append(OpOutcome(index, operation, id=target, reason=reason))
        return
    if operation.op == "delete_demo":
        state.retired_demos.append(replace(current, provenance=current.provenance + (state.entry("delete", operation),)))
        del state.demos[position]
        state.changed[target] = "deleted"
    else:
        state.retired_demos.append(current)
        entry = state.entry("modify", operation, replaced=current.example.answer)
        example = cast(Example, operation.example)
        state.demos[position] = replace(current, example=example, provenance=current.provenance + (entry,))
        state.changed[target] = "modified"
    state.outcomes.append(OpOutcome(index, operation, id=target))


def _add_demo(state: _Step, index: int, operation: Operation) -> None:
    reason = _demo_problem(state, operation)
    if reason is None and len(state.demos) >= state.policy.demos:
        reason = f"the demos are full ({state.policy.demos}): replace one instead"
    if reason is not None or operation.example is None:
        state.outcomes.append(OpOutcome(index, operation, reason=reason))
        return
    new_id = f"D{state.next_demo}"
    state.next_demo += 1
    state.demos.append(Demo(new_id, operation.example, (state.entry("add", operation),), created_step=state.context.step))
    state.changed[new_id] = "added"
    state.outcomes.append(OpOutcome(index, operation, id=new_id))


def _eviction_order(on_full: OnFull) -> Callable[[Experience], tuple[int, int]]:
    """Oldest first is lowest id first (ids follow creation order); least used first breaks ties by age."""
    if on_full == "evict_least_used":
        return lambda e: (e.uses, id_number(e.id) or 0)
    return lambda e: (0, id_number(e.id) or 0)
