"""Property testing for update rules: Hypothesis strategies and the invariants every rule keeps.

An update rule (`grpo_dsl.library.Rule`) is a pure function, so it can be tested
without an LLM. `check_rule` runs every invariant of `INVARIANTS` against it on
generated libraries, operation lists, policies and contexts, and raises an
`AssertionError` naming the violated invariant with the smallest counterexample
Hypothesis could shrink to. Call it from a test:

    from grpo_dsl.testing import check_rule
    from rules import apply

    def test_my_rule_keeps_the_invariants():
        check_rule(apply)

The strategies (`libraries`, `operation_lists`, `policies`, `apply_cases`, ...)
are public too, for properties specific to a rule. Needs Hypothesis
(`pip install 'grpo-dsl[testing]'`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import TypeVar

from grpo_dsl.core.errors import GrpoError

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Flaky
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("grpo_dsl.testing needs Hypothesis: pip install 'grpo-dsl[testing]'") from exc

from grpo_dsl.library import (
    LESSON_KINDS,
    ON_FULL_MODES,
    OPERATION_KINDS,
    ApplyContext,
    ApplyReport,
    Demo,
    Example,
    Experience,
    Library,
    Operation,
    OpKind,
    PolicySpec,
    ProvenanceEntry,
    Rule,
    demo_number,
    id_number,
    normalize_text,
    word_count,
)

__all__ = [
    "INVARIANTS",
    "WORDS",
    "ApplyCase",
    "Invariant",
    "InvariantViolation",
    "apply_cases",
    "assert_invariants",
    "check_invariant",
    "check_rule",
    "contexts",
    "demos",
    "examples",
    "experiences",
    "libraries",
    "operation_lists",
    "operations",
    "policies",
    "texts",
]

WORDS = ("check", "the", "units", "first", "verify", "each", "case", "bound", "draw", "answer")
"""The vocabulary of generated texts: small, so that duplicates and near-duplicates are frequent."""


# ---------------------------------------------------------------------- strategies


@cache
def texts(min_words: int = 1, max_words: int = 6) -> st.SearchStrategy[str]:
    """Experience texts of `min_words` to `max_words` words drawn from `WORDS`; shrinks towards "check"."""
    count = st.integers(min_words, max_words)
    return st.tuples(count, st.integers(0, len(WORDS) ** max_words - 1)).map(_spell)


def _spell(count_and_digits: tuple[int, int]) -> str:
    count, digits = count_and_digits
    words = []
    for _ in range(count):
        digits, digit = divmod(digits, len(WORDS))
        words.append(WORDS[digit])
    return " ".join(words)


T = TypeVar("T")


def _pick(draw: st.DrawFn, items: Sequence[T]) -> T:
    """One of `items` (not empty); shrinks towards the first."""
    return items[draw(st.integers(0, len(items) - 1))]


def _take(draw: st.DrawFn, items: list[T]) -> T:
    """Remove and return one of `items` (not empty); shrinks towards the first."""
    return items.pop(draw(st.integers(0, len(items) - 1)))


def _variant(draw: st.DrawFn, text: str) -> str:
    """`text` as the learner might repeat it: other case, other spacing."""
    return _pick(draw, (text, text.upper(), "  " + "   ".join(text.split()) + " "))


@st.composite
def experiences(draw: st.DrawFn, id: str | None = None, text: str | None = None, max_words: int = 6) -> Experience:
    """An experience with a plausible provenance (created by an add, perhaps modified since)."""
    experience_id = id or f"E{draw(st.integers(1, 40))}"
    return _experience(draw, experience_id, text if text is not None else draw(texts(1, max_words)), max_words)


def _experience(draw: st.DrawFn, experience_id: str, text: str, max_words: int) -> Experience:
    created = draw(st.integers(0, 20))
    groups = (f"{created}:q{id_number(experience_id)}",)
    provenance = [ProvenanceEntry("add", created, groups)]
    if draw(st.booleans()):
        provenance.append(ProvenanceEntry("modify", created + 1, groups, "sharper", draw(texts(1, max_words))))
    return Experience(experience_id, text, tuple(provenance), created, uses=draw(st.integers(0, 5)))


@st.composite
def examples(draw: st.DrawFn, question: str | None = None) -> Example:
    """A demo's example: a question (`q0`..`q9`), its prompt field, an answer and its reward."""
    asked = question or f"q{draw(st.integers(0, 9))}"
    answer = _pick(draw, ("2024-01-31", "1999-12-01", "31/01/2024", "Jan 31 2024", "", " "))
    reward = draw(st.sampled_from((0.5, 1.0)))
    return Example(asked, {"date": f"date of {asked}"}, answer, reward, _pick(draw, ("rollout", "reference")))


