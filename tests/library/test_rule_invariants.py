"""The built-in update rule keeps every invariant; broken rules are caught with a minimal counterexample."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from support.rules_broken import BROKEN, crash, flaky, ignore_capacity, reuse_ids

from grpo_dsl.library import (
    ApplyContext,
    Library,
    Operation,
    PolicySpec,
    apply,
    load_rule,
)
from grpo_dsl.testing import (
    INVARIANTS,
    ApplyCase,
    Invariant,
    InvariantViolation,
    apply_cases,
    check_invariant,
    check_rule,
)

UNTIMED = [HealthCheck.too_slow]
"""The outcome of a test never depends on how busy the machine is."""


@pytest.mark.parametrize("invariant", INVARIANTS, ids=lambda invariant: invariant.name)
@settings(max_examples=1000, deadline=None, suppress_health_check=UNTIMED)
@given(case=apply_cases())
def test_builtin_apply_keeps_invariant(invariant: Invariant, case: ApplyCase) -> None:
    invariant.check(apply, case)


@settings(max_examples=300, deadline=None, suppress_health_check=UNTIMED)
@given(case=apply_cases(valid=True))
def test_builtin_apply_applies_every_op_of_a_valid_list(case: ApplyCase) -> None:
    _, report = apply(case.library, case.operations, case.policy, case.context)
    assert report.rejected == ()
    assert len(report.applied) == len(case.operations)
    adds = [o for o in report.applied if o.op.op == "add"]
    assert [o.id for o in adds] == [f"E{case.library.next_id + i}" for i in range(len(adds))]


@settings(max_examples=300, deadline=None, suppress_health_check=UNTIMED)
@given(case=apply_cases(valid=False))
def test_builtin_apply_rejects_the_invalid_op_of_an_invalid_list(case: ApplyCase) -> None:
    _, report = apply(case.library, case.operations, case.policy, case.context)
    assert len(report.rejected) == 1
    assert len(report.applied) == len(case.operations) - 1


@settings(max_examples=200, deadline=None, suppress_health_check=UNTIMED)
@given(case=apply_cases())
def test_generated_libraries_are_valid_documents(case: ApplyCase) -> None:
    assert Library.from_json(case.library.to_json()) == case.library


def test_every_invariant_has_a_broken_rule_here() -> None:
    assert sorted(BROKEN) == sorted(invariant.name for invariant in INVARIANTS)


@pytest.mark.parametrize("invariant", INVARIANTS, ids=lambda invariant: invariant.name)
def test_each_invariant_catches_the_rule_that_breaks_it(invariant: Invariant) -> None:
    with pytest.raises(InvariantViolation) as caught:
        check_invariant(BROKEN[invariant.name], invariant, max_examples=300, derandomize=True)
    assert caught.value.invariant == invariant.name
    assert caught.value.case is not None
    assert f"violates invariant `{invariant.name}`" in str(caught.value)


def test_check_rule_names_the_invariant_and_the_shrunk_example_of_a_rule_reusing_ids() -> None:
    with pytest.raises(AssertionError) as caught:
        check_rule(reuse_ids, max_examples=100, derandomize=True)
    message = str(caught.value)
    assert message.startswith(
        "update rule `reuse_ids` violates invariant `ids_unique_and_never_reused`: "
        "new experience E1 reuses a number below next_id 2\nminimal counterexample:\n"
    )
    assert "  library: version 0, next_id 2, history [none], 0 experience(s)\n" in message
    assert '  operations (1):\n    0. {"op": "add", "text": "check"}\n' in message


def test_check_rule_names_the_invariant_and_the_shrunk_example_of_a_rule_ignoring_capacity() -> None:
    with pytest.raises(AssertionError) as caught:
        check_rule(ignore_capacity, max_examples=100, derandomize=True)
    message = str(caught.value)
    assert message.startswith("update rule `ignore_capacity` violates invariant `respects_capacity`: the library holds")
    assert "capacity = 1," in message
    assert re.search(r'  operations \([12]\):\n    0\. \{"op": "add"', message), message
    assert "violates invariant" not in message.split("minimal counterexample", 1)[1]


def test_check_rule_passes_the_builtin_rule() -> None:
    check_rule(apply, max_examples=30, derandomize=True)


def test_a_rule_that_raises_is_reported_under_the_invariant_being_checked() -> None:
    with pytest.raises(InvariantViolation) as caught:
        check_invariant(crash, INVARIANTS[0], max_examples=10, derandomize=True)
    assert str(caught.value).startswith(
        "update rule `crash` violates invariant `every_op_accounted_for`: "
        "the rule raised ZeroDivisionError: division by zero\nminimal counterexample:\n"
    )


def test_a_rule_that_fails_only_sometimes_is_reported_as_not_deterministic() -> None:
    with pytest.raises(InvariantViolation) as caught:
        check_invariant(flaky, INVARIANTS[0], max_examples=200, derandomize=True)
    assert "violates invariant `every_op_accounted_for`: the rule failed on a case, then passed" in str(caught.value)


def test_the_rule_written_in_the_docs_keeps_every_invariant(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "update-rules.md").read_text(encoding="utf-8")
    source = re.search(r"```python\n(# rules\.py\n.*?)```", docs, re.DOTALL)
    assert source is not None
    (tmp_path / "rules.py").write_text(source.group(1), encoding="utf-8")
    rule = load_rule("rules.py", "apply", tmp_path)
    library, _ = apply(Library.empty(), [Operation.add("a"), Operation.add("b")], PolicySpec(), ApplyContext(1))
    library = library.record_uses(["E1", "E1", "E1"])
    after, report = rule(library, [Operation.delete("E1"), Operation.delete("E2")], PolicySpec(), ApplyContext(2))
    assert after.ids == ("E1",)
    assert [(o.index, o.reason) for o in report.rejected] == [(0, "E1 is cited too often to delete")]
    check_rule(rule, max_examples=50, derandomize=True)
