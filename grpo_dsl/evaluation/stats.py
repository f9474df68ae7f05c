"""Evaluation statistics: pass@k, mean@k, bootstrap intervals and paired comparisons.

Everything here is pure and seeded: the same inputs and `seed` give the same numbers.
The unit of resampling is always the *question*, never the sample: samples of one
question are not independent, questions are.

- `pass_at_k(n, c, k)` is the unbiased estimator 1 − C(n−c, k)/C(n, k) of the
  chance that at least one of k samples is correct, from n samples of which c are.
- `mean_at_k(rewards, k)` is the unbiased estimator of the expected mean reward of
  k samples: the mean of all n ≥ k samples.
- `bootstrap_ci` is a percentile bootstrap over questions. When the number of
  distinct resamples (multisets of n questions, C(2n−1, n)) is at most `resamples`,
  they are enumerated with their multinomial weights and the interval is exact;
  otherwise `resamples` resamples are drawn with `random.Random(seed)`.
- `paired_difference` compares two libraries scored on the same questions: the
  mean per-question difference, the two-sided p-value of a sign-flip (paired
  permutation) test, and the interval of every shift that test does not reject
  (test inversion), so that the interval excludes zero exactly when p is below
  1 − confidence: one verdict. Sign patterns are enumerated exactly, grouped by
  equal differences, when there are at most `EXACT_PATTERN_LIMIT` distinct
  (sum, count) pairs, and drawn at random (`resamples`) otherwise.
- `summarize_samples` turns per-sample records into per-question results and the
  evaluation metrics, each with its bootstrap interval.
"""

from __future__ import annotations

import collections
import itertools
import math
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from grpo_dsl.core.errors import GrpoError

__all__ = [
    "EXACT_PATTERN_LIMIT",
    "SMALL_SAMPLE",
    "EvaluationSummary",
    "Interval",
    "Metric",
    "PairedResult",
    "QuestionStats",
    "Sample",
    "StatsError",
    "bootstrap_ci",
    "mean_at_k",
    "paired_difference",
    "pass_at_k",
    "summarize_samples",
]

EXACT_PATTERN_LIMIT = 2**16
"""The sign-flip test is enumerated exactly while its sign patterns fall into at most this many
distinct (sum of the flipped differences, number flipped) pairs."""

SMALL_SAMPLE = 20
"""Below this many questions a comparison is flagged as resting on a small sample."""

DEFAULT_RESAMPLES = 10_000

Statistic = Callable[[Sequence[float]], float]


class StatsError(GrpoError, ValueError):
    """The input of a statistic is invalid; the message says why."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate and its confidence interval [low, high]."""

    estimate: float
    low: float
    high: float

    @property
    def includes_zero(self) -> bool:
        return self.low <= 0.0 <= self.high

    def to_json(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True)