@st.composite
def demos(draw: st.DrawFn, id: str | None = None, question: str | None = None) -> Demo:
    """A demo with a non-empty answer and a provenance starting with its `add_demo`."""
    example = draw(examples(question))
    if not example.answer.strip():
        example = replace(example, answer="2024-01-31")
    created = draw(st.integers(0, 20))
    added = ProvenanceEntry("add", created, (f"{created}:{example.question}",))
    return Demo(id or f"D{draw(st.integers(1, 20))}", example, (added,), created)


def _demo_parts(draw: st.DrawFn, max_demos: int) -> tuple[tuple[Demo, ...], tuple[Demo, ...], int]:
    """The demo fields of a generated library: live demos of distinct questions, retired ones, next_demo."""
    live = draw(st.integers(0, max_demos))
    retired = draw(st.integers(0, 2))
    numbers = sorted(draw(st.lists(st.integers(1, 12), min_size=live + retired, max_size=live + retired, unique=True)))
    questions = draw(st.lists(st.integers(0, 9), min_size=live, max_size=live, unique=True))
    alive = tuple(draw(demos(f"D{n}", f"q{q}")) for n, q in zip(numbers[:live], questions, strict=True))
    gone = []
    for number in numbers[live:]:
        old = draw(demos(f"D{number}"))
        gone.append(replace(old, provenance=old.provenance + (ProvenanceEntry("delete", old.created_step + 1),)))
    return alive, tuple(gone), max(numbers, default=0) + 1 + draw(st.integers(0, 2))


@st.composite
def libraries(
    draw: st.DrawFn, max_size: int = 6, max_history: int = 3, max_words: int = 6, max_demos: int = 3
) -> Library:
    """A well-formed library: unique ids in creation order, distinct texts, a history of retired ids,
    and up to `max_demos` demos of distinct questions."""
    size = draw(st.integers(0, max_size))
    retired = draw(st.integers(0, max_history))
    numbers = draw(
        st.lists(
            st.integers(1, 2 * (max_size + max_history) + 2),
            min_size=size + retired,
            max_size=size + retired,
            unique=True,
        )
    )
    contents = draw(st.lists(texts(1, max_words), min_size=size, max_size=size, unique_by=normalize_text))
    live = tuple(
        _experience(draw, f"E{n}", t, max_words) for n, t in zip(sorted(numbers[:size]), contents, strict=True)
    )
    history: list[Experience] = []
    for number in sorted(numbers[size:]):
        gone = _experience(draw, f"E{number}", draw(texts(1, max_words)), max_words)
        removal = ProvenanceEntry(_pick(draw, ("delete", "evict")), gone.created_step + 1, gone.provenance[0].groups)
        history.append(replace(gone, provenance=gone.provenance + (removal,)))
    live_demos, retired_demos, next_demo = _demo_parts(draw, max_demos)
    return Library(
        version=draw(st.integers(0, 9)),
        experiences=live,
        history=tuple(history),
        next_id=max(numbers, default=0) + 1 + draw(st.integers(0, 2)),
        demos=live_demos,
        demo_history=retired_demos,
        next_demo=next_demo,
    )


@st.composite
def policies(draw: st.DrawFn, max_capacity: int = 6, max_words: int = 6) -> PolicySpec:
    """A policy allowing every lesson op or a random subset, with a small capacity and word limit,
    any `on_full` mode, and room for 0 to 3 demos."""
    restricted = draw(st.booleans())
    return PolicySpec(
        ops=tuple(op for op in LESSON_KINDS if not restricted or draw(st.booleans())),
        max_per_group=draw(st.integers(1, 4)),
        capacity=draw(st.integers(1, max_capacity)),
        max_words=draw(st.integers(1, max_words)),
        on_full=_pick(draw, ON_FULL_MODES),
        demos=draw(st.integers(0, 3)),
    )


@st.composite
def contexts(draw: st.DrawFn) -> ApplyContext:
    """A step number and the groups of that step."""
    step = draw(st.integers(1, 30))
    questions = draw(st.lists(st.integers(0, 9), max_size=3, unique=True))
    return ApplyContext(step, tuple(f"{step}:q{q}" for q in questions))


