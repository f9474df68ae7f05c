"""Intervals over two crossed levels: units (the repeats of a learn, sampled permutations) and questions.

Every unit is scored on the same questions, so the scores form a table `values[u][q]`:
one row per unit, one column per question. The estimate is the mean of the table. The
interval is a percentile bootstrap that resamples the units and the questions
independently, each with replacement (a two-level, crossed bootstrap), so its width
shows both sources of noise: which questions were asked, and which repeat (or which
permutation) happened to be drawn. With one unit it is `stats.bootstrap_ci` over the
questions, exact for small sets.
"""

from __future__ import annotations

import math
import operator
import random
from collections import Counter
from collections.abc import Sequence
from statistics import fmean

from grpo_dsl.evaluation.stats import DEFAULT_RESAMPLES, Interval, StatsError, bootstrap_ci

__all__ = ["crossed_bootstrap"]


def crossed_bootstrap(
    values: Sequence[Sequence[float]],
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean of `values[u][q]` and its percentile interval, resampling units and questions.

    Each resample draws as many units as there are and as many questions as there
    are, with replacement and independently (`random.Random(seed)`), and takes the
    mean of the drawn rows over the drawn columns. Every row must score the same
    questions in the same order.
    """
    rows = [list(row) for row in values]
    if not rows or not rows[0]:
        raise StatsError("a pooled interval needs at least one unit and one question")
    questions = len(rows[0])
    if any(len(row) != questions for row in rows):
        raise StatsError("a pooled interval needs every unit scored on the same questions")
    if len(rows) == 1:
        return bootstrap_ci(rows[0], confidence=confidence, resamples=resamples, seed=seed)
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"the confidence level must be strictly between 0 and 1, got {confidence}")
    units = len(rows)
    rng = random.Random(seed)
    columns, members = range(questions), range(units)
    means = []
    for _ in range(resamples):
        counts = [0] * questions
        for question in rng.choices(columns, k=questions):
            counts[question] += 1
        drawn = Counter(rng.choices(members, k=units))
        # each distinct drawn unit's total over the drawn questions, times how often it was drawn
        total = sum(times * sum(map(operator.mul, counts, rows[u])) for u, times in drawn.items())
        means.append(total / (units * questions))
    means.sort()
    tail = (1.0 - confidence) / 2.0
    return Interval(
        estimate=fmean(v for row in rows for v in row),
        low=_percentile(means, tail),
        high=_percentile(means, 1.0 - tail),
    )


def _percentile(ordered: Sequence[float], level: float) -> float:
    """The smallest value whose share of the sorted values reaches `level` (the inverse CDF)."""
    return ordered[max(0, math.ceil(level * len(ordered)) - 1)]