class PairedResult:
    """Library A against library B on the same questions.

    `difference` is mean(A) − mean(B) over questions, `p_value` the two-sided
    sign-flip test of "no difference", and [`low`, `high`] every shift of the
    differences that test does not reject at 1 − confidence, so `includes_zero` is
    `p_value >= 1 − confidence`. `better`, `worse` and `ties` count the questions
    where A scored above, below or equal to B; `exact` says whether every sign
    pattern was enumerated.
    """

    difference: float
    low: float
    high: float
    p_value: float
    better: int
    worse: int
    ties: int
    includes_zero: bool
    exact: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "p_value": self.p_value,
            "better": self.better,
            "worse": self.worse,
            "ties": self.ties,
            "includes_zero": self.includes_zero,
            "exact": self.exact,
        }


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from `n` samples of which `c` are correct.

    Equals the fraction of the k-subsets of the n samples that contain at least one
    correct sample, 1 − C(n−c, k)/C(n, k), computed as a product so that large n
    neither overflows nor loses precision.

    >>> pass_at_k(4, 1, 2)
    0.5
    """
    if n < 1:
        raise StatsError(f"pass@k needs at least one sample, got n = {n}")
    if not 0 <= c <= n:
        raise StatsError(f"the number of correct samples must be between 0 and n = {n}, got {c}")
    if not 1 <= k <= n:
        raise StatsError(f"pass@{k} needs 1 <= k <= n, with n = {n} samples")
    if n - c < k:
        return 1.0
    all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        all_wrong *= 1.0 - k / i
    return 1.0 - all_wrong


def mean_at_k(rewards: Sequence[float], k: int) -> float:
    """The unbiased mean@k estimate of one question: the expected mean reward of k samples.

    The average, over every k-subset of the n samples, of the subset's mean is the
    mean of all n samples, so that is the estimate; `k` must be between 1 and n.
    """
    if not 1 <= k <= len(rewards):
        raise StatsError(f"mean@{k} needs 1 <= k <= n, with n = {len(rewards)} samples")
    return fmean(rewards)


def _quantile(values: Sequence[float], q: float, weights: Sequence[int] | None) -> float:
    """The smallest of the sorted `values` whose weighted cumulative share reaches `q`."""
    counts = weights if weights is not None else [1] * len(values)
    threshold = q * sum(counts)
    cumulative = 0
    for value, count in zip(values, counts):
        cumulative += count
        if cumulative >= threshold:
            return value
    return values[-1]


def _distinct_resamples(n: int) -> int:
    return math.comb(2 * n - 1, n)


def _exact_distribution(values: Sequence[float], statistic: Statistic) -> tuple[list[float], list[int]]:
    n = len(values)
    n_factorial = math.factorial(n)
    weighted: list[tuple[float, int]] = []
    for indices in itertools.combinations_with_replacement(range(n), n):
        weight = n_factorial
        for _, run in itertools.groupby(indices):
            weight //= math.factorial(len(list(run)))
        weighted.append((statistic([values[i] for i in indices]), weight))
    weighted.sort(key=lambda pair: pair[0])
    return [v for v, _ in weighted], [w for _, w in weighted]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"the confidence level must be strictly between 0 and 1, got {confidence}")


def bootstrap_ci(
    values: Sequence[float],
    statistic: Statistic = fmean,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    exact: bool | None = None,
) -> Interval:
    """A percentile-bootstrap interval of `statistic` over the per-question `values`.

    Each resample draws len(values) questions with replacement; the interval is the
    (1 − confidence)/2 and (1 + confidence)/2 quantiles (inverse CDF) of the
    statistic over the resamples. The estimate is the statistic of `values` itself.
    With `exact=None` every distinct resample is enumerated, weighted by its
    multinomial probability, when there are at most `resamples` of them; `exact=True`
    forces that (allowed up to n = 10), `exact=False` forces Monte Carlo with
    `random.Random(seed)`. `statistic` must not depend on the order of its input.
    """
    _check_confidence(confidence)
    if not values:
        raise StatsError("a bootstrap interval needs at least one question")
    if resamples < 1:
        raise StatsError(f"the number of resamples must be positive, got {resamples}")
    n = len(values)
    estimate = statistic(values)
    enumerate_all = _distinct_resamples(n) <= resamples if exact is None else exact
    if enumerate_all:
        if n > 10:
            raise StatsError(f"exact bootstrap enumeration is limited to 10 questions, got {n}")
        distribution, weights = _exact_distribution(values, statistic)
    else:
        rng = random.Random(seed)
        distribution = sorted(statistic(rng.choices(values, k=n)) for _ in range(resamples))
        weights = None
    tail = (1.0 - confidence) / 2.0
    return Interval(
        estimate=estimate,
        low=_quantile(distribution, tail, weights),
        high=_quantile(distribution, 1.0 - tail, weights),
    )


Patterns = dict[tuple[float, int], int]
"""Sign patterns by (sum of the flipped differences, number flipped): how many patterns have each."""


def _exact_patterns(differences: Sequence[float], limit: int) -> Patterns | None:
    """Every one of the 2^n sign patterns, grouped; None when there are more than `limit` groups.

    Equal differences are flipped a times out of m in C(m, a) ways, so the patterns
    are built value by value rather than one by one.
    """
    patterns: Patterns = {(0.0, 0): 1}
    for value, count in sorted(collections.Counter(differences).items()):
        grown: Patterns = collections.defaultdict(int)
        for (total, flipped), weight in patterns.items():
            for a in range(count + 1):
                grown[total + a * value, flipped + a] += weight * math.comb(count, a)
        if len(grown) > limit:
            return None
        patterns = dict(grown)
    return patterns


def _random_patterns(differences: Sequence[float], resamples: int, seed: int) -> Patterns:
    """`resamples` random sign patterns and the observed one (nothing flipped), grouped."""
    rng = random.Random(seed)
    patterns: Patterns = collections.defaultdict(int)
    patterns[0.0, 0] += 1
    for _ in range(resamples):
        flipped = [d for d in differences if rng.random() < 0.5]
        patterns[math.fsum(flipped), len(flipped)] += 1
    return dict(patterns)


def _extreme_range(total: float, flipped: float, count: int, n: int) -> tuple[float, float]:
    """The shifts δ at which a sign pattern is at least as extreme as the observed one.

    With the differences shifted to dᵢ − δ, flipping the set F (sum D, |F| = k) gives
    |T − 2D + 2kδ| against the observed |T|, T = Σdᵢ − nδ. Solving, the pattern is
    at least as extreme exactly when δ lies between (Σd − D)/(n − k) and D/k, whose
    weighted mean is the mean difference; flipping nothing or everything always is.
    """
    if count in (0, n):
        return -math.inf, math.inf
    rest, part = (total - flipped) / (n - count), flipped / count
    return min(rest, part), max(rest, part)


def _sign_flip(differences: Sequence[float], *, alpha: float, resamples: int, seed: int, exact: bool | None) -> tuple[float, float, float, bool]:
    """(p-value of δ = 0, low, high, exact) of the sign-flip test inverted at level `alpha`.

    p(δ) is the weight of the patterns whose extreme range holds δ. It falls away
    from the mean on both sides, so the shifts with p(δ) ≥ alpha form the interval
    [low, high]: `high` is where the weight of ranges reaching above it first makes
    up alpha, `low` likewise below. Range ends within rounding of zero are set to
    zero, so p(0) and the interval are computed from the same numbers: zero is
    inside exactly when p(0) ≥ alpha.
    """
    n = len(differences)
    patterns = None if exact is False else _exact_patterns(differences, EXACT_PATTERN_LIMIT if exact is None else 2**24)
    enumerated = patterns is not None
    if patterns is None:
        patterns = _random_patterns(differences, resamples, seed)
    total = math.fsum(differences)
    bound = max((abs(d) for d in differences), default=0.0)
    tolerance = 1e-9 * max(1.0, bound)

    def snapped(value: float) -> float:
        return 0.0 if abs(value) <= tolerance else value

    ranges = []
    for (flipped, count), w in patterns.items():
        lo, hi = _extreme_range(total, flipped, count, n)
        ranges.append((snapped(lo), snapped(hi), w))
    weight = sum(w for _, _, w in ranges)
    p_value = sum(w for lo, hi, w in ranges if lo <= 0.0 <= hi) / weight
    needed = alpha * weight

    def end(values: list[tuple[float, int]]) -> float:
        reached = 0
        for value, w in values:
            reached += w
            if reached >= needed:
                return value
        return values[-1][0]

    high = end(sorted(((hi, w) for _, hi, w in ranges), key=lambda pair: -pair[0]))
    low = end(sorted(((lo, w) for lo, _, w in ranges), key=lambda pair: pair[0]))
    # An end the test cannot bound (under about six questions) is shown at the largest difference.
    return p_value, -bound if math.isinf(low) else low, bound if math.isinf(high) else high, enumerated


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    exact: bool | None = None,
) -> PairedResult:
    """Compare per-question scores `a` and `b` (same questions, same order): A − B.

    The p-value is a two-sided sign-flip test: under "no difference" each question's
    difference is as likely negative as positive; p is the share of sign patterns
    whose |sum| is at least the observed one. The interval holds every shift δ for
    which the same test on the differences minus δ gives p ≥ 1 − confidence, so it
    excludes zero exactly when p < 1 − confidence. The patterns are enumerated
    exactly when they fall into at most `EXACT_PATTERN_LIMIT` groups of equal
    (sum, count), else drawn (`resamples`, `random.Random(seed)`), p being then
    (1 + extreme) / (1 + resamples). `exact` forces either method.
    """
    _check_confidence(confidence)
    if len(a) != len(b):
        raise StatsError(f"a paired comparison needs the same questions on both sides, got {len(a)} and {len(b)} scores")
    if not a:
        raise StatsError("a paired comparison needs at least one question")
    differences = [x - y for x, y in zip(a, b)]
    p_value, low, high, enumerated = _sign_flip(differences, alpha=1.0 - confidence, resamples=resamples, seed=seed, exact=exact)
    return PairedResult(
        difference=fmean(differences),
        low=low,
        high=high,
        p_value=p_value,
        better=sum(1 for x, y in zip(a, b) if x > y),
        worse=sum(1 for x, y in zip(a, b) if x < y),
        ties=sum(1 for x, y in zip(a, b) if x == y),
        includes_zero=low <= 0.0 <= high,
        exact=enumerated,
    )


@dataclass(frozen=True, slots=True)
class Sample:
    """One scored answer: its question, its index among the question's samples, and its costs."""

    question_id: str
    sample_index: int
    reward: float
    tokens: int = 0
    tool_calls: int = 0
    cost: float = 0.0

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> Sample:
        """Read a record with keys `question_id`, `sample_index`, `reward` and optional
        `tokens`, `tool_calls`, `cost`."""
        try:
            return cls(
                question_id=str(record["question_id"]),
                sample_index=int(record["sample_index"]),
                reward=float(record["reward"]),
                tokens=int(record.get("tokens", 0)),
                tool_calls=int(record.get("tool_calls", 0)),
                cost=float(record.get("cost", 0.0)),
            )
        except KeyError as missing:
            raise StatsError(f"a sample record needs the key {missing}") from None
        except (TypeError, ValueError) as error:
            raise StatsError(f"invalid sample record {dict(record)!r}: {error}") from None