def _unknown_id(draw: st.DrawFn, library: Library) -> str:
    """An id that is not live: never issued yet, or deleted before."""
    retired = [e.id for e in library.history if library.get(e.id) is None]
    unused = f"E{library.next_id + draw(st.integers(0, 3))}"
    return _pick(draw, [unused, *retired])


def _unknown_demo(draw: st.DrawFn, library: Library) -> str:
    """A demo id that is not live: never issued yet, or deleted before."""
    retired = [d.id for d in library.demo_history if library.demo(d.id) is None]
    return _pick(draw, [f"D{library.next_demo + draw(st.integers(0, 3))}", *retired])


def _new_question(draw: st.DrawFn, library: Library, taken: set[str] | None = None) -> str | None:
    """A question no live demo (nor `taken`) answers, or None when all ten are taken."""
    used = {d.example.question for d in library.demos} | (taken or set())
    free = [f"q{i}" for i in range(10) if f"q{i}" not in used]
    return _pick(draw, free) if free else None


_OPERATION_SHAPES = (
    "add",
    "add",
    "add",
    "keep",
    "add long",
    "add empty",
    "modify unknown",
    "delete unknown",
    "add_demo",
    "add_demo",
    "demo unknown",
)
_OPERATION_SHAPES_ON_DEMOS = ("replace_demo", "delete_demo", "demo same question")
_OPERATION_SHAPES_ON_EXPERIENCES = (
    "modify",
    "modify",
    "modify",
    "delete",
    "delete",
    "add duplicate",
    "modify unchanged",
    "modify long",
)


@st.composite
def operations(draw: st.DrawFn, library: Library, policy: PolicySpec | None = None) -> Operation:
    """Any single operation against `library`: valid ones, and ones naming unknown or deleted
    ids, repeating an existing text, with an empty or over-long text, or unchanged."""
    limit = (policy or PolicySpec()).max_words
    shapes = _OPERATION_SHAPES + (_OPERATION_SHAPES_ON_EXPERIENCES if library.experiences else ())
    shapes += _OPERATION_SHAPES_ON_DEMOS if library.demos else ()
    shape = _pick(draw, shapes)
    if shape == "keep":
        return Operation.keep()
    if shape == "add_demo":
        return Operation.add_demo(draw(examples()))
    if shape == "demo unknown":
        unknown = _unknown_demo(draw, library)
        return _pick(draw, (Operation.delete_demo(unknown), Operation.replace_demo(unknown, draw(examples()))))
    if shape in _OPERATION_SHAPES_ON_DEMOS:
        target_demo = _pick(draw, library.demos)
        if shape == "delete_demo":
            return Operation.delete_demo(target_demo.id)
        if shape == "replace_demo":
            return Operation.replace_demo(target_demo.id, draw(examples()))
        return Operation.add_demo(draw(examples(target_demo.example.question)))
    if shape == "add empty":
        return Operation.add(_pick(draw, ("", "   ")))
    if shape == "delete unknown":
        return Operation.delete(_unknown_id(draw, library))
    if shape == "modify unknown":
        return Operation.modify(_unknown_id(draw, library), draw(texts(1, limit)))
    if shape in ("add", "add long"):
        return Operation.add(draw(texts(1, limit) if shape == "add" else texts(limit + 1, limit + 3)))
    target = _pick(draw, library.experiences)
    if shape == "delete":
        return Operation.delete(target.id)
    if shape == "add duplicate":
        return Operation.add(_variant(draw, target.text))
    if shape == "modify unchanged":
        return Operation.modify(target.id, target.text)
    return Operation.modify(target.id, draw(texts(1, limit) if shape == "modify" else texts(limit + 1, limit + 3)))


def operation_lists(
    library: Library,
    policy: PolicySpec | None = None,
    *,
    valid: bool | None = None,
    max_size: int = 6,
) -> st.SearchStrategy[list[Operation]]:
    """Lists of operations against `library` under `policy`.

    `valid=True`: every operation is allowed by the policy, names a live id at
    most once, has a new text within the word limit, and adds fit in the free
    room, so a correct rule applies them all. `valid=False`: such a list with
    one operation a correct rule must reject inserted (an unknown or deleted id,
    a second op on an id already changed, a duplicate, empty or over-long text,
    an unchanged modify, an op the policy does not allow, an add to a full
    library with `on_full = reject`). `valid=None`: anything `operations` draws,
    so conflicts, duplicates and disallowed ops mix with valid ones.
    """
    spec = policy or PolicySpec()
    if valid is None:
        return st.lists(operations(library, spec), max_size=max_size)
    if valid:
        return _valid_lists(library, spec, max_size)
    return _invalid_lists(library, spec, max_size)


