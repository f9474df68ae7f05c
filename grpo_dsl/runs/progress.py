"""Progress of a run: a live line per stage on a terminal, plain log lines otherwise."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, Callable, TextIO

__all__ = ["Progress", "format_cost"]

STAGES = ("rollout", "summary", "contrast", "advantage", "consolidate", "validate", "prune")


def format_cost(count: Mapping[str, Any]) -> str:
    """An estimate or a usage total (`calls`, `prompt_tokens`, `completion_tokens`, `usd`) in words:
    "1,234 calls, 56,789 tokens, $0.1234"."""
    tokens = int(count["prompt_tokens"]) + int(count["completion_tokens"])
    return f"{int(count['calls']):,} calls, {tokens:,} tokens, ${float(count['usd']):.4f}"


class Progress:
    """Counts calls per stage within a step and reports them to `stream`.

    On a TTY the current step is redrawn in place with calls per stage, the cost so
    far and an ETA from the step's expected rollout count; elsewhere one line is
    printed when a step starts and one when it ends.
    """

    def __init__(self, stream: TextIO | None, *, cost: Callable[[], float] = lambda: 0.0, interactive: bool | None = None):
        self.stream = stream
        self.cost = cost
        self.interactive = bool(stream is not None and (stream.isatty() if interactive is None else interactive))
        self.calls: Counter[str] = Counter()
        self.step = 0
        self.total_steps = 0
        self.expected_rollouts = 0
        self.started = time.monotonic()
        self._last_draw = 0.0

    def step_started(self, step: int, total_steps: int, questions: int, group_size: int) -> None:
        self.step, self.total_steps = step, total_steps
        self.expected_rollouts = questions * group_size
        self.calls.clear()
        self.started = time.monotonic()
        if not self.interactive:
            self._line(f"step {step}/{total_steps}: {questions} questions x {group_size} rollouts")

    def call_done(self, stage: str) -> None:
        self.calls[stage] += 1
        now = time.monotonic()
        if self.interactive and now - self._last_draw > 0.1:
            self._last_draw = now
            self._draw(now)

    def step_finished(self, message: str) -> None:
        if self.interactive and self.stream is not None:
            self.stream.write("\r\x1b[2K")
        self._line(f"step {self.step}/{self.total_steps}: {message}")

    def message(self, text: str) -> None:
        self._line(text)

    def _draw(self, now: float) -> None:
        assert self.stream is not None
        done = self.calls["rollout"]
        width = 20
        filled = int(width * min(done, self.expected_rollouts) / max(self.expected_rollouts, 1))
        elapsed = now - self.started
        eta = elapsed / done * (self.expected_rollouts - done) if 0 < done < self.expected_rollouts else 0.0
        stages = " ".join(f"{s} {self.calls[s]}" for s in STAGES if self.calls[s])
        self.stream.write(
            f"\r\x1b[2Kstep {self.step}/{self.total_steps} [{'#' * filled}{'.' * (width - filled)}] "
            f"{stages}  ${self.cost():.4f}  eta {eta:.0f}s"
        )
        self.stream.flush()

    def _line(self, text: str) -> None:
        if self.stream is not None:
            self.stream.write(text + "\n")
            self.stream.flush()
