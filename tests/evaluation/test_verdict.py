"""One verdict: the paired interval is the inverted sign-flip test, so the two never disagree.

The simulations are seeded; their measured rates are quoted in docs/evaluation.md.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from fractions import Fraction
from statistics import fmean

from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_dsl.evaluation.stats import PairedResult, paired_difference

RUNS = 1000
QUESTIONS = 16
SAMPLES = 4
ALPHA = 0.05
SAMPLING_ERROR = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)
"""Three standard errors of a rate near 5 % measured over `RUNS` comparisons."""


def brute_force_p(differences: Sequence[Fraction], shift: Fraction) -> Fraction:
    """The sign-flip p-value of "the differences are centred on `shift`", over all 2^n patterns."""
    shifted = [d - shift for d in differences]
    observed = abs(sum(shifted))
    patterns = list(itertools.product((1, -1), repeat=len(shifted)))
    return Fraction(sum(abs(sum(s * d for s, d in zip(signs, shifted))) >= observed for signs in patterns), len(patterns))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-8, 8), min_size=6, max_size=8))
def test_the_interval_holds_exactly_the_shifts_the_test_does_not_reject(eighths: list[int]) -> None:
    differences = [Fraction(e, 8) for e in eighths]
    result = paired_difference([e / 8 for e in eighths], [0.0] * len(eighths))
    step = Fraction(1, 10**6)
    low, high = Fraction(result.low), Fraction(result.high)
    if low < high:
        assert brute_force_p(differences, low + step) >= Fraction(ALPHA)
        assert brute_force_p(differences, high - step) >= Fraction(ALPHA)
    assert brute_force_p(differences, low - step) < Fraction(ALPHA)
    assert brute_force_p(differences, high + step) < Fraction(ALPHA)
    assert result.p_value == float(brute_force_p(differences, Fraction(0)))


def _mean_of_samples(rng: random.Random, chance: float) -> float:
    return sum(rng.random() < chance for _ in range(SAMPLES)) / SAMPLES


def _null_comparison(rng: random.Random) -> PairedResult:
    """Two libraries that are equally good: each question's chance is the same for both."""
    chances = [rng.random() for _ in range(QUESTIONS)]
    a = [_mean_of_samples(rng, c) for c in chances]
    b = [_mean_of_samples(rng, c) for c in chances]
    return paired_difference(a, b, seed=rng.randrange(2**31))


def test_null_comparisons_rarely_claim_a_difference_and_never_disagree() -> None:
    rng = random.Random(20261206)
    results = [_null_comparison(rng) for _ in range(RUNS)]
    claims = sum(r.p_value < ALPHA for r in results) / RUNS
    assert claims <= ALPHA + SAMPLING_ERROR
    assert all((r.p_value < ALPHA) == (not r.includes_zero) for r in results)
    assert all(r.includes_zero == (r.low <= 0.0 <= r.high) for r in results)


def test_the_interval_covers_a_true_shift_at_the_stated_level() -> None:
    """Per-question differences centred on a true shift (a symmetric noise around it)."""
    rng = random.Random(7)
    covered = 0
    for _ in range(RUNS):
        shift = rng.uniform(-0.3, 0.3)
        chances = [rng.random() for _ in range(QUESTIONS)]
        noise = [_mean_of_samples(rng, c) - _mean_of_samples(rng, c) for c in chances]
        result = paired_difference([shift + e for e in noise], [0.0] * QUESTIONS, seed=rng.randrange(2**31))
        covered += result.low <= shift <= result.high
        assert result.low <= fmean(shift + e for e in noise) <= result.high
    assert covered / RUNS >= 1 - ALPHA - SAMPLING_ERROR
