"""What each item of a library is worth: leave-one-out and Shapley utilities, with intervals over questions.

An *item* is a lesson (`E3`) or a demo (`D1`). A *subset* of the library's items is
the library with only those items, in the library's order. An ablation scores
subsets on the same questions with the same seeds (so the scores are paired) and
gives every item a utility:

- **leave-one-out** (`loo`): the full library against the library without the item.
  The subsets are the full library and one per item. Per question, the utility is
  the full library's score minus the score without the item; the estimate is their
  mean, with `stats.paired_difference`'s interval and sign-flip p-value.
- **Shapley** (`shapley`): the item's mean marginal contribution over every order in
  which the items could be added, φᵢ = Σ_{S ⊆ N∖{i}} |S|!(n−|S|−1)!/n! · (v(S∪{i}) − v(S)).
  When the library has at most `budget` subsets (2ⁿ ≤ budget) every subset is
  scored and φ is exact per question; its interval and p-value are those of
  `paired_difference` of the per-question φ against zero. Otherwise permutations of
  the items are drawn (seeded) and each item's marginal contribution is taken along
  each of them; permutations are kept while the distinct subsets they need fit in
  the budget, so every kept permutation is complete. The interval then resamples
  permutations and questions together (`pooled.crossed_bootstrap`).

Either way the Shapley values add up to the full library's score minus the empty
library's, exactly (each complete permutation telescopes), and an item that never
changes any score gets zero. On a library of one item both methods score the same
two subsets and give the same numbers.

The verdict of an item is `helps` when its interval lies above zero, `hurts` when it
lies below, and `no evidence` otherwise; the interval of an exact ablation is
`paired_difference`'s inverted sign-flip test, so it excludes zero exactly when the
p-value is below 1 − confidence.

>>> chosen = design("loo", ("E1", "E2"), budget=64, seed=0)
>>> [sorted(s) for s in chosen.subsets]
[['E1', 'E2'], ['E2'], ['E1']]
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.evaluation.pooled import crossed_bootstrap
from grpo_dsl.evaluation.stats import DEFAULT_RESAMPLES, Interval, PairedResult, paired_difference

__all__ = [
    "MAX_PERMUTATIONS",
    "METHODS",
    "Design",
    "Method",
    "Scores",
    "Utility",
    "UtilityError",
    "Verdict",
    "design",
    "utilities",
    "verdict",
]

Method: TypeAlias = Literal["loo", "shapley"]
Verdict: TypeAlias = Literal["helps", "hurts", "no evidence"]
METHODS: tuple[Method, ...] = ("loo", "shapley")

Scores: TypeAlias = Mapping[frozenset[str], Sequence[float]]
"""Each scored subset's per-question scores, every subset on the same questions in the same order."""

MAX_PERMUTATIONS = 10_000
"""Sampled Shapley draws at most this many permutations, however many fit in the budget."""


class UtilityError(GrpoError, ValueError):
    """An ablation that cannot be designed or scored; the message says why."""


@dataclass(frozen=True, slots=True)
class Design:
    """The subsets an ablation scores: distinct, in the order they are scored.

    `permutations` are the sampled orders of a Shapley ablation that does not score
    every subset (`exact` is then False); they are empty otherwise.
    """

    method: Method
    items: tuple[str, ...]
    subsets: tuple[frozenset[str], ...]
    exact: bool
    permutations: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Utility:
    """One item's utility: the estimate over questions, its interval, the p-value of
    "no effect" (None for sampled Shapley) and the verdict."""

    item: str
    estimate: float
    low: float
    high: float
    p_value: float | None
    verdict: Verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.item,
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "p_value": self.p_value,
            "verdict": self.verdict,
        }


def verdict(result: PairedResult | Interval) -> Verdict:
    """`no evidence` when the interval includes zero (for a paired result, exactly when its
    p-value is at least 1 − confidence: one verdict), else `helps` or `hurts` by its side."""
    if result.includes_zero:
        return "no evidence"
    return "helps" if result.low > 0.0 else "hurts"


