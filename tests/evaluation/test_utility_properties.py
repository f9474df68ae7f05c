"""Properties of leave-one-out and Shapley utilities (`evaluation.utility`) and of the pooled interval.

The scores of library subsets are generated, not sampled from a model: any table of
per-question scores is a possible outcome of an ablation.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_dsl.evaluation.pooled import crossed_bootstrap
from grpo_dsl.evaluation.stats import StatsError, bootstrap_ci
from grpo_dsl.evaluation.utility import Method, Scores, UtilityError, design, utilities

ITEMS = ("E1", "E2", "E3", "D1", "D2")
RESAMPLES = 400
"""Fewer resamples than the default keep the properties fast; the statements do not depend on it."""

# scores as an ablation makes them: the mean reward of a few samples per question
score = st.sampled_from((0.0, 0.25, 0.5, 0.75, 1.0))


def every_subset(items: tuple[str, ...]) -> list[frozenset[str]]:
    return [frozenset(c) for size in range(len(items) + 1) for c in itertools.combinations(items, size)]


@st.composite
def tables(draw: st.DrawFn, min_items: int = 1, max_items: int = 5) -> tuple[tuple[str, ...], Scores]:
    """Items and per-question scores for every subset of them."""
    items = ITEMS[: draw(st.integers(min_items, max_items))]
    questions = draw(st.integers(1, 6))
    return items, {subset: draw(st.lists(score, min_size=questions, max_size=questions)) for subset in every_subset(items)}


def mean(values: list[float] | tuple[float, ...]) -> float:
    return sum(values) / len(values)


@st.composite
def budgets(draw: st.DrawFn, items: int) -> tuple[int, bool]:
    """A Shapley budget, and whether it holds every subset (exact) or forces sampling."""
    exact = draw(st.booleans()) or 2**items <= items + 1
    return (draw(st.integers(2**items, 2**items + 8)) if exact else draw(st.integers(items + 1, 2**items - 1))), exact


@settings(max_examples=60, deadline=None)
@given(tables(), st.data(), st.integers(0, 1000))
def test_shapley_values_sum_to_the_full_library_minus_the_empty_one(table: tuple[tuple[str, ...], Scores], data: st.DataObject, seed: int) -> None:
    items, scores = table
    budget, exact = data.draw(budgets(len(items)))
    chosen = design("shapley", items, budget=budget, seed=seed)

    assert chosen.exact == exact
    assert len(chosen.subsets) <= budget and len(set(chosen.subsets)) == len(chosen.subsets)
    found = utilities(chosen, scores, resamples=RESAMPLES, seed=seed)
    gain = mean(scores[frozenset(items)]) - mean(scores[frozenset()])
    # exact when enumerated; sampled permutations are complete, so their sum telescopes too
    assert math.isclose(sum(u.estimate for u in found), gain, abs_tol=1e-9)
    for utility in found:
        assert utility.low <= utility.estimate + 1e-12 and utility.estimate <= utility.high + 1e-12


@settings(max_examples=60, deadline=None)
@given(tables(max_items=4), st.data(), st.integers(0, 1000))
def test_an_item_that_never_changes_any_score_gets_zero(table: tuple[tuple[str, ...], Scores], data: st.DataObject, seed: int) -> None:
    items, base = table
    idle = "D9"
    scores = {subset | extra: values for subset, values in base.items() for extra in (frozenset(), frozenset({idle}))}
    everything = (*items, idle)
    budget, _ = data.draw(budgets(len(everything)))

    for chosen in (design("shapley", everything, budget=budget, seed=seed), design("loo", everything, budget=budget, seed=seed)):
        utility = {u.item: u for u in utilities(chosen, scores, resamples=RESAMPLES, seed=seed)}[idle]
        assert (utility.estimate, utility.low, utility.high) == (0.0, 0.0, 0.0)
        assert utility.verdict == "no evidence"


@settings(max_examples=60, deadline=None)
@given(tables(max_items=4), st.sampled_from(["loo", "shapley"]), st.integers(0, 1000))
def test_an_exact_verdict_and_its_p_value_never_disagree(table: tuple[tuple[str, ...], Scores], method: Method, seed: int) -> None:
    items, scores = table

    for utility in utilities(design(method, items, budget=64, seed=seed), scores, resamples=RESAMPLES, seed=seed):
        assert utility.p_value is not None
        assert (utility.verdict == "no evidence") == (utility.p_value >= 0.05)
        if utility.verdict != "no evidence":
            assert (utility.verdict == "helps") == (utility.estimate > 0)


@settings(max_examples=60, deadline=None)
@given(tables(max_items=1), st.integers(2, 64), st.integers(0, 1000))
def test_leave_one_out_and_shapley_agree_on_a_library_of_one(table: tuple[tuple[str, ...], Scores], budget: int, seed: int) -> None:
    items, scores = table

    loo = utilities(design("loo", items, budget=budget, seed=seed), scores, seed=seed)
    shapley = utilities(design("shapley", items, budget=budget, seed=seed), scores, seed=seed)

    assert loo == shapley


@settings(max_examples=40, deadline=None)
@given(tables(min_items=2, max_items=4), st.integers(0, 1000))
def test_interchangeable_items_get_the_same_exact_shapley_value(table: tuple[tuple[str, ...], Scores], seed: int) -> None:
    items, base = table
    first, second = items[0], items[1]
    # the score depends only on how many of the two are present, not on which
    swapped = {subset: base[_swap(subset, first, second)] for subset in base}
    scores = {subset: [min(a, b) for a, b in zip(base[subset], swapped[subset])] for subset in base}

    found = {u.item: u for u in utilities(design("shapley", items, budget=64, seed=seed), scores, resamples=RESAMPLES)}

    assert math.isclose(found[first].estimate, found[second].estimate, abs_tol=1e-12)


def _swap(subset: frozenset[str], a: str, b: str) -> frozenset[str]:
    return frozenset(b if x == a else a if x == b else x for x in subset)


def test_redundant_items_split_their_credit_while_leave_one_out_sees_nothing() -> None:
    """Two demos that each teach the format alone: either one is enough."""
    items = ("D1", "D2")
    scores = {frozenset(): [0.0, 0.25], frozenset({"D1"}): [1.0, 1.0], frozenset({"D2"}): [1.0, 1.0], frozenset(items): [1.0, 1.0]}

    loo = utilities(design("loo", items, budget=64, seed=0), scores)
    shapley = utilities(design("shapley", items, budget=64, seed=0), scores)

    assert [(u.estimate, u.verdict) for u in loo] == [(0.0, "no evidence"), (0.0, "no evidence")]
    assert [u.estimate for u in shapley] == [pytest.approx(0.4375), pytest.approx(0.4375)]


def test_a_budget_below_one_permutation_is_a_clear_error() -> None:
    with pytest.raises(UtilityError, match="needs at least 4 subsets"):
        design("shapley", ("E1", "E2", "E3"), budget=3, seed=0)


def test_missing_scores_are_a_clear_error() -> None:
    chosen = design("loo", ("E1", "E2"), budget=64, seed=0)
    with pytest.raises(UtilityError, match="has no scores"):
        utilities(chosen, {frozenset({"E1", "E2"}): [1.0]})


# ------------------------------------------------------------------ the pooled interval


@settings(max_examples=40, deadline=None)
@given(st.lists(score, min_size=1, max_size=8), st.integers(0, 100))
def test_one_unit_is_the_bootstrap_over_questions(values: list[float], seed: int) -> None:
    assert crossed_bootstrap([values], seed=seed, resamples=RESAMPLES) == bootstrap_ci(values, seed=seed, resamples=RESAMPLES)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 5), st.lists(score, min_size=1, max_size=8), st.integers(0, 100))
def test_identical_units_and_constant_questions(units: int, values: list[float], seed: int) -> None:
    interval = crossed_bootstrap([values] * units, seed=seed, resamples=RESAMPLES)
    assert interval.low <= mean(values) <= interval.high
    assert math.isclose(interval.estimate, mean(values))
    constant = crossed_bootstrap([[values[0]] * len(values)] * units, seed=seed, resamples=RESAMPLES)
    assert constant.low == constant.high == pytest.approx(values[0])


def test_the_spread_between_units_widens_the_interval() -> None:
    questions = [0.5, 0.75, 0.25, 0.5, 1.0, 0.0, 0.5, 0.75]
    alike = crossed_bootstrap([questions] * 3, seed=1)
    apart = crossed_bootstrap([[v - 0.3 for v in questions], questions, [v + 0.3 for v in questions]], seed=1)
    assert alike.estimate == pytest.approx(apart.estimate)
    assert apart.high - apart.low > alike.high - alike.low


def test_units_must_share_their_questions() -> None:
    with pytest.raises(StatsError, match="same questions"):
        crossed_bootstrap([[1.0, 0.0], [1.0]])
    with pytest.raises(StatsError):
        crossed_bootstrap([])
