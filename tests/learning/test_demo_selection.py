"""Choosing demos by group comparison: winners only, never held-out questions, reference
answers only with ground truth, new answer shapes first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from grpo_dsl.learning.demos import GroupResult, candidates, demo_operations, prompt_key
from grpo_dsl.library import (
    ApplyContext,
    Example,
    Library,
    Operation,
    PolicySpec,
    apply,
)

VARIABLES = ("date",)


def group(question: str, outputs: list[str | None], rewards: list[float], answer: str = "2024-01-31") -> GroupResult:
    return GroupResult(f"1:{question}", question, {"date": f"date {question}", "answer": answer}, outputs, rewards)


def choose(groups: list[GroupResult], *, source: str = "rollouts", ground_truth: bool = True, held_out: frozenset[str] = frozenset()) -> list[Example]:
    return [c.example for c in candidates(groups, variables=VARIABLES, source=source, ground_truth=ground_truth, held_out=held_out)]


def test_the_best_rollout_above_the_mean_is_the_candidate() -> None:
    found = choose(
        [
            group("q1", ["1/31/2024", "2024-01-31", "2024-01-31"], [0.0, 1.0, 1.0]),
            group("q2", ["x", "y"], [1.0, 1.0]),
            group("q3", [None, "3/1/2024"], [0.0, 0.0]),
        ]
    )
    assert found == [Example("q1", {"date": "date q1"}, "2024-01-31", 1.0, "rollout")], "equal groups teach nothing"


def test_held_out_questions_never_become_demos_whatever_their_id() -> None:
    held = frozenset({prompt_key({"date": "date q1"}, VARIABLES)})
    groups = [group("q1", ["1/31/2024", "2024-01-31"], [0.0, 1.0]), group("q2", ["no", "2024-02-01"], [0.0, 1.0])]
    assert [e.question for e in choose(groups, held_out=held)] == ["q2"]


def test_reference_answers_need_ground_truth_and_a_group_without_success() -> None:
    unsolved = group("q1", ["1/31/2024", "31.1.2024"], [0.0, 0.0])
    assert choose([unsolved], source="reference") == [Example("q1", {"date": "date q1"}, "2024-01-31", 1.0, "reference")]
    assert choose([unsolved], source="both", ground_truth=False) == []
    assert choose([unsolved], source="rollouts") == []
    solved = group("q2", ["1/31/2024", "2024-01-31"], [0.0, 1.0])
    assert [e.source for e in choose([unsolved, solved], source="both")] == ["rollout", "reference"]


@given(
    st.lists(
        st.tuples(st.sampled_from(["2024-01-31", "Jan 31 2024", "31/01/2024", "x"]), st.booleans(), st.booleans()),
        max_size=8,
    ),
    st.sampled_from(["rollouts", "reference", "both"]),
)
def test_without_ground_truth_no_demo_is_a_reference_answer(rows: list[tuple[str, bool, bool]], source: str) -> None:
    groups = [group(f"q{i}", [answer, "other"], [float(won), float(other)]) for i, (answer, won, other) in enumerate(rows)]
    assert all(e.source == "rollout" for e in choose(groups, source=source, ground_truth=False))


def test_slots_prefer_new_shapes_and_full_slots_replace_a_repeated_shape() -> None:
    found = candidates(
        [
            group("q1", ["bad", "2024-01-31"], [0.0, 1.0]),
            group("q2", ["bad", "2023-05-06"], [0.0, 1.0]),
            group("q3", ["bad", "Jan 31 2024"], [0.0, 1.0]),
        ],
        variables=VARIABLES,
        source="rollouts",
        ground_truth=True,
        held_out=frozenset(),
    )
    operations = demo_operations(Library.empty(), found, 2, step=1)
    assert [(op.op, op.example.question if op.example else None) for op in operations] == [("add_demo", "q1"), ("add_demo", "q3")]

    same_shape = [Operation.add_demo(c.example) for c in found[:2]]
    library, _ = apply(Library.empty(), same_shape, PolicySpec(demos=2), ApplyContext(1))
    full = demo_operations(library, found, 2, step=2)
    assert [(op.op, op.id) for op in full] == [("replace_demo", "D1")]
    assert full[0].example is not None and full[0].example.answer == "Jan 31 2024"
    assert demo_operations(library, found, 0, step=2) == []


def test_questions_of_another_form_come_before_a_second_example_of_one_form() -> None:
    forms = ["October 6, 2015", "October 23, 2020", "the 12th of December, 2008", "20 January 2018"]
    groups = [
        GroupResult(f"1:q{i}", f"q{i}", {"date": form}, ["wrong", "2000-01-01"], [0.0, 1.0]) for i, form in enumerate(forms)
    ]
    found = candidates(groups, variables=VARIABLES, source="rollouts", ground_truth=True, held_out=frozenset())
    chosen = [op.example.fields["date"] for op in demo_operations(Library.empty(), found, 3, step=1) if op.example]
    assert chosen == ["October 6, 2015", "the 12th of December, 2008", "20 January 2018"]
