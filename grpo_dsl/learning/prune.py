"""Pruning at the validation gate (`prune = hurting`): delete the items that hurt beyond noise.

After the gate, every step measures each lesson and demo of its library by
leave-one-out on the learn's `validate` set (`evaluation.utility`): the library
against the library without the item, G samples per held-out question with the
gate's seeds, paired by question. An item whose 95 % interval lies entirely below
zero is deleted: a lesson with a `delete` operation, a demo with `delete_demo`, each
with its measured utility as the rationale, so `grpo module blame` shows why. The
deletions go through the policy's rule like any operation (with `delete` allowed even
when the policy's `ops` leaves it out: `ops` limits what the learner may propose).

The full library's samples are the gate's samples of the new library, and a library
that did not change since the last step is measured from the cache, so pruning pays
only for the libraries without each item of a library that changed. A failed sample
counts among the step's failures (`max_failures` applies) and is left out: an item is
measured on the questions where every library has a scored sample.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grpo_dsl.evaluation.ablation import ItemUtility, items_of, paired_means, sample_subsets
from grpo_dsl.evaluation.sampling import Sampling
from grpo_dsl.evaluation.utility import design, utilities
from grpo_dsl.library import Library, Operation, OperationSource
from grpo_dsl.plan import Plan
from grpo_dsl.rewards.scorer import RewardScorer

if TYPE_CHECKING:
    from grpo_dsl.learning.step import Learner

__all__ = ["STAGE", "Pruning", "prune_operations", "validation_pruning"]

STAGE = "prune"
"""The stage pruning's calls are counted under; they are sampled as the gate samples (`validate`)."""

GATE_KEYS = "validate"


@dataclass(frozen=True, slots=True)
class Pruning:
    """What pruning measured in one step, and the deletions it asks for."""

    utilities: tuple[ItemUtility, ...]
    operations: tuple[Operation, ...]

    def to_json(self) -> dict[str, Any]:
        return {"utilities": [u.to_json() for u in self.utilities], "operations": [op.to_json() for op in self.operations]}


def prune_operations(measured: Sequence[ItemUtility], *, step: int, where: str) -> tuple[Operation, ...]:
    """A `delete` (lesson) or `delete_demo` (demo) for each item that `hurts`, its utility as the rationale.

    `where` says what measured it, e.g. "`held` (12 questions x 4 samples)".
    """
    operations = []
    for item in measured:
        u = item.utility
        if u.verdict != "hurts":
            continue
        rationale = (
            f"pruned: leave-one-out utility {u.estimate:+.3f} [{u.low:+.3f}, {u.high:+.3f}] on {where}; "
            "the library scores higher without it"
        )
        source = OperationSource(step=step)
        if item.kind == "lesson":
            operations.append(Operation.delete(u.item, rationale=rationale, source=source))
        else:
            operations.append(Operation.delete_demo(u.item, rationale=rationale, source=source))
    return tuple(operations)


def validation_pruning(
    plan: Plan, learn: str, base_dir: Path, learner: Learner, scorer: RewardScorer
) -> Callable[[Library, int], Awaitable[Pruning]]:
    """The pruning of a learn with `prune = hurting`: leave-one-out of a library on its `validate` set."""
    learn_view = plan.learn(learn)
    sampling = Sampling.of_validation(plan, learn_view, base_dir).with_tools(learner.tools)
    where = f"`{learn_view.validate}` ({len(sampling.questions)} questions x {sampling.samples} samples)"

    async def prune(library: Library, step: int) -> Pruning:
        found = items_of(library)
        chosen = design("loo", [item for item, _, _ in found], budget=len(found) + 1, seed=learn_view.seed)
        sampled = await sample_subsets(
            sampling,
            learner.client.complete,
            scorer,
            library,
            chosen.subsets,
            stage=STAGE,
            keys=GATE_KEYS,
            failures=(learner.failures, "pruning samples"),
        )
        scores, kept = paired_means(sampled)
        if not kept:
            return Pruning((), ())
        kinds = {item: (kind, text) for item, kind, text in found}
        measured = tuple(ItemUtility(*kinds[u.item], u) for u in utilities(chosen, scores, seed=learn_view.seed + step))
        return Pruning(measured, prune_operations(measured, step=step, where=where))

    return prune
