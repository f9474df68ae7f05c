"""The results of an evaluation: per-library metrics with intervals and paired comparisons, as JSON-able values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grpo_dsl.evaluation.stats import EvaluationSummary, Interval, PairedResult

__all__ = ["Comparison", "EvaluationData", "LibraryEvaluation", "MetricInterval", "PooledGain"]


@dataclass(frozen=True, slots=True)
class MetricInterval:
    """A metric's estimate over questions and its confidence interval."""

    name: str
    estimate: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class LibraryEvaluation:
    """One library scored on the evaluation set: `questions` × `samples` answers, of
    which `failed` (out of `attempted`) failed and were left out."""

    name: str
    questions: int
    samples: int
    metrics: tuple[MetricInterval, ...]
    failed: int = 0
    attempted: int = 0

    @classmethod
    def from_summary(cls, name: str, summary: EvaluationSummary, failures: Mapping[str, Any] | None = None) -> LibraryEvaluation:
        """The evaluation of library `name` from `stats.summarize_samples`'s result and its
        failures (`{"attempted", "failed", ...}`)."""
        return cls(
            name=name,
            questions=len(summary.questions),
            samples=summary.samples_per_question,
            metrics=tuple(
                MetricInterval(m.name, m.interval.estimate, m.interval.low, m.interval.high) for m in summary.metrics
            ),
            failed=int((failures or {}).get("failed", 0)),
            attempted=int((failures or {}).get("attempted", 0)),
        )

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> LibraryEvaluation:
        failures = value.get("failures") or {}
        return cls(
            name=value["name"],
            questions=value["questions"],
            samples=value["samples"],
            metrics=tuple(
                MetricInterval(name, float(m["estimate"]), float(m["low"]), float(m["high"]))
                for name, m in value["metrics"].items()
            ),
            failed=int(value.get("failed", failures.get("failed", 0))),
            attempted=int(value.get("attempted", failures.get("attempted", 0))),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "questions": self.questions,
            "samples": self.samples,
            "metrics": {m.name: {"estimate": m.estimate, "low": m.low, "high": m.high} for m in self.metrics},
            "failed": self.failed,
            "attempted": self.attempted,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """`candidate` − `baseline` on `metric`, paired over the same questions."""

    metric: str
    candidate: str
    baseline: str
    difference: float
    low: float
    high: float
    p_value: float
    better: int
    worse: int
    ties: int

    @property
    def includes_zero(self) -> bool:
        return self.low <= 0.0 <= self.high

    @classmethod
    def from_paired(cls, metric: str, candidate: str, baseline: str, result: PairedResult) -> Comparison:
        """The comparison from `stats.paired_difference(candidate_scores, baseline_scores)`."""
        return cls(
            metric=metric,
            candidate=candidate,
            baseline=baseline,
            difference=result.difference,
            low=result.low,
            high=result.high,
            p_value=result.p_value,
            better=result.better,
            worse=result.worse,
            ties=result.ties,
        )

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Comparison:
        return cls(
            metric=value["metric"],
            candidate=value["candidate"],
            baseline=value["baseline"],
            difference=float(value["difference"]),
            low=float(value["low"]),
            high=float(value["high"]),
            p_value=float(value["p_value"]),
            better=value["better"],
            worse=value["worse"],
            ties=value["ties"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "p_value": self.p_value,
            "better": self.better,
            "worse": self.worse,
            "ties": self.ties,
            "includes_zero": self.includes_zero,
        }


@dataclass(frozen=True, slots=True)
class PooledGain:
    """The gain of the repeats of a learn over the baseline on `metric`: each repeat's
    gain, their mean with its interval over repeats and questions together, and how
    many repeats scored higher than the baseline (`beat`), and beyond noise."""

    metric: str
    learn: str
    baseline: str
    gains: tuple[float, ...]
    difference: float
    low: float
    high: float
    beat: int
    beat_beyond_noise: int

    @classmethod
    def of_repeats(cls, metric: str, learn: str, baseline: str, comparisons: Sequence[Comparison], pooled: Interval) -> PooledGain:
        """The pooled gain from each repeat's comparison with the baseline and the pooled interval."""
        return cls(
            metric=metric,
            learn=learn,
            baseline=baseline,
            gains=tuple(c.difference for c in comparisons),
            difference=pooled.estimate,
            low=pooled.low,
            high=pooled.high,
            beat=sum(1 for c in comparisons if c.difference > 0),
            beat_beyond_noise=sum(1 for c in comparisons if c.low > 0),
        )

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PooledGain:
        return cls(
            metric=value["metric"],
            learn=value["learn"],
            baseline=value["baseline"],
            gains=tuple(float(g) for g in value["gains"]),
            difference=float(value["difference"]),
            low=float(value["low"]),
            high=float(value["high"]),
            beat=value["beat"],
            beat_beyond_noise=value["beat_beyond_noise"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "learn": self.learn,
            "baseline": self.baseline,
            "gains": list(self.gains),
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "beat": self.beat,
            "beat_beyond_noise": self.beat_beyond_noise,
        }


@dataclass(frozen=True, slots=True)
class EvaluationData:
    """The libraries evaluated, with intervals at `confidence`, their paired comparisons,
    and the pooled gains of the repeats of a learn."""

    libraries: tuple[LibraryEvaluation, ...]
    comparisons: tuple[Comparison, ...] = ()
    confidence: float = 0.95
    pooled: tuple[PooledGain, ...] = ()

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> EvaluationData:
        return cls(
            libraries=tuple(LibraryEvaluation.from_json(v) for v in value["libraries"]),
            comparisons=tuple(Comparison.from_json(v) for v in value.get("comparisons", ())),
            confidence=float(value.get("confidence", 0.95)),
            pooled=tuple(PooledGain.from_json(v) for v in value.get("pooled", ())),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "libraries": [v.to_json() for v in self.libraries],
            "comparisons": [v.to_json() for v in self.comparisons],
            "confidence": self.confidence,
            "pooled": [v.to_json() for v in self.pooled],
        }