@st.composite
def _valid_lists(draw: st.DrawFn, library: Library, policy: PolicySpec, max_size: int) -> list[Operation]:
    texts_in_use = {normalize_text(e.text) for e in library.experiences}
    untouched = list(library.ids)
    room = max(policy.capacity - len(library), 0)
    untouched_demos = [d.id for d in library.demos]
    demo_room = max(policy.demos - len(library.demos), 0)
    questions: set[str] = set()
    allowed = [op for op in OPERATION_KINDS if policy.allows(op)]
    result: list[Operation] = []
    for _ in range(draw(st.integers(0, max_size))):
        kind = _pick(draw, allowed)
        if kind in ("add_demo", "replace_demo"):
            question = _new_question(draw, library, questions)
            if question is None or (kind == "add_demo" and demo_room == 0) or (kind == "replace_demo" and not untouched_demos):
                continue
            questions.add(question)
            example = replace(draw(examples(question)), answer="2024-01-31")
            if kind == "add_demo":
                demo_room -= 1
                result.append(Operation.add_demo(example))
            else:
                result.append(Operation.replace_demo(_take(draw, untouched_demos), example))
        elif kind == "delete_demo" and untouched_demos:
            result.append(Operation.delete_demo(_take(draw, untouched_demos)))
        elif kind in ("add", "modify"):
            text = draw(texts(1, policy.max_words))
            if (
                normalize_text(text) in texts_in_use
                or (kind == "add" and room == 0)
                or (kind == "modify" and not untouched)
            ):
                continue
            texts_in_use.add(normalize_text(text))
            if kind == "add":
                room -= 1
                result.append(Operation.add(text))
            else:
                result.append(Operation.modify(_take(draw, untouched), text))
        elif kind == "delete" and untouched:
            result.append(Operation.delete(_take(draw, untouched)))
        elif kind == "keep":
            result.append(Operation.keep())
    return result


@st.composite
def _invalid_lists(draw: st.DrawFn, library: Library, policy: PolicySpec, max_size: int) -> list[Operation]:
    result = draw(_valid_lists(library, policy, max(max_size - 1, 0)))
    limit = policy.max_words
    changed = [o.id for o in result if o.id is not None]
    untouched = [e for e in library.experiences if e.id not in changed]
    forbidden = [op for op in LESSON_KINDS if not policy.allows(op)]
    deletes = sum(o.op == "delete" for o in result)
    shapes = ["add long", "add empty"]
    shapes += ["delete unknown"] if policy.allows("delete") else []
    shapes += ["modify unknown"] if policy.allows("modify") else []
    shapes += ["forbidden"] if forbidden else []
    shapes += ["add duplicate"] if untouched else []
    shapes += ["modify unchanged"] if untouched and policy.allows("modify") else []
    shapes += ["add to full"] if len(library) - deletes >= policy.capacity and policy.on_full == "reject" else []
    shapes += ["conflict"] if changed else []
    shapes += ["demo unknown", "demo empty"] if policy.demos else ["demo forbidden"]
    demo_deletes = sum(o.op == "delete_demo" for o in result)
    demo_adds = sum(o.op == "add_demo" for o in result)
    shapes += ["demo to full"] if policy.demos and len(library.demos) - demo_deletes + demo_adds >= policy.demos else []
    shape = _pick(draw, shapes)
    if shape.startswith("demo"):
        question = _new_question(draw, library, {o.example.question for o in result if o.example})
        example = draw(examples(question or "q0"))
        if shape == "demo unknown":
            bad = Operation.delete_demo(_unknown_demo(draw, library))
        elif shape == "demo empty":
            bad = Operation.add_demo(replace(example, answer=_pick(draw, ("", "  "))))
        else:
            bad = Operation.add_demo(replace(example, answer="2024-01-31"))
        position = draw(st.integers(0, len(result)))
        return [*result[:position], bad, *result[position:]]
    if shape == "conflict":
        target = _pick(draw, changed)
        second = _pick(draw, (Operation.delete(target), Operation.modify(target, "check check check")))
        return [*result, second]
    if shape == "add long":
        bad = Operation.add(draw(texts(limit + 1, limit + 3)))
    elif shape == "add empty":
        bad = Operation.add(_pick(draw, ("", " ")))
    elif shape == "delete unknown":
        bad = Operation.delete(_unknown_id(draw, library))
    elif shape == "modify unknown":
        bad = Operation.modify(_unknown_id(draw, library), draw(texts(1, limit)))
    elif shape == "add duplicate":
        bad = Operation.add(_variant(draw, _pick(draw, untouched).text))
    elif shape == "modify unchanged":
        target_experience = _pick(draw, untouched)
        bad = Operation.modify(target_experience.id, target_experience.text)
    elif shape == "add to full":
        bad = Operation.add(draw(texts(1, limit)))
    else:
        bad = _of_kind(draw, library, _pick(draw, forbidden), limit)
    position = draw(st.integers(0, len(result)))
    return [*result[:position], bad, *result[position:]]


