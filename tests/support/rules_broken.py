"""Deliberately broken update rules, each breaking the invariant it is filed under in `BROKEN`."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from grpo_dsl.library import (
    ApplyContext,
    ApplyReport,
    Library,
    Operation,
    PolicySpec,
    Rule,
    apply,
    id_number,
)


def reuse_ids(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Numbers new experiences after the highest live id, so the id of a deleted one can come back."""
    highest_live = max((id_number(e.id) or 0 for e in library.experiences), default=0)
    updated, report = apply(replace(library, next_id=highest_live + 1), operations, policy, context)
    if updated.experiences == library.experiences:
        return library, report
    return replace(updated, next_id=max(updated.next_id, library.next_id)), report


def ignore_capacity(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Lets the library grow past the policy's capacity."""
    return apply(library, operations, replace(policy, capacity=1_000_000), context)


def lose_report(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Reports nothing."""
    return apply(library, operations, policy, context)[0], ApplyReport()


def forget_history(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Drops the history whenever the library changes."""
    updated, report = apply(library, operations, policy, context)
    return (updated if updated is library else replace(updated, history=())), report


def ignore_word_limit(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Accepts texts of any length."""
    return apply(library, operations, replace(policy, max_words=1_000_000), context)


def ignore_allowed_ops(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Applies every kind of operation whatever the policy says."""
    return apply(library, operations, replace(policy, ops=("add", "modify", "delete", "keep")), context)


def bump_always(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Bumps the version even when nothing changed."""
    updated, report = apply(library, operations, policy, context)
    return (replace(updated, version=updated.version + 1) if updated is library else updated), report


def report_applied_as_rejected(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Claims that the last applied operation was rejected, although it took effect."""
    updated, report = apply(library, operations, policy, context)
    changing = [o for o in report.applied if o.op.op != "keep"]
    if not changing:
        return updated, report
    last = replace(changing[-1], reason="rejected, says the report")
    applied = tuple(o for o in report.applied if o is not changing[-1])
    rejected = tuple(sorted((*report.rejected, last), key=lambda o: o.index))
    return updated, ApplyReport(applied, rejected)


_calls = itertools.count()


def stateful(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Keeps a counter between calls and lets it leak into the result."""
    updated, report = apply(library, operations, policy, context)
    if updated is library:
        return updated, report
    return replace(updated, version=updated.version + next(_calls) % 2), report


def drop_provenance(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Records no provenance for the experiences it changes."""
    updated, report = apply(library, operations, policy, context)
    old = {(e.id, e.text) for e in library.experiences}
    experiences = tuple(e if (e.id, e.text) in old else replace(e, provenance=()) for e in updated.experiences)
    return (updated if updated is library else replace(updated, experiences=experiences)), report


def bump_twice(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Bumps the version by two on a change."""
    updated, report = apply(library, operations, policy, context)
    return (updated if updated is library else replace(updated, version=updated.version + 1)), report


def crash(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Fails on every call."""
    raise ZeroDivisionError("division by zero")


_flaky_calls = itertools.count()


def flaky(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """Loses its report the first time it is given operations, and never again."""
    updated, report = apply(library, operations, policy, context)
    return updated, (ApplyReport() if operations and next(_flaky_calls) == 0 else report)


def not_a_rule(library: Library) -> Library:
    """Takes the wrong arguments."""
    return library


BROKEN: dict[str, Rule] = {
    "every_op_accounted_for": lose_report,
    "ids_unique_and_never_reused": reuse_ids,
    "history_keeps_removed": forget_history,
    "respects_capacity": ignore_capacity,
    "respects_word_limit": ignore_word_limit,
    "respects_allowed_ops": ignore_allowed_ops,
    "keep_is_identity": bump_always,
    "rejected_ops_have_no_effect": report_applied_as_rejected,
    "deterministic": stateful,
    "provenance_recorded": drop_provenance,
    "version_follows_changes": bump_twice,
}
"""For each invariant, a rule that breaks it."""
