"""The experience library: operations, parsing, the built-in apply step, JSON, user rules."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import grpo_dsl.library
from grpo_dsl.library import (
    OPERATIONS_SCHEMA,
    ApplyContext,
    ApplyReport,
    Experience,
    Library,
    Operation,
    OperationSource,
    PolicySpec,
    ProvenanceEntry,
    RuleError,
    RuleRef,
    apply,
    cited_ids,
    load_rule,
    operations_from_json,
)

STEP1 = ApplyContext(step=1, groups=("1:q1", "1:q2"))
STEP2 = ApplyContext(step=2, groups=("2:q3",))


def build(*texts: str, policy: PolicySpec | None = None) -> Library:
    """A library holding `texts` as E1, E2, ... added at step 1."""
    library, report = apply(Library.empty(), [Operation.add(t) for t in texts], policy or PolicySpec(), STEP1)
    assert not report.rejected
    return library


def reasons(report: ApplyReport) -> list[tuple[int, str | None]]:
    return [(o.index, o.reason) for o in report.rejected]


def test_module_examples_run() -> None:
    assert doctest.testmod(grpo_dsl.library).failed == 0


# ---------------------------------------------------------------------- the ops


def test_add_numbers_from_next_id_and_records_provenance() -> None:
    source = OperationSource(step=1, groups=("1:q2",))
    library, report = apply(
        Library.empty(),
        [Operation.add("Check the units.", "units were dropped", source), Operation.add("  Draw a diagram. ")],
        PolicySpec(),
        STEP1,
    )
    assert library.version == 1 and library.next_id == 3
    assert library.render() == "[E1] Check the units.\n[E2] Draw a diagram."
    first, second = library.experiences
    assert first.provenance == (ProvenanceEntry("add", 1, ("1:q2",), "units were dropped"),)
    assert second.provenance == (ProvenanceEntry("add", 1, ("1:q1", "1:q2")),)
    assert first.created_step == 1 and first.uses == 0
    assert [(o.index, o.id) for o in report.applied] == [(0, "E1"), (1, "E2")]


def test_modify_keeps_id_and_position_and_records_the_replaced_text() -> None:
    before = build("Check the units.", "Draw a diagram.")
    after, report = apply(
        before, [Operation.modify("E1", "Check units at every step.", "sharper")], PolicySpec(), STEP2
    )
    assert after.render() == "[E1] Check units at every step.\n[E2] Draw a diagram."
    assert after.version == 2
    assert after.experiences[0].provenance[-1] == ProvenanceEntry("modify", 2, ("2:q3",), "sharper", "Check the units.")
    assert after.history == (before.experiences[0],)
    assert [o.id for o in report.applied] == ["E1"]


def test_delete_moves_to_history_and_its_id_is_never_reused() -> None:
    before = build("Check the units.", "Draw a diagram.")
    deleted, _ = apply(before, [Operation.delete("E2", "misled")], PolicySpec(), STEP2)
    assert deleted.ids == ("E1",)
    assert deleted.history[-1].id == "E2"
    assert deleted.history[-1].provenance[-1] == ProvenanceEntry("delete", 2, ("2:q3",), "misled")
    readded, report = apply(deleted, [Operation.add("Draw a diagram.")], PolicySpec(), ApplyContext(3))
    assert readded.ids == ("E1", "E3")
    assert readded.next_id == 4
    again, report = apply(readded, [Operation.modify("E2", "x")], PolicySpec(), ApplyContext(4))
    assert reasons(report) == [(0, "unknown id E2 (it was deleted)")]


def test_keep_only_returns_the_same_library() -> None:
    before = build("Check the units.")
    after, report = apply(before, [Operation.keep(), Operation.keep("fine as is")], PolicySpec(), STEP2)
    assert after is before
    assert [o.index for o in report.applied] == [0, 1] and report.rejected == ()
    assert apply(before, [], PolicySpec(), STEP2) == (before, ApplyReport())


def test_a_list_with_only_rejected_ops_keeps_the_version() -> None:
    before = build("Check the units.")
    after, report = apply(before, [Operation.delete("E7")], PolicySpec(), STEP2)
    assert after is before
    assert reasons(report) == [(0, "unknown id E7")]


# ---------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        (Operation.modify("E9", "x"), "unknown id E9"),
        (Operation.delete("E9"), "unknown id E9"),
        (Operation.add(" "), "empty text"),
        (Operation.modify("E1", ""), "empty text"),
        (Operation.add("one two three four five"), "text has 5 words, the limit is 4"),
        (Operation.modify("E2", "one two three four five"), "text has 5 words, the limit is 4"),
        (Operation.add("check  THE units"), "text duplicates E1"),
        (Operation.modify("E2", "Check the units"), "text duplicates E1"),
        (Operation.modify("E1", "check the units"), "text is the same as E1's"),
    ],
)
def test_rejection_reasons(operation: Operation, reason: str) -> None:
    policy = PolicySpec(max_words=4)
    before = build("check the units", "draw a diagram", policy=policy)
    after, report = apply(before, [operation], policy, STEP2)
    assert after is before
    assert reasons(report) == [(0, reason)]
    assert report.applied == ()


def test_ops_not_allowed_by_the_policy_are_rejected_and_keep_is_always_allowed() -> None:
    policy = PolicySpec(ops=("add",))
    before = build("a", "b")
    after, report = apply(
        before,
        [Operation.delete("E1"), Operation.modify("E2", "c"), Operation.keep(), Operation.add("d")],
        policy,
        STEP2,
    )
    assert after.ids == ("E1", "E2", "E3")
    assert reasons(report) == [
        (0, "op `delete` not allowed by the policy"),
        (1, "op `modify` not allowed by the policy"),
    ]
    assert [o.index for o in report.applied] == [2, 3]


def test_conflicting_ops_on_one_id_the_first_applied_wins() -> None:
    before = build("a", "b")
    ops = [Operation.modify("E1", "c"), Operation.delete("E1"), Operation.modify("E1", "d")]
    after, report = apply(before, ops, PolicySpec(), STEP2)
    assert after.render() == "[E1] c\n[E2] b"
    assert reasons(report) == [
        (1, "conflicting ops on E1 in one step: it was already modified"),
        (2, "conflicting ops on E1 in one step: it was already modified"),
    ]


def test_a_rejected_op_does_not_claim_its_id() -> None:
    before = build("a", "b")
    after, report = apply(before, [Operation.modify("E1", "b"), Operation.modify("E1", "c")], PolicySpec(), STEP2)
    assert after.render() == "[E1] c\n[E2] b"
    assert reasons(report) == [(0, "text duplicates E2")]


def test_deletes_and_modifies_come_before_adds() -> None:
    policy = PolicySpec(capacity=2)
    before = build("a", "b", policy=policy)
    after, report = apply(before, [Operation.add("a"), Operation.delete("E1")], policy, STEP2)
    assert after.render() == "[E2] b\n[E3] a"
    assert [(o.index, o.id) for o in report.applied] == [(0, "E3"), (1, "E1")]


def test_adds_duplicating_each_other_in_one_list() -> None:
    after, report = apply(Library.empty(), [Operation.add("a b"), Operation.add("A  b")], PolicySpec(), STEP1)
    assert after.ids == ("E1",)
    assert reasons(report) == [(1, "text duplicates E1")]


# ---------------------------------------------------------------------- a full library


def test_full_library_rejects_adds_with_on_full_reject() -> None:
    policy = PolicySpec(capacity=2)
    before = build("a", "b", policy=policy)
    after, report = apply(before, [Operation.add("c")], policy, STEP2)
    assert after is before
    assert reasons(report) == [(0, "library is full (2) and on_full = reject")]


def test_evict_oldest_evicts_the_lowest_id_and_records_it() -> None:
    policy = PolicySpec(capacity=2, on_full="evict_oldest")
    before = build("a", "b", policy=policy)
    after, report = apply(before, [Operation.add("c", "new")], policy, STEP2)
    assert after.render() == "[E2] b\n[E3] c"
    assert report.applied[0].evicted == ("E1",)
    evicted = after.history[-1]
    assert evicted.id == "E1"
    assert evicted.provenance[-1] == ProvenanceEntry("evict", 2, ("2:q3",), "library full (2), made room for E3")


def test_evict_least_used_evicts_the_least_cited_and_the_oldest_among_equals() -> None:
    policy = PolicySpec(capacity=3, on_full="evict_least_used")
    before = build("a", "b", "c", policy=policy).record_uses(["E1", "E1", "E3", "E9"])
    assert [e.uses for e in before.experiences] == [2, 0, 1]
    after, report = apply(before, [Operation.add("d"), Operation.add("e")], policy, STEP2)
    assert after.ids == ("E1", "E4", "E5")
    assert [o.evicted for o in report.applied] == [("E2",), ("E3",)]


def test_eviction_spares_what_the_step_changed() -> None:
    policy = PolicySpec(capacity=2, on_full="evict_oldest")
    before = build("a", "b", policy=policy)
    after, report = apply(before, [Operation.modify("E1", "a2"), Operation.add("c"), Operation.add("d")], policy, STEP2)
    assert after.render() == "[E1] a2\n[E3] c"
    assert report.applied[1].evicted == ("E2",)
    assert reasons(report) == [(2, "library is full (2) and every experience was changed in this step")]


def test_a_library_over_a_lowered_capacity_shrinks_when_evicting() -> None:
    before = build("a", "b", "c")
    after, report = apply(before, [Operation.add("d")], PolicySpec(capacity=2, on_full="evict_oldest"), STEP2)
    assert after.render() == "[E3] c\n[E4] d"
    assert report.applied[0].evicted == ("E1", "E2")


# ---------------------------------------------------------------------- the library value


def test_json_round_trip_is_exact() -> None:
    library = build("Check the units.", "Draw a diagram.")
    library, _ = apply(
        library, [Operation.modify("E1", "Check units.", "r"), Operation.delete("E2")], PolicySpec(), STEP2
    )
    library = library.record_uses(["E1"])
    document = json.loads(json.dumps(library.to_json()))
    assert Library.from_json(document) == library
    assert Library.from_json(document).to_json() == document
    assert document["schema"] == "grpo-library/1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("next_id"), "not a valid library: at the document: 'next_id' is a required property"),
        (
            lambda d: d["experiences"][0].update(id="G1"),
            "not a valid library: at experiences/0/id: 'G1' does not match",
        ),
        (lambda d: d["experiences"][1].update(id="E1"), "not a valid library: the id E1 is used by two items"),
        (lambda d: d.update(next_id=2), "not a valid library: next_id is 2 but E2 exists"),
        (lambda d: d["experiences"][0].update(text="edited"), "not a valid library: its content_hash does not match"),
    ],
)
def test_from_json_says_what_is_wrong(change: object, message: str) -> None:
    document = build("a", "b").to_json()
    change(document)  # type: ignore[operator]
    with pytest.raises(ValueError) as caught:
        Library.from_json(document)
    assert str(caught.value).startswith(message)


def test_content_hash_follows_what_a_prompt_sees() -> None:
    library = build("a", "b")
    assert library.content_hash() == library.record_uses(["E1"]).content_hash()
    assert (
        library.content_hash() != apply(library, [Operation.modify("E2", "c")], PolicySpec(), STEP2)[0].content_hash()
    )


def test_get_render_and_prompt_entries() -> None:
    library = build("a", "b")
    assert library.get("E2") == library.experiences[1]
    assert library.get("E3") is None
    assert library.prompt_entries() == ({"id": "E1", "text": "a"}, {"id": "E2", "text": "b"})
    assert Library.empty().render() == ""


def test_record_uses_and_cited_ids() -> None:
    assert cited_ids("Followed [E3] and E12, then E3 again; not E0, XE4 or E5x.") == ("E3", "E12")
    library = build("a", "b")
    assert library.record_uses(["E9"]) is library
    counted = library.record_uses([*cited_ids("used E2"), *cited_ids("used [E2] and E1")])
    assert [e.uses for e in counted.experiences] == [1, 2]
    assert counted.version == library.version


# ---------------------------------------------------------------------- parsing the learner's reply


def test_operations_schema_is_valid_and_accepts_the_documented_example() -> None:
    Draft202012Validator.check_schema(OPERATIONS_SCHEMA)
    example = {
        "operations": [
            {"op": "add", "text": "When ..., first ...", "rationale": "..."},
            {"op": "modify", "id": "E4", "text": "...", "rationale": "..."},
            {"op": "delete", "id": "E2", "rationale": "..."},
            {"op": "keep"},
        ]
    }
    Draft202012Validator(OPERATIONS_SCHEMA).validate(example)
    parsed = operations_from_json(example, source={"step": 3, "groups": ["3:q1"]})
    assert parsed.errors == ()
    assert [op.to_json() for op in parsed.operations] == [
        {**item, "source": {"step": 3, "groups": ["3:q1"]}} for item in example["operations"]
    ]


def test_every_invalid_item_is_reported_with_its_position_and_reason() -> None:
    reply = {
        "operations": [
            {"op": "add", "text": "fine"},
            {"op": "modify", "text": "no id"},
            {"op": "delete", "id": "G2"},
            {"op": "add", "text": "   "},
            {"op": "rename", "id": "E1"},
            "add something",
            {"op": "modify", "id": "E1", "text": 7},
            {"text": "no op"},
        ]
    }
    parsed = operations_from_json(reply)
    assert parsed.operations == (Operation.add("fine"),)
    assert parsed.errors == (
        "operation 2 (modify): `modify` needs `id`",
        'operation 3 (delete): `id` "G2" is not an experience id like E4',
        "operation 4 (add): `text` is empty",
        'operation 5: unknown op "rename"; expected one of add, modify, delete, keep',
        'operation 6: expected an object, got "add something"',
        "operation 7 (modify): `text`: 7 is not of type 'string'",
        "operation 8: unknown op null; expected one of add, modify, delete, keep",
    )


def test_parsing_is_tolerant_where_intent_is_clear() -> None:
    reply = {
        "operations": [
            {"op": " Modify", "id": "[e4]", "text": " Check. ", "group": "1:q1"},
            {"op": "KEEP", "id": "E1"},
            {"op": "delete", "id": "E2", "rationale": None},
        ]
    }
    parsed = operations_from_json(reply)
    assert parsed.errors == ()
    assert parsed.operations == (Operation.modify("E4", "Check."), Operation.keep(), Operation.delete("E2"))
    assert operations_from_json([{"op": "keep"}]).operations == (Operation.keep(),)


@pytest.mark.parametrize("reply", [{"ops": []}, {"operations": "add"}, "keep", None])
def test_a_reply_without_an_operations_list(reply: object) -> None:
    assert operations_from_json(reply) == grpo_dsl.library.ParsedOperations((), ("the reply has no `operations` list",))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"op": "move"}, "unknown operation `move`; expected one of add, modify, delete, keep"),
        ({"op": "modify", "id": "E1"}, "`modify` needs a string `text`"),
        ({"op": "delete", "id": "E1", "text": "x"}, "`delete` takes no `text`"),
        ({"op": "keep", "id": "E1"}, "`keep` takes no `id`"),
    ],
)
def test_operation_checks_its_shape(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Operation(**fields)  # type: ignore[arg-type]


def test_operation_and_report_json_round_trip() -> None:
    op = Operation.modify("E1", "x", "why", OperationSource(2, ("2:q1",)))
    assert Operation.from_json(op.to_json()) == op
    _, report = apply(build("a"), [op, Operation.delete("E5"), Operation.keep()], PolicySpec(), STEP2)
    assert ApplyReport.from_json(json.loads(json.dumps(report.to_json()))) == report
    with pytest.raises(ValueError, match="malformed operation"):
        Operation.from_json({"id": "E1"})


# ---------------------------------------------------------------------- policy


def test_policy_from_plan_json() -> None:
    plan_policy = {
        "ops": ["add", "modify"],
        "max_per_group": 3,
        "capacity": 10,
        "max_words": 20,
        "on_full": "evict_least_used",
        "style": "imperative",
        "rule": {"path": "rules.py", "function": "apply"},
        "demos": 2,
    }
    policy = PolicySpec.from_json(plan_policy)
    assert policy == PolicySpec(
        ("add", "modify"), 3, 10, 20, "evict_least_used", "imperative", RuleRef("rules.py", "apply"), demos=2
    )
    assert policy.to_json() == plan_policy
    assert PolicySpec.from_json({}) == PolicySpec()
    assert policy.allows("keep") and not policy.allows("delete")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ops": ["add", "rename"]}, "policy `ops` has unknown operation 'rename'"),
        ({"capacity": 0}, "policy `capacity` must be a positive integer, not 0"),
        ({"max_words": True}, "policy `max_words` must be a positive integer, not True"),
        ({"on_full": "drop"}, "policy `on_full` must be one of reject, evict_oldest, evict_least_used, not 'drop'"),
    ],
)
def test_policy_from_json_rejects_bad_values(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        PolicySpec.from_json(fields)
    assert str(caught.value) == message


# ---------------------------------------------------------------------- user rules


RULES_BROKEN = Path(__file__).resolve().parents[1] / "support" / "rules_broken.py"


def write_rule(tmp_path: Path, source: str) -> Path:
    (tmp_path / "rules.py").write_text(source, encoding="utf-8")
    return tmp_path


def test_load_rule_runs_the_users_function(tmp_path: Path) -> None:
    base = write_rule(
        tmp_path,
        "from grpo_dsl.library import apply as builtin\n"
        "def apply(library, operations, policy, context):\n"
        "    return builtin(library, [op for op in operations if op.op != 'delete'], policy, context)\n",
    )
    rule = load_rule("rules.py", "apply", base)
    library, report = rule(build("a"), [Operation.delete("E1"), Operation.add("b")], PolicySpec(), STEP2)
    assert library.ids == ("E1", "E2")
    assert rule.__name__ == "apply"


def test_load_rule_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"^update rule rules.py:apply: file .*rules.py not found$"):
        load_rule("rules.py", "apply", tmp_path)


def test_load_rule_missing_function_lists_what_the_file_defines() -> None:
    with pytest.raises(RuleError) as caught:
        load_rule("rules_broken.py", "aply", RULES_BROKEN.parent)
    message = str(caught.value)
    assert message.startswith("update rule rules_broken.py:aply: rules_broken.py has no function `aply` (it defines ")
    assert "ignore_capacity" in message and "reuse_ids" in message


def test_load_rule_import_error(tmp_path: Path) -> None:
    base = write_rule(tmp_path, "import not_a_module_anywhere\n")
    with pytest.raises(
        RuleError, match="importing rules.py failed: ModuleNotFoundError: No module named 'not_a_module_anywhere'"
    ):
        load_rule("rules.py", "apply", base)


def test_load_rule_wrong_signature() -> None:
    with pytest.raises(RuleError, match=r"must take \(library, operations, policy, context\)"):
        load_rule("rules_broken.py", "not_a_rule", RULES_BROKEN.parent)


def test_a_loaded_rule_that_raises_or_returns_garbage_gives_a_rule_error(tmp_path: Path) -> None:
    crash = load_rule("rules_broken.py", "crash", RULES_BROKEN.parent)
    with pytest.raises(
        RuleError, match=r"^update rule rules_broken.py:crash raised ZeroDivisionError: division by zero$"
    ):
        crash(Library.empty(), [], PolicySpec(), STEP1)
    base = write_rule(tmp_path, "def apply(library, operations, policy, context):\n    return library\n")
    garbage = load_rule("rules.py", "apply", base)
    with pytest.raises(RuleError, match=r"returned Library, expected \(Library, ApplyReport\)"):
        garbage(Library.empty(), [], PolicySpec(), STEP1)


def test_experience_json_keeps_every_field() -> None:
    experience = Experience("E3", "t", (ProvenanceEntry("add", 1, ("1:q",), "r"),), created_step=1, uses=4)
    assert Experience.from_json(experience.to_json()) == experience