def _of_kind(draw: st.DrawFn, library: Library, kind: OpKind, limit: int) -> Operation:
    if kind == "add":
        return Operation.add(draw(texts(1, limit)))
    target = _pick(draw, library.ids) if library.experiences else _unknown_id(draw, library)
    return Operation.delete(target) if kind == "delete" else Operation.modify(target, draw(texts(1, limit)))


@dataclass(frozen=True, slots=True)
class ApplyCase:
    """One input of a rule: a library, an operation list, a policy and a context."""

    library: Library
    operations: tuple[Operation, ...]
    policy: PolicySpec
    context: ApplyContext

    def describe(self) -> str:
        """A compact, readable account of the case, used in failure messages."""
        lib = self.library
        policy = self.policy
        history = ", ".join(e.id for e in lib.history) or "none"
        lines = [
            f"  policy: ops = [{', '.join(policy.ops)}], capacity = {policy.capacity}, "
            f"max_words = {policy.max_words}, on_full = {policy.on_full}",
            f"  library: version {lib.version}, next_id {lib.next_id}, history [{history}], "
            f"{len(lib)} experience(s)" + (":" if lib.experiences else ""),
            *(f"    [{e.id}] {e.text} (uses {e.uses})" for e in lib.experiences),
            f"  demos (at most {policy.demos}): next_demo {lib.next_demo}, "
            f"retired [{', '.join(d.id for d in lib.demo_history) or 'none'}]",
            *(f"    [{d.id}] {d.example.question}: {d.example.answer!r}" for d in lib.demos),
            f"  operations ({len(self.operations)}):",
            *(f"    {i}. {json.dumps(op.to_json(), ensure_ascii=False)}" for i, op in enumerate(self.operations)),
            f"  context: step {self.context.step}, groups [{', '.join(self.context.groups)}]",
        ]
        return "\n".join(lines)


@st.composite
def apply_cases(draw: st.DrawFn, valid: bool | None = None) -> ApplyCase:
    """A whole rule input; the library mostly fits the policy and is sometimes one over capacity."""
    policy = draw(policies())
    library = draw(libraries(max_size=policy.capacity + 1, max_words=policy.max_words))
    ops = draw(operation_lists(library, policy, valid=valid))
    return ApplyCase(library, tuple(ops), policy, draw(contexts()))


# ---------------------------------------------------------------------- invariants


class InvariantViolation(GrpoError, AssertionError):
    """A rule broke an invariant; the message names it and shows the case."""

    def __init__(self, invariant: str, detail: str, case: ApplyCase | None = None, rule_name: str | None = None):
        self.invariant = invariant
        self.detail = detail
        self.case = case
        who = f"update rule `{rule_name}`" if rule_name else "the update rule"
        message = f"{who} violates invariant `{invariant}`: {detail}"
        if case is not None:
            message += "\nminimal counterexample:\n" + case.describe()
        super().__init__(message)


class _Broken(AssertionError):
    """Raised by an invariant's check with the detail; `Invariant.check` adds the name and the case."""


def _require(condition: bool, detail: str) -> None:
    if not condition:
        raise _Broken(detail)


def _run(rule: Rule, case: ApplyCase, operations: Sequence[Operation] | None = None) -> tuple[Library, ApplyReport]:
    ops = case.operations if operations is None else tuple(operations)
    return rule(case.library, ops, case.policy, case.context)


def _every_op_accounted_for(rule: Rule, case: ApplyCase) -> None:
    _, report = _run(rule, case)
    outcomes = report.applied + report.rejected
    indices = sorted(o.index for o in outcomes)
    for index in range(len(case.operations)):
        _require(index in indices, f"operation {index} is neither applied nor rejected")
        _require(indices.count(index) == 1, f"operation {index} is reported {indices.count(index)} times")
    _require(
        len(indices) == len(case.operations),
        f"the report has {len(indices)} outcomes for {len(case.operations)} operations",
    )
    for outcome in outcomes:
        _require(
            outcome.op == case.operations[outcome.index],
            f"outcome {outcome.index} reports another operation than operation {outcome.index}",
        )
    for outcome in report.rejected:
        _require(bool(outcome.reason), f"rejected operation {outcome.index} has no reason")


