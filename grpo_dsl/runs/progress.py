"""Progress of a run, an evaluation, a replay or an ablation: one live display on a
terminal, one plain line per step elsewhere.

`Progress` is fed by the run's event log (`EventLog.observe`): every answered call
(`call`, with its stage and whether the cache answered it), every retry
(`llm_retry`) and every call that failed after its retries (`llm_call_failed`).
The work says what it expects (`expect`: the calls of each stage from the plan's
estimate, already done ones included) and reports its rewards (`rewards`).

The ETA counts every stage: each stage's remaining calls (expected minus done) are
weighted by the stage's expected tokens per call, and the weighted remaining work is
divided by the weighted rate of the calls made so far by this process. While any
stage still expects calls (learner calls after the rollouts, the gate, the
consolidation) the ETA is not zero.

On a terminal the display is drawn with `rich` (docs/learning.md "Progress"); it is
redrawn four times a second and stays on screen when the work ends. `rich` is
imported only then, so commands that show no progress do not pay for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Group
    from rich.live import Live

__all__ = ["Progress", "StageCount", "format_cost", "format_duration"]


def format_cost(count: Mapping[str, Any]) -> str:
    """An estimate or a usage total (`calls`, `prompt_tokens`, `completion_tokens`, `usd`) in words:
    "1,234 calls, 56,789 tokens, $0.1234"."""
    tokens = int(count["prompt_tokens"]) + int(count["completion_tokens"])
    return f"{int(count['calls']):,} calls, {tokens:,} tokens, ${float(count['usd']):.4f}"


def format_duration(seconds: float) -> str:
    """A duration as "42s", "3m05s" or "2h07m"."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass(slots=True)
class StageCount:
    """The calls of one stage: done (answered, cached included, or failed for good),
    expected in all, answered from the cache, retried, failed after their retries."""

    done: int = 0
    expected: int | None = None
    cached: int = 0
    retries: int = 0
    failures: int = 0
    weight: float = 1.0
    """Expected tokens per call: how much of the remaining time one call of this stage takes."""
    per_unit: float = 0.0
    """Expected calls in one step (or one library of an evaluation)."""
    done_here: int = 0
    """Calls made by this process (a resumed run's earlier calls are in `done` only)."""

    @property
    def remaining(self) -> int:
        return max(0, (self.expected or 0) - self.done)


