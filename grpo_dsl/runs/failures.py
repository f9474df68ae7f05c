"""What failed in a step or an evaluation, by cause, and the threshold that stops a run.

A failure is a call that still failed after the model's retries, or a rollout that
has no reward: its calls failed, or its reward raised, returned NaN, infinity or a
text. `Failures` counts attempts and failures of each kind of work ("rollouts",
"learner calls", "samples"); beyond `max_failures` of one kind it raises
`TooManyFailures`, whose message gives the counts by cause and what to do. When the
number of attempts is known in advance (`expect`), it raises as soon as the share
can no longer end within the limit, so a dead endpoint does not cost a whole step.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from grpo_dsl.core.errors import GrpoError

__all__ = ["Failures", "TooManyFailures", "failure_cause"]

SHOWN_CAUSES = 3
"""How many causes a message lists, the most frequent first."""

_RETRIED = re.compile(r"^(?:RetriesExhausted: )?model `[^`]*`: the call failed \d+ times?; last error: ")


def failure_cause(error: str) -> str:
    """The cause of a failure, shortened so that equal causes are counted together:
    the last error of a retried call, the first line, at most 120 characters."""
    cause = _RETRIED.sub("", error.strip()).splitlines()[0] if error.strip() else "unknown"
    return cause if len(cause) <= 120 else cause[:117] + "..."


class TooManyFailures(GrpoError):
    """More than `max_failures` of some work failed; the message has the counts by cause."""

    def __init__(self, message: str, counts: dict[str, Any]) -> None:
        super().__init__(message)
        self.counts = counts


@dataclass(slots=True)
class _Kind:
    attempted: int = 0
    planned: int | None = None
    causes: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.causes.values())


class Failures:
    """Attempts and failures of the kinds of work of one step or one library's evaluation.

    `where` names it in messages ("step 3", "library `lessons`"); `advice` says what
    to do when it stops (how to resume, which `max_failures` to raise).
    """

    def __init__(self, limit: float, where: str, advice: str) -> None:
        self.limit = limit
        self.where = where
        self.advice = advice
        self.kinds: dict[str, _Kind] = {}

    def expect(self, kind: str, planned: int) -> None:
        """`planned` attempts of `kind` will be made: stop as soon as too many of them failed."""
        self.kinds.setdefault(kind, _Kind()).planned = planned

    def attempt(self, kind: str, error: str | None = None) -> None:
        """Count one attempt of `kind`, failed with `error` when given; raise once the failures
        of a planned kind are beyond the limit whatever the remaining attempts do."""
        counts = self.kinds.setdefault(kind, _Kind())
        counts.attempted += 1
        if error is None:
            return
        counts.causes[failure_cause(error)] += 1
        if counts.planned is not None and counts.failed > self.limit * counts.planned:
            raise TooManyFailures(self._message(kind, counts, counts.planned), self.to_json())

    def check(self) -> None:
        """Raise `TooManyFailures` when the failed share of some kind is beyond the limit."""
        for kind, counts in self.kinds.items():
            if counts.failed > self.limit * counts.attempted:
                raise TooManyFailures(self._message(kind, counts, counts.attempted), self.to_json())

    def count(self, kind: str) -> int:
        """Failures of `kind`."""
        counts = self.kinds.get(kind)
        return counts.failed if counts is not None else 0

    def of(self, kind: str) -> dict[str, Any]:
        """`{"attempted", "failed", "causes": {cause: count}}` of `kind`, the most frequent cause first."""
        c = self.kinds.get(kind, _Kind())
        return {"attempted": c.attempted, "failed": c.failed, "causes": dict(c.causes.most_common())}

    def to_json(self) -> dict[str, Any]:
        """`of(kind)` for every kind counted."""
        return {kind: self.of(kind) for kind in self.kinds}

    def _message(self, kind: str, counts: _Kind, out_of: int) -> str:
        share = counts.failed / out_of if out_of else 1.0
        return (
            f"{self.where}: {counts.failed} of {out_of} {kind} failed ({share:.0%}, more than max_failures = "
            f"{self.limit:.0%}): {_causes(counts.causes)}. {self.advice}"
        )


def _causes(causes: Counter[str]) -> str:
    ranked = causes.most_common()
    shown = "; ".join(f"{n} x {cause}" for cause, n in ranked[:SHOWN_CAUSES])
    others = sum(n for _, n in ranked[SHOWN_CAUSES:])
    return shown + (f"; {others} more of {len(ranked) - SHOWN_CAUSES} other causes" if others else "")