def _ids_unique_and_never_reused(rule: Rule, case: ApplyCase) -> None:
    before, (after, _) = case.library, _run(rule, case)
    ids = after.ids
    for experience_id in ids:
        _require(id_number(experience_id) is not None, f"{experience_id!r} is not an experience id like E4")
        _require(ids.count(experience_id) == 1, f"{experience_id} is used by {ids.count(experience_id)} experiences")
    seen = set(before.ids) | {e.id for e in before.history}
    for experience_id in ids:
        if experience_id in before.ids:
            continue
        _require(experience_id not in seen, f"{experience_id} was deleted before and is live again")
        _require(
            (id_number(experience_id) or 0) >= before.next_id,
            f"new experience {experience_id} reuses a number below next_id {before.next_id}",
        )
    highest = max((id_number(e.id) or 0 for e in (*after.experiences, *after.history)), default=0)
    _require(after.next_id >= before.next_id, f"next_id went down from {before.next_id} to {after.next_id}")
    _require(after.next_id > highest, f"next_id {after.next_id} is not above E{highest}")
    demo_ids = [d.id for d in after.demos]
    for demo_id in demo_ids:
        _require(demo_number(demo_id) is not None, f"{demo_id!r} is not a demo id like D2")
        _require(demo_ids.count(demo_id) == 1, f"{demo_id} is used by {demo_ids.count(demo_id)} demos")
        if before.demo(demo_id) is None:
            _require(all(d.id != demo_id for d in before.demo_history), f"{demo_id} was deleted before and is live again")
            _require((demo_number(demo_id) or 0) >= before.next_demo, f"new demo {demo_id} reuses a number below next_demo")
    highest_demo = max((demo_number(d.id) or 0 for d in (*after.demos, *after.demo_history)), default=0)
    _require(after.next_demo >= before.next_demo, f"next_demo went down from {before.next_demo} to {after.next_demo}")
    _require(after.next_demo > highest_demo, f"next_demo {after.next_demo} is not above D{highest_demo}")


def _history_keeps_removed(rule: Rule, case: ApplyCase) -> None:
    before, (after, _) = case.library, _run(rule, case)
    _require(
        after.history[: len(before.history)] == before.history, "the existing history was changed; it may only grow"
    )
    added = after.history[len(before.history) :]
    for old in before.experiences:
        now = after.get(old.id)
        if now is None:
            _require(any(e.id == old.id for e in added), f"{old.id} left the library but is not in the history")
        elif now.text != old.text:
            _require(
                any(e.id == old.id and e.text == old.text for e in added),
                f"the text {old.id} had before it was modified is not in the history",
            )
    _require(after.demo_history[: len(before.demo_history)] == before.demo_history, "the demo history was changed")
    retired = after.demo_history[len(before.demo_history) :]
    for demo in before.demos:
        now_demo = after.demo(demo.id)
        if now_demo is None or now_demo.example != demo.example:
            _require(
                any(d.id == demo.id and d.example == demo.example for d in retired),
                f"demo {demo.id} was removed or replaced but its old version is not in the demo history",
            )


def _respects_capacity(rule: Rule, case: ApplyCase) -> None:
    before, (after, _) = case.library, _run(rule, case)
    limit = max(case.policy.capacity, len(before))
    _require(len(after) <= limit, f"the library holds {len(after)} experiences, the limit is {limit}")
    demo_limit = max(case.policy.demos, len(before.demos))
    _require(len(after.demos) <= demo_limit, f"the library holds {len(after.demos)} demos, the limit is {demo_limit}")


def _respects_word_limit(rule: Rule, case: ApplyCase) -> None:
    before, (after, _) = case.library, _run(rule, case)
    old = {(e.id, e.text) for e in before.experiences}
    for e in after.experiences:
        if (e.id, e.text) in old:
            continue
        _require(e.text.strip() != "", f"{e.id} has an empty text")
        words = word_count(e.text)
        _require(words <= case.policy.max_words, f"{e.id} has {words} words, the limit is {case.policy.max_words}")