class Progress:
    """Counts the calls of each stage and shows them with the reward, the spending and an ETA.

    `stream` None shows nothing. `interactive` (a terminal, by default when `stream`
    is one) draws the live display; otherwise `step_finished` prints one plain line.
    `cost` gives the USD spent so far, `budget_usd` the run's limit (None: none).
    `color` styles the live display: True always, False never (plain text), None as
    `rich` decides (not when `NO_COLOR` is set).
    """

    def __init__(
        self,
        stream: TextIO | None,
        *,
        title: str = "",
        cost: Callable[[], float] = lambda: 0.0,
        budget_usd: float | None = None,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        color: bool | None = None,
    ):
        self.stream = stream
        self.title = title
        self.cost = cost
        self.budget_usd = budget_usd
        self.interactive = bool(stream is not None and (stream.isatty() if interactive is None else interactive))
        self.clock = clock
        self.color = color
        self.stages: dict[str, StageCount] = {}
        self.unit = ""
        self.unit_number = 0
        self.units = 0
        self.reward_sum = 0.0
        self.reward_count = 0
        self.started = clock()
        self._live: Live | None = None

    # ------------------------------------------------------------ what is fed in

    def expect(self, estimate: Mapping[str, Any], units: int, done: Mapping[str, Any] | None = None) -> None:
        """Expect the calls of every stage of a `learn` or `evaluate` estimate (their
        expected counts, summed over models), spread evenly over `units` steps (or
        libraries), `done` being the `by_stage` of the usage already spent (a resumed run).

        When a step starts or ends, what each stage still expects is what a step
        expects times the steps left, so the ETA is zero when the last step ends."""
        self.units = units
        for entry in estimate.get("stages", ()):
            expected = entry.get("expected") or {}
            calls = int(expected.get("calls", entry.get("calls", 0)))
            tokens = float(expected.get("prompt_tokens", 0)) + float(expected.get("completion_tokens", 0))
            stage = self._stage(str(entry["stage"]))
            stage.expected = (stage.expected or 0) + calls
            stage.per_unit += calls / max(units, 1)
            if calls and tokens:
                stage.weight = tokens / calls
        for name, tally in (done or {}).items():
            self._stage(name).done = int(tally.get("calls", 0))

    def event(self, name: str, fields: Mapping[str, Any]) -> None:
        """Count one event of the run's log (see the module's docstring)."""
        stage_name = fields.get("stage")
        if not isinstance(stage_name, str):
            return
        if name == "call":
            stage = self._stage(stage_name)
            stage.done += 1
            stage.done_here += 1
            stage.cached += bool(fields.get("cached"))
        elif name == "llm_retry":
            self._stage(stage_name).retries += 1
        elif name == "llm_call_failed":
            stage = self._stage(stage_name)
            stage.failures += 1
            stage.done += 1
            stage.done_here += 1
        else:
            return
        self._refresh()

    def rewards(self, values: Iterable[float | None]) -> None:
        """Add rewards (None for a failed one, left out) to the running mean of the current step."""
        for value in values:
            if value is not None:
                self.reward_sum += value
                self.reward_count += 1
        self._refresh()

    # ------------------------------------------------------------ steps and lines

    def unit_started(self, label: str, number: int, line: str | None = None) -> None:
        """Start step `number` (1-based; `label`, e.g. "step 2/5" or "library none"); the
        running reward starts again. Off a terminal, `line` (if any) is printed."""
        self.unit, self.unit_number = label, number
        self._units_left(self.units - number + 1)
        self.reward_sum, self.reward_count = 0.0, 0
        if line is not None and not self.interactive:
            self._line(line)
        self._refresh()

    def step_started(self, step: int, total_steps: int, questions: int, group_size: int) -> None:
        """Start learning step `step` of `total_steps`."""
        self.unit_started(f"step {step}/{total_steps}", step, f"step {step}/{total_steps}: {questions} questions x {group_size} rollouts")

    def step_finished(self, message: str) -> None:
        """Print the line of the step that ended: its `message`, then the calls, the spending and the ETA."""
        self._units_left(self.units - self.unit_number)
        self._line(f"{self.unit}: {message} · {self.status()}")

    def message(self, text: str) -> None:
        """Print a line (above the live display on a terminal)."""
        self._line(text)

    def close(self) -> None:
        """Draw the display a last time and leave it on screen."""
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            self._live.stop()
            self._live = None

    # ------------------------------------------------------------ what is shown

    @property
    def reward(self) -> float | None:
        """The mean of the rewards of the current step so far."""
        return self.reward_sum / self.reward_count if self.reward_count else None

    def eta(self) -> float | None:
        """Seconds left for every stage's remaining calls at this process's rate (None before
        its first call)."""
        done = sum(s.done_here * s.weight for s in self.stages.values())
        if not done:
            return None
        remaining = sum(s.remaining * s.weight for s in self.stages.values())
        return (self.clock() - self.started) / done * remaining

    def spent(self) -> str:
        """"$0.0123 of $1.00" (or "$0.0123" without a budget)."""
        spent = f"${self.cost():.4f}"
        return spent if self.budget_usd is None else f"{spent} of ${self.budget_usd:.2f}"

    def status(self) -> str:
        """The totals in one line: calls, cached, retries, failures, USD against the budget, ETA."""
        calls = sum(s.done for s in self.stages.values())
        cached = sum(s.cached for s in self.stages.values())
        retries = sum(s.retries for s in self.stages.values())
        failures = sum(s.failures for s in self.stages.values())
        eta = self.eta()
        return (
            f"{calls} calls ({cached} cached, {retries} retries, {failures} failed) · {self.spent()} · "
            f"eta {'?' if eta is None else format_duration(eta)}"
        )

    def _units_left(self, units: int) -> None:
        """Expect of each stage with an expectation what a step expects times `units` more."""
        for stage in self.stages.values():
            if stage.expected is not None and self.units:
                stage.expected = stage.done + round(stage.per_unit * max(units, 0))

    def _stage(self, name: str) -> StageCount:
        return self.stages.setdefault(name, StageCount())

    def _render(self) -> Group:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, padding=(0, 2, 0, 0), header_style="bold")
        for column in ("stage", "done/expected", "cached", "retries", "failed"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for name, stage in self.stages.items():
            expected = "?" if stage.expected is None else str(stage.expected)
            table.add_row(name, f"{stage.done}/{expected}", str(stage.cached), str(stage.retries), str(stage.failures))
        reward = self.reward
        head = Text(" · ".join(filter(None, (self.title, self.unit))), style="bold")
        foot = Text(f"reward {'–' if reward is None else f'{reward:.3f}'} · {self.status()}")
        return Group(head, table, foot)

    def _refresh(self) -> None:
        if not self.interactive or self.stream is None:
            return
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            if self.color is None:
                console = Console(file=self.stream, force_terminal=True)
            else:
                console = Console(file=self.stream, force_terminal=True, no_color=not self.color, color_system="auto" if self.color else None)
            self._live = Live(get_renderable=self._render, console=console, refresh_per_second=4, transient=False)
            self._live.start()

    def _line(self, text: str) -> None:
        if self.stream is None:
            return
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()
