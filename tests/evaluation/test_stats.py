"""The estimators against brute-force enumeration on small cases, and their contracts."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from statistics import fmean

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_dsl.evaluation.stats import (
    Sample,
    StatsError,
    bootstrap_ci,
    mean_at_k,
    paired_difference,
    pass_at_k,
    summarize_samples,
)

small_settings = settings(max_examples=60, deadline=None)
heavy_settings = settings(max_examples=15, deadline=None)

dyadic = st.integers(-16, 16).map(lambda i: i / 8)
unit_float = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
score = st.one_of(dyadic, unit_float)


@st.composite
def samples_and_correct(draw: st.DrawFn, max_n: int = 10) -> tuple[int, int, int]:
    n = draw(st.integers(1, max_n))
    return n, draw(st.integers(0, n)), draw(st.integers(1, n))


@small_settings
@given(samples_and_correct())
def test_pass_at_k_is_the_share_of_k_subsets_with_a_correct_sample(case: tuple[int, int, int]) -> None:
    n, c, k = case
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(outcomes, k))
    share = Fraction(sum(1 for subset in subsets if any(subset)), len(subsets))
    assert pass_at_k(n, c, k) == pytest.approx(float(share), abs=1e-12)


@small_settings
@given(samples_and_correct(max_n=400))
def test_pass_at_k_is_stable_for_large_n(case: tuple[int, int, int]) -> None:
    n, c, k = case
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9, abs=1e-12)


@small_settings
@given(samples_and_correct(max_n=60))
def test_pass_at_k_grows_with_k(case: tuple[int, int, int]) -> None:
    n, c, k = case
    if k < n:
        assert pass_at_k(n, c, k) <= pass_at_k(n, c, k + 1) + 1e-12
    assert 0.0 <= pass_at_k(n, c, k) <= 1.0


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [
        (0, 0, 1, "at least one sample"),
        (4, 5, 1, "between 0 and n = 4"),
        (4, -1, 1, "between 0 and n = 4"),
        (4, 1, 5, "pass@5 needs 1 <= k <= n"),
        (4, 1, 0, "pass@0 needs 1 <= k <= n"),
    ],
)
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int, message: str) -> None:
    with pytest.raises(StatsError, match=message):
        pass_at_k(n, c, k)


@small_settings
@given(st.lists(dyadic, min_size=1, max_size=8), st.data())
def test_mean_at_k_is_the_average_mean_of_all_k_subsets(rewards: list[float], data: st.DataObject) -> None:
    k = data.draw(st.integers(1, len(rewards)))
    subsets = list(itertools.combinations(rewards, k))
    assert mean_at_k(rewards, k) == pytest.approx(fmean(fmean(s) for s in subsets), abs=1e-12)


def test_mean_at_k_needs_k_samples() -> None:
    with pytest.raises(StatsError, match="mean@3 needs 1 <= k <= n, with n = 2"):
        mean_at_k([1.0, 0.0], 3)


def bootstrap_distribution(values: Sequence[float]) -> list[float]:
    """Every resample with replacement, each once: the exact bootstrap distribution of the mean."""
    n = len(values)
    return sorted(fmean(values[i] for i in indices) for indices in itertools.product(range(n), repeat=n))


def assert_is_quantile(x: float, distribution: Sequence[float], q: float, probability_tolerance: float) -> None:
    """`x` is a value of `distribution` with P(X < x) <= q <= P(X <= x), up to the tolerances."""
    value_tolerance = 1e-9 * (1 + max(abs(v) for v in distribution))
    size = len(distribution)
    below = sum(1 for v in distribution if v < x - value_tolerance) / size
    at_or_below = sum(1 for v in distribution if v <= x + value_tolerance) / size
    assert any(abs(v - x) <= value_tolerance for v in distribution)
    assert below <= q + probability_tolerance
    assert at_or_below >= q - probability_tolerance


@small_settings
@given(st.lists(score, min_size=1, max_size=5), st.sampled_from([0.5, 0.8, 0.9, 0.95]))
def test_exact_bootstrap_matches_enumeration_of_all_resamples(values: list[float], confidence: float) -> None:
    interval = bootstrap_ci(values, confidence=confidence, exact=True)
    distribution = bootstrap_distribution(values)
    tail = (1 - confidence) / 2
    assert_is_quantile(interval.low, distribution, tail, 1e-12)
    assert_is_quantile(interval.high, distribution, 1 - tail, 1e-12)
    assert interval.estimate == pytest.approx(fmean(values))


@heavy_settings
@given(st.lists(score, min_size=3, max_size=5), st.integers(0, 2**32))
def test_monte_carlo_bootstrap_matches_the_exact_distribution(values: list[float], seed: int) -> None:
    interval = bootstrap_ci(values, resamples=20_000, seed=seed, exact=False)
    distribution = bootstrap_distribution(values)
    assert_is_quantile(interval.low, distribution, 0.025, 0.01)
    assert_is_quantile(interval.high, distribution, 0.975, 0.01)


def test_small_inputs_are_enumerated_and_large_ones_sampled() -> None:
    six = [0.0, 0.25, 0.5, 1.0, 1.0, 0.75]
    assert bootstrap_ci(six, resamples=500, seed=1) == bootstrap_ci(six, exact=True)
    assert bootstrap_ci(six, resamples=100, seed=1) != bootstrap_ci(six, resamples=100, seed=2)


@small_settings
@given(st.lists(score, min_size=1, max_size=40), st.integers(0, 1000))
def test_the_interval_contains_the_mean(values: list[float], seed: int) -> None:
    interval = bootstrap_ci(values, resamples=2000, seed=seed)
    assert interval.low - 1e-12 <= interval.estimate <= interval.high + 1e-12


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    values = [i / 37 for i in range(37)]
    assert bootstrap_ci(values, seed=7, resamples=3000) == bootstrap_ci(values, seed=7, resamples=3000)


def test_bootstrap_uses_the_statistic_given() -> None:
    values = [0.0, 0.0, 0.0, 1.0, 5.0, 9.0, 9.0]
    interval = bootstrap_ci(values, max, resamples=10_000)
    assert interval.estimate == 9.0
    assert interval.low in values and interval.high == 9.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": []}, "at least one question"),
        ({"values": [1.0], "confidence": 1.0}, "strictly between 0 and 1"),
        ({"values": [1.0], "resamples": 0}, "must be positive"),
        ({"values": [0.5] * 11, "exact": True}, "limited to 10 questions"),
    ],
)
def test_bootstrap_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(StatsError, match=message):
        bootstrap_ci(**kwargs)  # type: ignore[arg-type]


def brute_force_sign_flip_p(differences: Sequence[Fraction]) -> Fraction:
    observed = abs(sum(differences))
    patterns = list(itertools.product((1, -1), repeat=len(differences)))
    extreme = sum(1 for signs in patterns if abs(sum(s * d for s, d in zip(signs, differences))) >= observed)
    return Fraction(extreme, len(patterns))


@small_settings
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=1, max_size=10))
def test_exact_p_value_matches_all_sign_flips(pairs: list[tuple[int, int]]) -> None:
    a = [x / 8 for x, _ in pairs]
    b = [y / 8 for _, y in pairs]
    expected = brute_force_sign_flip_p([Fraction(x - y, 8) for x, y in pairs])
    assert paired_difference(a, b, resamples=500).p_value == float(expected)


@heavy_settings
@given(st.lists(st.tuples(unit_float, unit_float), min_size=8, max_size=12), st.integers(0, 2**32))
def test_monte_carlo_p_value_matches_the_exact_one(pairs: list[tuple[float, float]], seed: int) -> None:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    exact = paired_difference(a, b, resamples=100, exact=True).p_value
    sampled = paired_difference(a, b, resamples=20_000, seed=seed, exact=False).p_value
    assert sampled == pytest.approx(exact, abs=0.02)


@small_settings
@given(st.lists(score, min_size=1, max_size=30), st.integers(0, 1000))
def test_identical_libraries_do_not_differ(scores: list[float], seed: int) -> None:
    result = paired_difference(scores, list(scores), seed=seed, resamples=500)
    assert (result.difference, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert result.includes_zero
    assert (result.better, result.worse, result.ties) == (0, 0, len(scores))


@small_settings
@given(st.lists(st.tuples(score, score), min_size=1, max_size=30), st.integers(0, 1000))
def test_paired_difference_is_the_mean_difference_inside_its_interval(pairs: list[tuple[float, float]], seed: int) -> None:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    result = paired_difference(a, b, seed=seed, resamples=1000)
    assert result.difference == pytest.approx(fmean(a) - fmean(b), abs=1e-12)
    assert result.low - 1e-12 <= result.difference <= result.high + 1e-12
    assert result.includes_zero == (result.low <= 0 <= result.high)
    assert result.better + result.worse + result.ties == len(pairs)
    assert 0 < result.p_value <= 1
    swapped = paired_difference(b, a, seed=seed, resamples=1000)
    assert swapped.p_value == result.p_value
    assert (swapped.better, swapped.worse) == (result.worse, result.better)


def test_a_consistent_improvement_is_significant() -> None:
    n = 16
    baseline = [i / (2 * n) for i in range(n)]
    improved = [x + 0.25 for x in baseline]
    result = paired_difference(improved, baseline)
    assert result.p_value == 2 / 2**n
    assert not result.includes_zero and result.low > 0
    assert result.better == n


def test_paired_difference_needs_the_same_questions() -> None:
    with pytest.raises(StatsError, match="got 2 and 3 scores"):
        paired_difference([1.0, 0.0], [1.0, 0.0, 1.0])


def make_samples(rewards: dict[str, list[float]]) -> list[Sample]:
    return [
        Sample(question_id=q, sample_index=i, reward=r, tokens=10 * (i + 1), tool_calls=i, cost=0.001 * (i + 1))
        for q, rs in rewards.items()
        for i, r in enumerate(rs)
    ]


def test_summarize_samples_reduces_per_question_and_averages_over_questions() -> None:
    rewards = {"q1": [1.0, 0.0, 0.0, 1.0], "q2": [0.0, 0.0, 0.0, 0.0], "q3": [1.0, 1.0, 0.5, 1.0]}
    summary = summarize_samples(reversed(make_samples(rewards)), metrics=["mean", "mean@2", "pass@1", "pass@2"], seed=3)
    assert [q.question_id for q in summary.questions] == ["q3", "q2", "q1"]
    by_id = {q.question_id: q for q in summary.questions}
    assert [by_id[q].correct for q in rewards] == [sum(r >= 1 for r in rs) for rs in rewards.values()]
    assert by_id["q1"].tokens == fmean([10, 20, 30, 40])
    assert by_id["q1"].tool_calls == fmean([0, 1, 2, 3])
    assert summary.samples_per_question == 4
    assert [m.name for m in summary.metrics] == ["mean", "mean@2", "pass@1", "pass@2", "tool_calls", "tokens", "cost"]
    assert summary.metric("mean").estimate == pytest.approx(fmean(fmean(rs) for rs in rewards.values()))
    expected_pass_2 = fmean(pass_at_k(4, sum(r >= 1 for r in rs), 2) for rs in rewards.values())
    assert summary.metric("pass@2").estimate == pytest.approx(expected_pass_2)
    assert summary.metric("pass@2") == bootstrap_ci([pass_at_k(4, q.correct, 2) for q in summary.questions], seed=3)
    for metric in summary.metrics:
        assert metric.interval.low <= metric.interval.estimate <= metric.interval.high


def test_summarize_samples_threshold_decides_correctness() -> None:
    samples = make_samples({"q1": [0.6, 0.4], "q2": [0.9, 1.0]})
    assert [q.correct for q in summarize_samples(samples).questions] == [0, 1]
    assert [q.correct for q in summarize_samples(samples, correct_at=0.5).questions] == [1, 2]


def test_summarize_samples_default_metrics_follow_the_sample_count() -> None:
    summary = summarize_samples(make_samples({"q1": [1.0, 0.0, 0.0], "q2": [0.0, 0.0, 1.0]}))
    assert [m.name for m in summary.metrics][:3] == ["mean", "pass@1", "pass@3"]


@pytest.mark.parametrize(
    ("samples", "metrics", "message"),
    [
        ([], None, "no samples"),
        (make_samples({"q1": [1.0]}) * 2, None, "question 'q1' has sample 0 twice"),
        (make_samples({"q1": [1.0, 0.0]}), ["pass@3"], "pass@3 needs 1 <= k <= n, with n = 2"),
        (make_samples({"q1": [1.0, 0.0]}), ["median"], "unknown metric 'median'"),
        (make_samples({"q1": [1.0, 0.0]}), ["pass@0"], "unknown metric 'pass@0'"),
    ],
)
def test_summarize_samples_rejects_bad_input(samples: list[Sample], metrics: list[str] | None, message: str) -> None:
    with pytest.raises(StatsError, match=message):
        summarize_samples(samples, metrics=metrics)


def test_sample_records_are_read_from_json() -> None:
    record = {"question_id": "q7", "sample_index": 2, "reward": 1, "tokens": 31, "tool_calls": 1, "cost": 0.002}
    assert Sample.from_json(record) == Sample("q7", 2, 1.0, 31, 1, 0.002)
    with pytest.raises(StatsError, match="needs the key 'reward'"):
        Sample.from_json({"question_id": "q7", "sample_index": 2})
    with pytest.raises(StatsError, match="invalid sample record"):
        Sample.from_json({"question_id": "q7", "sample_index": "two", "reward": 1})