def _respects_allowed_ops(rule: Rule, case: ApplyCase) -> None:
    before, (after, report) = case.library, _run(rule, case)
    policy = case.policy
    for outcome in report.applied:
        _require(
            policy.allows(outcome.op.op),
            f"operation {outcome.index} (`{outcome.op.op}`) was applied but the policy does not allow it",
        )
    for e in after.experiences:
        old = before.get(e.id)
        _require(old is not None or policy.allows("add"), f"{e.id} was added but the policy does not allow `add`")
        _require(
            old is None or old.text == e.text or policy.allows("modify"),
            f"{e.id} was modified but the policy does not allow `modify`",
        )
    for old in before.experiences:
        if after.get(old.id) is None:
            _require(
                policy.allows("delete") or (policy.allows("add") and policy.on_full != "reject"),
                f"{old.id} was removed but the policy allows neither `delete` nor eviction",
            )
    _require(
        policy.demos > 0 or after.demos == before.demos,
        "the demos changed but the policy holds no demos (demos = 0)",
    )


def _keep_is_identity(rule: Rule, case: ApplyCase) -> None:
    kept, report = _run(rule, case, [Operation.keep()])
    _require(kept == case.library, "a list of only `keep` changed the library")
    _require(len(report.applied) == 1 and not report.rejected, "`keep` was not reported as applied")
    without_keeps = [op for op in case.operations if op.op != "keep"]
    _require(
        _run(rule, case)[0] == _run(rule, case, without_keeps)[0],
        "removing the `keep` operations from the list changes the result",
    )


def _rejected_ops_have_no_effect(rule: Rule, case: ApplyCase) -> None:
    after, report = _run(rule, case)
    applied = [case.operations[o.index] for o in sorted(report.applied, key=lambda o: o.index)]
    rejected = ", ".join(str(o.index) for o in report.rejected)
    _require(
        _run(rule, case, applied)[0] == after,
        f"applying only the applied operations gives another library: the rejected ones ({rejected}) had an effect",
    )


def _deterministic(rule: Rule, case: ApplyCase) -> None:
    first = _run(rule, case)
    _require(_run(rule, case) == first, "two calls with the same input give different results")
    copy = ApplyCase(
        Library.from_json(json.loads(json.dumps(case.library.to_json()))),
        tuple(Operation.from_json(op.to_json()) for op in case.operations),
        PolicySpec.from_json(case.policy.to_json()),
        ApplyContext.from_json(case.context.to_json()),
    )
    _require(_run(rule, copy) == first, "an equal copy of the input gives a different result")


def _provenance_recorded(rule: Rule, case: ApplyCase) -> None:
    before, (after, _) = case.library, _run(rule, case)
    step = case.context.step
    for e in after.experiences:
        _require(bool(e.provenance) and e.provenance[0].op == "add", f"{e.id} has no provenance starting with `add`")
        old, latest = before.get(e.id), e.provenance[-1]
        if old is None:
            _require(
                latest.op == "add" and latest.step == step,
                f"new experience {e.id} does not record its `add` at step {step}",
            )
        elif old.text != e.text:
            _require(
                latest.op == "modify" and latest.step == step and latest.replaced == old.text,
                f"modified {e.id} does not record a `modify` at step {step} with the text it replaced",
            )
    for old in before.experiences:
        if after.get(old.id) is None:
            retired = [e for e in after.history if e.id == old.id]
            removal = retired[-1].provenance[-1] if retired and retired[-1].provenance else None
            _require(
                removal is not None and removal.op in ("delete", "evict") and removal.step == step,
                f"removed {old.id} does not record its `delete` or eviction at step {step} in the history",
            )
    for demo in after.demos:
        old_demo, last = before.demo(demo.id), demo.provenance[-1] if demo.provenance else None
        if old_demo is None:
            _require(
                last is not None and last.op == "add" and last.step == step,
                f"new demo {demo.id} does not record its `add` at step {step}",
            )
        elif old_demo.example != demo.example:
            _require(
                last is not None and last.op == "modify" and last.step == step and last.replaced == old_demo.example.answer,
                f"replaced demo {demo.id} does not record a `modify` at step {step} with the answer it replaced",
            )


def _version_follows_changes(rule: Rule, case: ApplyCase) -> None:
    before, (after, _) = case.library, _run(rule, case)
    if after.experiences == before.experiences and after.demos == before.demos:
        _require(after == before, "nothing changed, yet the library returned differs from the one given")
    else:
        _require(
            after.version == before.version + 1,
            f"the library changed and its version went from {before.version} to {after.version}, "
            f"not {before.version + 1}",
        )