@dataclass(frozen=True, slots=True)
class QuestionStats:
    """The samples of one question, reduced: counts, mean reward and mean costs per answer."""

    question_id: str
    samples: int
    correct: int
    mean_reward: float
    tokens: float
    tool_calls: float
    cost: float

    def to_json(self) -> dict[str, Any]:
        return {
            "question_id": self.question_id,
            "samples": self.samples,
            "correct": self.correct,
            "mean_reward": self.mean_reward,
            "tokens": self.tokens,
            "tool_calls": self.tool_calls,
            "cost": self.cost,
        }


@dataclass(frozen=True, slots=True)
class Metric:
    """A named metric over questions with its bootstrap interval."""

    name: str
    interval: Interval


@dataclass(frozen=True, slots=True)
class EvaluationSummary:
    """Per-question results and metrics of one library on one evaluation set."""

    questions: tuple[QuestionStats, ...]
    metrics: tuple[Metric, ...]
    samples_per_question: int
    correct_at: float

    def metric(self, name: str) -> Interval:
        """The interval of metric `name`."""
        for metric in self.metrics:
            if metric.name == name:
                return metric.interval
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "questions": [q.to_json() for q in self.questions],
            "metrics": {m.name: m.interval.to_json() for m in self.metrics},
            "samples_per_question": self.samples_per_question,
            "correct_at": self.correct_at,
        }