def design(method: Method, items: Sequence[str], *, budget: int, seed: int) -> Design:
    """The subsets an ablation of `items` (in library order) scores.

    Leave-one-out: the full library, then the library without each item. Shapley:
    every subset, by size, when there are at most `budget`; otherwise the prefixes of
    permutations drawn with `random.Random(seed)`, as long as the distinct subsets
    stay within `budget` (at most `MAX_PERMUTATIONS`). Raises `UtilityError` when
    `budget` cannot hold even one permutation (n + 1 subsets).
    """
    ordered = tuple(dict.fromkeys(items))
    if len(ordered) != len(items):
        raise UtilityError("the items of an ablation must be distinct")
    full = frozenset(ordered)
    if method == "loo":
        return Design(method, ordered, (full, *(full - {item} for item in ordered)), exact=True)
    n = len(ordered)
    if n < 63 and 2**n <= budget:
        every = (frozenset(chosen) for size in range(n + 1) for chosen in itertools.combinations(ordered, size))
        return Design(method, ordered, tuple(every), exact=True)
    if budget < n + 1:
        raise UtilityError(
            f"a Shapley ablation of {n} items needs at least {n + 1} subsets (one permutation), "
            f"but `subsets` is {budget}: raise it, or use `ablate = loo`"
        )
    rng = random.Random(seed)
    seen: dict[frozenset[str], None] = {}
    permutations: list[tuple[str, ...]] = []
    while len(permutations) < MAX_PERMUTATIONS:
        order = list(ordered)
        rng.shuffle(order)
        prefixes = [frozenset(order[:k]) for k in range(n + 1)]
        fresh = [p for p in dict.fromkeys(prefixes) if p not in seen]
        if len(seen) + len(fresh) > budget:
            break
        seen.update(dict.fromkeys(fresh))
        permutations.append(tuple(order))
    return Design(method, ordered, tuple(seen), exact=False, permutations=tuple(permutations))


def _checked(chosen: Design, scores: Scores) -> int:
    """The number of questions every scored subset has; raises when a subset is missing."""
    missing = [subset for subset in chosen.subsets if subset not in scores]
    if missing:
        raise UtilityError(f"the subset {sorted(missing[0])} of the ablation has no scores")
    lengths = {len(scores[subset]) for subset in chosen.subsets}
    if len(lengths) != 1 or 0 in lengths:
        raise UtilityError("every subset of an ablation must be scored on the same questions")
    return lengths.pop()


def _shapley_exact(items: Sequence[str], scores: Scores, questions: int) -> dict[str, list[float]]:
    """Per item, its exact Shapley value on each question."""
    n = len(items)
    weights = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    values: dict[str, list[float]] = {}
    for item in items:
        others = [other for other in items if other != item]
        per_question = [0.0] * questions
        for size in range(n):
            for chosen in itertools.combinations(others, size):
                without = frozenset(chosen)
                gained = zip(scores[without | {item}], scores[without])
                for q, (after, before) in enumerate(gained):
                    per_question[q] += weights[size] * (after - before)
        values[item] = per_question
    return values


def _marginals(chosen: Design, scores: Scores) -> dict[str, list[list[float]]]:
    """Per item, its marginal contribution on each question along each sampled permutation."""
    table: dict[str, list[list[float]]] = {item: [] for item in chosen.items}
    for order in chosen.permutations:
        before = frozenset[str]()
        for item in order:
            after = before | {item}
            table[item].append([a - b for a, b in zip(scores[after], scores[before])])
            before = after
    return table


def utilities(
    chosen: Design,
    scores: Scores,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[Utility, ...]:
    """Every item's utility from the per-question `scores` of the design's subsets, in item order."""
    questions = _checked(chosen, scores)
    found: list[Utility] = []
    if chosen.exact:
        full = scores[frozenset(chosen.items)]
        if chosen.method == "loo":
            pairs = {item: (full, scores[frozenset(chosen.items) - {item}]) for item in chosen.items}
        else:
            zero = [0.0] * questions
            pairs = {item: (values, zero) for item, values in _shapley_exact(chosen.items, scores, questions).items()}
        for item, (a, b) in pairs.items():
            result = paired_difference(a, b, confidence=confidence, resamples=resamples, seed=seed)
            found.append(Utility(item, result.difference, result.low, result.high, result.p_value, verdict(result)))
        return tuple(found)
    for item, rows in _marginals(chosen, scores).items():
        interval = crossed_bootstrap(rows, confidence=confidence, resamples=resamples, seed=seed)
        found.append(Utility(item, interval.estimate, interval.low, interval.high, None, verdict(interval)))
    return tuple(found)