@dataclass(frozen=True, slots=True)
class Invariant:
    """A property every update rule must have, checked on one `ApplyCase`."""

    name: str
    description: str
    verify: Callable[[Rule, ApplyCase], None]

    def check(self, rule: Rule, case: ApplyCase) -> None:
        """Check `rule` on `case`; raise `InvariantViolation` naming this invariant and showing the case."""
        try:
            self.verify(rule, case)
        except _Broken as broken:
            raise InvariantViolation(self.name, str(broken), case, _rule_name(rule)) from None
        except Exception as exc:
            detail = f"the rule raised {type(exc).__name__}: {exc}"
            raise InvariantViolation(self.name, detail, case, _rule_name(rule)) from exc


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "every_op_accounted_for",
        "every operation is applied or rejected exactly once; a rejection has a reason",
        _every_op_accounted_for,
    ),
    Invariant(
        "ids_unique_and_never_reused",
        "live ids are unique; a new id is numbered from next_id, never an id seen before",
        _ids_unique_and_never_reused,
    ),
    Invariant(
        "history_keeps_removed",
        "the history only grows and holds every deleted, evicted or replaced experience",
        _history_keeps_removed,
    ),
    Invariant("respects_capacity", "the library never grows past the policy's capacity", _respects_capacity),
    Invariant(
        "respects_word_limit", "every new or changed text is non-empty and within max_words", _respects_word_limit
    ),
    Invariant(
        "respects_allowed_ops", "no operation of a kind the policy does not allow takes effect", _respects_allowed_ops
    ),
    Invariant("keep_is_identity", "`keep` changes nothing, alone or in a list", _keep_is_identity),
    Invariant(
        "rejected_ops_have_no_effect",
        "the result equals applying only the applied operations",
        _rejected_ops_have_no_effect,
    ),
    Invariant("deterministic", "equal inputs give equal results", _deterministic),
    Invariant(
        "provenance_recorded",
        "every experience records how and when it was created, changed or removed",
        _provenance_recorded,
    ),
    Invariant(
        "version_follows_changes",
        "a change bumps the version by one; no change returns an equal library",
        _version_follows_changes,
    ),
)
"""Every invariant `check_rule` checks, in the order it checks them."""


def _rule_name(rule: Rule) -> str:
    return getattr(rule, "__qualname__", None) or getattr(rule, "__name__", None) or repr(rule)


def assert_invariants(rule: Rule, case: ApplyCase, invariants: Sequence[Invariant] = INVARIANTS) -> None:
    """Check every invariant on one hand-written case, without Hypothesis.

    Raises `InvariantViolation` for the first invariant the rule breaks.
    """
    for invariant in invariants:
        invariant.check(rule, case)


def check_invariant(rule: Rule, invariant: Invariant, *, max_examples: int = 200, derandomize: bool = False) -> None:
    """Check one invariant of `rule` on `max_examples` generated cases.

    Raises `InvariantViolation` with the smallest failing case Hypothesis found,
    or, when the rule failed on a case and then passed on it, saying so.
    """

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(apply_cases())
    def holds(case: ApplyCase) -> None:
        invariant.check(rule, case)

    try:
        holds()
    except Flaky as flaky:
        seen = [e for e in getattr(flaky, "exceptions", ()) if isinstance(e, InvariantViolation)]
        detail = "the rule failed on a case, then passed on the same case: it is not deterministic"
        raise InvariantViolation(invariant.name, detail, seen[0].case if seen else None, _rule_name(rule)) from flaky


def check_rule(
    rule: Rule,
    *,
    max_examples: int = 200,
    invariants: Sequence[Invariant] = INVARIANTS,
    derandomize: bool = False,
) -> None:
    """Check that `rule` keeps every invariant; for use in a test.

    Each invariant is checked on `max_examples` generated cases. If any fails,
    raises an `AssertionError` that names each violated invariant and shows its
    minimal counterexample (shrunk by Hypothesis). `derandomize=True` makes the
    run draw the same cases every time.
    """
    failures: list[InvariantViolation] = []
    for invariant in invariants:
        try:
            check_invariant(rule, invariant, max_examples=max_examples, derandomize=derandomize)
        except InvariantViolation as violation:
            failures.append(violation)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        names = ", ".join(f"`{f.invariant}`" for f in failures)
        raise AssertionError(
            f"{len(failures)} invariants violated ({names}):\n\n" + "\n\n".join(str(f) for f in failures)
        )