_METRIC_NAME = re.compile(r"^(?:mean|(?P<kind>mean|pass)@(?P<k>[1-9][0-9]*))$")
COST_METRICS = ("tool_calls", "tokens", "cost")


def _group_by_question(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    by_question: dict[str, dict[int, Sample]] = {}
    for sample in samples:
        seen = by_question.setdefault(sample.question_id, {})
        if sample.sample_index in seen:
            raise StatsError(f"question {sample.question_id!r} has sample {sample.sample_index} twice")
        seen[sample.sample_index] = sample
    return {q: [seen[i] for i in sorted(seen)] for q, seen in by_question.items()}


def _per_question_metric(name: str, question: QuestionStats, rewards: Sequence[float]) -> float:
    match = _METRIC_NAME.match(name)
    if match is None:
        raise StatsError(f"unknown metric {name!r}: expected mean, mean@k or pass@k")
    kind, k = match.group("kind"), match.group("k")
    if kind is None:
        return question.mean_reward
    if kind == "mean":
        return mean_at_k(rewards, int(k))
    return pass_at_k(question.samples, question.correct, int(k))


def summarize_samples(
    samples: Iterable[Sample],
    *,
    metrics: Sequence[str] | None = None,
    correct_at: float = 1.0,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> EvaluationSummary:
    """Reduce per-sample records to per-question results and metrics with intervals.

    A sample is *correct* when its reward is at least `correct_at` (1.0: full credit).
    `metrics` are names `mean`, `mean@k`, `pass@k` (default: `mean`, `pass@1` and
    `pass@n` for n samples per question); the per-answer means `tool_calls`,
    `tokens` and `cost` always follow. Every metric is averaged over questions and
    gets a percentile-bootstrap interval; all use the same `seed`, so the same
    resampled question sets.
    """
    grouped = _group_by_question(samples)
    if not grouped:
        raise StatsError("there are no samples to summarise")
    questions = tuple(
        QuestionStats(
            question_id=question_id,
            samples=len(group),
            correct=sum(1 for s in group if s.reward >= correct_at),
            mean_reward=fmean(s.reward for s in group),
            tokens=fmean(s.tokens for s in group),
            tool_calls=fmean(s.tool_calls for s in group),
            cost=fmean(s.cost for s in group),
        )
        for question_id, group in grouped.items()
    )
    n = min(q.samples for q in questions)
    names = list(dict.fromkeys(metrics if metrics is not None else ("mean", "pass@1", f"pass@{n}")))
    rewards = [[s.reward for s in group] for group in grouped.values()]
    per_question: dict[str, list[float]] = {
        name: [_per_question_metric(name, q, r) for q, r in zip(questions, rewards)] for name in names
    }
    per_question.update({name: [getattr(q, name) for q in questions] for name in COST_METRICS})
    return EvaluationSummary(
        questions=questions,
        metrics=tuple(
            Metric(name, bootstrap_ci(values, confidence=confidence, resamples=resamples, seed=seed))
            for name, values in per_question.items()
        ),
        samples_per_question=n,
        correct_at=correct_at,
    )
