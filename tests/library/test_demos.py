"""Demonstrations in the library: the built-in rule's demo operations, JSON, hashes."""

from __future__ import annotations

import pytest

from grpo_dsl.library import (
    ApplyContext,
    Example,
    Library,
    Operation,
    PolicySpec,
    apply,
    operations_from_json,
)

POLICY = PolicySpec(demos=2)


def example(question: str, answer: str = "2024-01-31") -> Example:
    return Example(question, {"date": f"the date of {question}"}, answer, 1.0)


def with_demos(*questions: str) -> Library:
    library, report = apply(Library.empty(), [Operation.add_demo(example(q)) for q in questions], POLICY, ApplyContext(1))
    assert not report.rejected
    return library


def test_add_replace_and_delete_keep_ids_and_provenance() -> None:
    library = with_demos("q1", "q2")
    assert [d.id for d in library.demos] == ["D1", "D2"]
    assert library.demos[0].provenance[0].op == "add" and library.demos[0].created_step == 1

    replaced, report = apply(library, [Operation.replace_demo("D1", example("q3", "1999-12-01"))], POLICY, ApplyContext(2))
    assert [o.id for o in report.applied] == ["D1"]
    assert replaced.demo("D1") is not None and replaced.demo("D1").example.question == "q3"  # type: ignore[union-attr]
    last = replaced.demos[0].provenance[-1]
    assert (last.op, last.step, last.replaced) == ("modify", 2, "2024-01-31")
    assert [d.example.question for d in replaced.demo_history] == ["q1"]

    deleted, _ = apply(replaced, [Operation.delete_demo("D2")], POLICY, ApplyContext(3))
    assert [d.id for d in deleted.demos] == ["D1"]
    assert deleted.demo_history[-1].provenance[-1].op == "delete"
    again, _ = apply(deleted, [Operation.add_demo(example("q4"))], POLICY, ApplyContext(4))
    assert [d.id for d in again.demos] == ["D1", "D3"], "a demo id is never reused"
    assert again.version == library.version + 3


@pytest.mark.parametrize(
    ("policy", "operations", "reason"),
    [
        (PolicySpec(), [Operation.add_demo(example("q9"))], "the policy holds no demos (demos = 0)"),
        (POLICY, [Operation.add_demo(example("q9"))], "the demos are full (2): replace one instead"),
        (POLICY, [Operation.add_demo(example("q1"))], "question q1 already has demo D1"),
        (POLICY, [Operation.replace_demo("D7", example("q9"))], "unknown demo D7"),
        (POLICY, [Operation.delete_demo("D1"), Operation.replace_demo("D1", example("q9"))], "conflicting ops on D1"),
        (PolicySpec(demos=3), [Operation.add_demo(example("q9", "  "))], "empty answer"),
    ],
)
def test_demo_operations_are_rejected_with_their_reason(policy: PolicySpec, operations: list[Operation], reason: str) -> None:
    library = with_demos("q1", "q2")
    after, report = apply(library, operations, policy, ApplyContext(2))
    assert report.rejected and report.rejected[-1].reason is not None
    assert report.rejected[-1].reason.startswith(reason)
    assert len(after.demos) <= max(policy.demos, 2)


def test_a_library_with_demos_round_trips_and_one_without_keeps_its_old_form() -> None:
    library = with_demos("q1")
    assert Library.from_json(library.to_json()) == library
    plain, _ = apply(Library.empty(), [Operation.add("Check the units.")], POLICY, ApplyContext(1))
    assert set(plain.to_json()) == {"schema", "version", "next_id", "content_hash", "experiences", "history"}
    assert plain.content_hash() != apply(plain, [Operation.add_demo(example("q1"))], POLICY, ApplyContext(2))[0].content_hash()


def test_demo_operations_round_trip_and_the_learner_may_not_propose_them() -> None:
    op = Operation.replace_demo("D2", example("q5"), rationale="a new shape")
    assert Operation.from_json(op.to_json()) == op
    parsed = operations_from_json({"operations": [op.to_json()]})
    assert parsed.operations == ()
    assert parsed.errors == ('operation 1: unknown op "replace_demo"; expected one of add, modify, delete, keep',)
