"""The run report: one self-contained HTML file with the learning curves, the library's
changes, each step's groups (answers, rewards, the learner's summaries and proposals),
rejected operations and gate, the evaluation with its intervals, and every evaluated
answer question by question (the drill-down, filtered by CSS alone).

`ReportData` is a tree of frozen dataclasses holding only numbers and text; whoever
reads a run directory fills it (or builds it from plain JSON with
`ReportData.from_json`, validated against `REPORT_DATA_SCHEMA`). `render_report`
turns it into HTML: plots are inline SVG computed here, styles are inline, there is
no script and no external resource, and a Content-Security-Policy forbids both, so
the file opens offline and untrusted experience text can do nothing but be read.
The template renders in a sandboxed Jinja environment with autoescaping on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from grpo_dsl.core.resources import resource_path
from grpo_dsl.evaluation.results import Comparison, EvaluationData, PooledGain
from grpo_dsl.evaluation.stats import SMALL_SAMPLE
from grpo_dsl.report.data import AblationData, ReportData, StageCost, StepData

__all__ = ["render_report"]


# ---------------------------------------------------------------- inline SVG


@dataclass(frozen=True, slots=True)
class Shape:
    """One SVG element: its tag, attributes, text content and tooltip."""

    tag: Literal["rect", "circle", "line", "polyline", "polygon", "text"]
    attrs: Mapping[str, str]
    text: str = ""
    title: str = ""


@dataclass(frozen=True, slots=True)
class Figure:
    """An SVG plot: a view box of `width` × `height` and its shapes."""

    id: str
    label: str
    width: int
    height: int
    shapes: tuple[Shape, ...]
    legend: tuple[tuple[str, str], ...] = ()


_WIDTH = 640
_HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 40, 18, 42
"""Margins of a plot, in view-box units: room for the tick labels (16 units high, see the
template's style) so that none is cut at the edges, the last x label included."""
_MAX_X_LABELS = 12


def _coord(value: float) -> str:
    return f"{value:.1f}"


def _number(value: float) -> str:
    """A short label for an axis tick."""
    if value == 0:
        return "0"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return text.replace("-", "−")


def _value(value: float) -> str:
    """An estimate or a bound: three decimals, fewer for large values, more for tiny ones."""
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif value != 0 and abs(value) < 0.01:
        text = f"{value:.2g}"
    else:
        text = f"{value:.3f}"
    return text.replace("-", "−")


def _shape(tag: Literal["rect", "circle", "line", "polyline", "polygon", "text"], text: str = "", title: str = "", **attrs: Any) -> Shape:
    values = {
        key.rstrip("_").replace("_", "-"): _coord(v) if isinstance(v, float) and not key.startswith("data_") else str(v)
        for key, v in attrs.items()
    }
    return Shape(tag, values, text, title)


def _nice_ticks(low: float, high: float, count: int = 5, *, integer: bool = False) -> list[float]:
    if high - low < 1e-12:
        pad = abs(low) * 0.1 or 0.5
        low, high = (0.0, 1.0) if low == 0 else (low - pad, high + pad)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    candidates = (m * magnitude for m in (1, 2, 2.5, 5, 10))
    step = next(c for c in candidates if c >= raw and (not integer or c == int(c)))
    start = math.floor(low / step + 1e-9) * step
    stop = math.ceil(high / step - 1e-9) * step
    return [round(start + i * step, 12) for i in range(round((stop - start) / step) + 1)]


@dataclass(frozen=True, slots=True)
class _Scale:
    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


def _y_axis(values: Iterable[float], *, include_zero: bool, integer: bool = False) -> tuple[list[float], _Scale]:
    data = list(values)
    low = min([*data, 0.0] if include_zero else data)
    high = max([*data, 0.0] if include_zero else data)
    ticks = _nice_ticks(low, high, integer=integer)
    return ticks, _Scale(ticks[0], ticks[-1], _HEIGHT - _BOTTOM, _TOP)


def _step_frame(steps: Sequence[StepData], ticks: Sequence[float], y: _Scale) -> tuple[list[Shape], list[float]]:
    """Grid, y labels and step labels; returns the shapes and each step's x centre."""
    band = (_WIDTH - _LEFT - _RIGHT) / len(steps)
    centres = [_LEFT + band * (i + 0.5) for i in range(len(steps))]
    shapes = [
        shape
        for tick in ticks
        for shape in (
            _shape("line", class_="grid", x1=float(_LEFT), x2=float(_WIDTH - _RIGHT), y1=y(tick), y2=y(tick)),
            _shape("text", _number(tick), class_="tick y", x=float(_LEFT - 6), y=y(tick) + 4),
        )
    ]
    every = math.ceil(len(steps) / _MAX_X_LABELS)
    shapes.extend(
        _shape("text", str(step.step), class_="tick x", x=centre, y=float(_HEIGHT - _BOTTOM + 20))
        for i, (step, centre) in enumerate(zip(steps, centres))
        if i % every == 0 or i == len(steps) - 1
    )
    shapes.append(_shape("text", "step", class_="axis-label", x=float(_WIDTH - _RIGHT), y=float(_HEIGHT - 6)))
    return shapes, centres


def _line_figure(
    figure_id: str,
    label: str,
    steps: Sequence[StepData],
    values: Sequence[float],
    what: str,
    band: Sequence[tuple[float, float]] | None,
    *,
    counts: bool,
) -> Figure:
    extent = [*values, *(v for pair in band or () for v in pair)]
    ticks, y = _y_axis(extent, include_zero=counts, integer=counts)
    shapes, xs = _step_frame(steps, ticks, y)
    if band:
        upper = [f"{_coord(x)},{_coord(y(high))}" for x, (_, high) in zip(xs, band)]
        lower = [f"{_coord(x)},{_coord(y(low))}" for x, (low, _) in reversed(list(zip(xs, band)))]
        shapes.append(_shape("polygon", class_="band", points=" ".join(upper + lower)))
    shapes.append(_shape("polyline", class_="line", points=" ".join(f"{_coord(x)},{_coord(y(v))}" for x, v in zip(xs, values))))
    for i, (step, x, value) in enumerate(zip(steps, xs, values)):
        interval = f" [{_value(band[i][0])}, {_value(band[i][1])}]" if band else ""
        shapes.append(
            _shape(
                "circle",
                title=f"step {step.step}: {what} {int(value) if counts else _value(value)}{interval}",
                class_="point",
                cx=x,
                cy=y(value),
                r=3.5,
                data_step=step.step,
                data_value=value,
            )
        )
    return Figure(figure_id, label, _WIDTH, _HEIGHT, tuple(shapes))


def _reward_figure(steps: Sequence[StepData]) -> Figure:
    bounds = [(s.reward_low, s.reward_high) for s in steps]
    band = [(low, high) for low, high in bounds if low is not None and high is not None]
    return _line_figure(
        "plot-reward",
        "Mean reward per step",
        steps,
        [s.reward_mean for s in steps],
        "mean reward",
        band if len(band) == len(steps) else None,
        counts=False,
    )


def _library_figure(steps: Sequence[StepData]) -> Figure:
    return _line_figure("plot-library", "Library size per step", steps, [float(s.library_size) for s in steps], "experiences", None, counts=True)


def _bar_figure(
    figure_id: str,
    label: str,
    steps: Sequence[StepData],
    series: Sequence[tuple[str, str, Sequence[int]]],
    *,
    stacked: bool,
) -> Figure:
    totals = [sum(column) for column in zip(*(values for _, _, values in series))]
    ticks, y = _y_axis(totals if stacked else [v for _, _, values in series for v in values], include_zero=True, integer=True)
    shapes, xs = _step_frame(steps, ticks, y)
    band = (_WIDTH - _LEFT - _RIGHT) / len(steps)
    width = band * 0.7 / (1 if stacked else len(series))
    for i, (step, centre) in enumerate(zip(steps, xs)):
        base = 0
        for j, (css, what, values) in enumerate(series):
            value = values[i]
            bottom, top = (base, base + value) if stacked else (0, value)
            x = centre - band * 0.35 + (0 if stacked else j * width)
            shapes.append(
                _shape(
                    "rect",
                    title=f"step {step.step}: {value} {what}",
                    class_=f"bar {css}",
                    x=x,
                    y=y(top),
                    width=width,
                    height=y(bottom) - y(top),
                    data_step=step.step,
                    data_value=value,
                )
            )
            base = top
    return Figure(figure_id, label, _WIDTH, _HEIGHT, tuple(shapes), tuple((css, what) for css, what, _ in series))


@dataclass(frozen=True, slots=True)
class _ForestRow:
    label: str
    estimate: float
    low: float
    high: float
    title: str


_LABEL_WIDTH = 250
_ROW_HEIGHT = 32
_MAX_LABEL = 26


def _short(text: str) -> str:
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"


def _horizontal_frame(rows: int, ticks: Sequence[float], *, zero_line: bool, unit: str = "") -> tuple[list[Shape], _Scale, int]:
    """Vertical grid and value labels of a plot with one horizontal row per item."""
    height = _TOP + _ROW_HEIGHT * rows + _BOTTOM
    x = _Scale(ticks[0], ticks[-1], float(_LABEL_WIDTH), float(_WIDTH - _RIGHT))
    axis_y = float(height - _BOTTOM)
    shapes = [
        shape
        for tick in ticks
        for shape in (
            _shape("line", class_="grid", x1=x(tick), x2=x(tick), y1=float(_TOP), y2=axis_y),
            _shape("text", unit + _number(tick), class_="tick x", x=x(tick), y=axis_y + 20),
        )
    ]
    if zero_line:
        shapes.append(_shape("line", class_="zero", x1=x(0.0), x2=x(0.0), y1=float(_TOP), y2=axis_y))
    return shapes, x, height


def _forest_figure(figure_id: str, label: str, rows: Sequence[_ForestRow], *, zero_line: bool) -> Figure:
    extent = [v for row in rows for v in (row.low, row.high, row.estimate)] + ([0.0] if zero_line else [])
    shapes, x, height = _horizontal_frame(len(rows), _nice_ticks(min(extent), max(extent)), zero_line=zero_line)
    for i, row in enumerate(rows):
        centre = _TOP + _ROW_HEIGHT * (i + 0.5)
        shapes.extend(
            (
                _shape("text", _short(row.label), title=row.label, class_="row-label", x=float(_LABEL_WIDTH - 10), y=centre + 4),
                _shape("line", title=row.title, class_="ci", x1=x(row.low), x2=x(row.high), y1=centre, y2=centre, data_low=row.low, data_high=row.high),
                _shape("line", class_="ci-cap", x1=x(row.low), x2=x(row.low), y1=centre - 5, y2=centre + 5),
                _shape("line", class_="ci-cap", x1=x(row.high), x2=x(row.high), y1=centre - 5, y2=centre + 5),
                _shape("circle", title=row.title, class_="estimate", cx=x(row.estimate), cy=centre, r=4.5, data_value=row.estimate),
            )
        )
    return Figure(figure_id, label, _WIDTH, height, tuple(shapes))


def _cost_figure(costs: Sequence[StageCost]) -> Figure:
    shapes, x, height = _horizontal_frame(len(costs), _nice_ticks(0.0, max(c.usd for c in costs)), zero_line=False, unit="$")
    for i, cost in enumerate(costs):
        top = _TOP + _ROW_HEIGHT * i + 6
        shapes.extend(
            (
                _shape("text", _short(cost.stage), title=cost.stage, class_="row-label", x=float(_LABEL_WIDTH - 10), y=top + 13),
                _shape(
                    "rect",
                    title=f"{cost.stage}: ${cost.usd:.4f} in {cost.calls} calls",
                    class_="bar cost",
                    x=x(0.0),
                    y=float(top),
                    width=x(cost.usd) - x(0.0),
                    height=float(_ROW_HEIGHT - 12),
                    data_stage=cost.stage,
                    data_value=cost.usd,
                ),
            )
        )
    return Figure("plot-cost", "Cost by stage (USD)", _WIDTH, height, tuple(shapes))


def _is_reward_metric(name: str) -> bool:
    return name == "mean" or name.startswith(("mean@", "pass@"))


def _metric_forests(evaluation: EvaluationData) -> list[Figure]:
    names = list(dict.fromkeys(m.name for lib in evaluation.libraries for m in lib.metrics if _is_reward_metric(m.name)))
    figures = []
    for index, name in enumerate(names):
        rows = [
            _ForestRow(lib.name, m.estimate, m.low, m.high, f"{lib.name}: {name} {_value(m.estimate)} [{_value(m.low)}, {_value(m.high)}]")
            for lib in evaluation.libraries
            for m in lib.metrics
            if m.name == name
        ]
        figures.append(_forest_figure(f"plot-forest-{index}", name, rows, zero_line=False))
    return figures


def _comparison_forest(evaluation: EvaluationData) -> Figure:
    rows = [
        _ForestRow(
            f"{c.candidate} − {c.baseline} ({c.metric})",
            c.difference,
            c.low,
            c.high,
            f"{c.candidate} − {c.baseline} on {c.metric}: {_signed(c.difference)} [{_signed(c.low)}, {_signed(c.high)}], p = {_p_value(c.p_value)}",
        )
        for c in evaluation.comparisons
    ]
    return _forest_figure("plot-difference", "Paired differences", rows, zero_line=True)


def _ablation_forest(ablation: AblationData) -> Figure:
    rows = [
        _ForestRow(
            f"{item.id} ({item.kind})",
            item.estimate,
            item.low,
            item.high,
            f"{item.id}: utility {_signed(item.estimate)} [{_signed(item.low)}, {_signed(item.high)}], {item.verdict}: {item.text}",
        )
        for item in ablation.items
    ]
    return _forest_figure("plot-ablation", "Utility of each item", rows, zero_line=True)


def _signed(value: float) -> str:
    return ("+" if value > 0 else "") + _value(value)


def _p_value(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _thousands(count: int) -> str:
    return f"{count:,}"


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def _comparison_sentence(c: Comparison, confidence: float) -> str:
    level = _percent(confidence)
    counts = f"better on {c.better}, worse on {c.worse}, tied on {c.ties} of {c.better + c.worse + c.ties} questions"
    head = (
        f"{c.candidate} − {c.baseline} on {c.metric}: {_signed(c.difference)} "
        f"({level} interval {_signed(c.low)} to {_signed(c.high)}; p = {_p_value(c.p_value)}; {counts})."
    )
    questions = c.better + c.worse + c.ties
    small = f" The sample is small ({questions} questions, under {SMALL_SAMPLE}): a few questions decide it." if questions < SMALL_SAMPLE else ""
    if c.includes_zero:
        return f"{head} The interval includes zero: the difference is not distinguishable from noise at this level.{small}"
    direction = "better" if c.difference > 0 else "worse"
    return f"{head} The interval excludes zero: {c.candidate} is {direction} than {c.baseline} beyond noise at the {level} level.{small}"


def _pooled_sentence(pooled: PooledGain, confidence: float) -> str:
    gains = ", ".join(_signed(g) for g in pooled.gains)
    return (
        f"{pooled.learn} ({len(pooled.gains)} repeats) − {pooled.baseline} on {pooled.metric}: {_signed(pooled.difference)} "
        f"({_percent(confidence)} interval over repeats and questions {_signed(pooled.low)} to {_signed(pooled.high)}; "
        f"the repeats' gains {gains}). {pooled.beat} of {len(pooled.gains)} repeats scored higher than {pooled.baseline}, "
        f"{pooled.beat_beyond_noise} beyond noise."
    )


def _reward(value: float | None) -> str:
    """A reward as shown beside an answer: "failed" when it has none."""
    return "failed" if value is None else _value(value)


def _templates() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(value=_value, signed=_signed, p_value=_p_value, percent=_percent, thousands=_thousands, reward=_reward)
    return env


def render_report(data: ReportData) -> str:
    """Render `data` as one self-contained HTML document (no script, no external resource)."""
    steps = data.steps
    evaluation = data.evaluation
    step_figures: list[Figure] = []
    if steps:
        step_figures = [
            _reward_figure(steps),
            _bar_figure(
                "plot-groups",
                "Groups kept and skipped per step",
                steps,
                [("kept", "groups kept", [s.groups_kept for s in steps]), ("skipped", "groups skipped", [s.groups_skipped for s in steps])],
                stacked=False,
            ),
            _bar_figure(
                "plot-ops",
                "Operations applied and rejected per step",
                steps,
                [("applied", "ops applied", [s.ops_applied for s in steps]), ("rejected", "ops rejected", [s.ops_rejected for s in steps])],
                stacked=True,
            ),
            _library_figure(steps),
        ]
    template = _templates().from_string(resource_path("report/report.html.j2").read_text(encoding="utf-8"))
    return template.render(
        data=data,
        step_figures=step_figures,
        cost_figure=_cost_figure(data.costs) if data.costs else None,
        total_usd=sum(c.usd for c in data.costs),
        total_calls=sum(c.calls for c in data.costs),
        changed_steps=[s for s in steps if s.changes],
        metric_names=list(dict.fromkeys(m.name for lib in evaluation.libraries for m in lib.metrics)) if evaluation else [],
        failures_shown=bool(evaluation and any(lib.failed for lib in evaluation.libraries)),
        metric_forests=_metric_forests(evaluation) if evaluation else [],
        difference_figure=_comparison_forest(evaluation) if evaluation and evaluation.comparisons else None,
        sentences=[_comparison_sentence(c, evaluation.confidence) for c in evaluation.comparisons] if evaluation else [],
        pooled_sentences=[_pooled_sentence(p, evaluation.confidence) for p in evaluation.pooled] if evaluation else [],
        ablation_figure=_ablation_forest(data.ablation) if data.ablation and data.ablation.items else None,
        failing=sum(q.failing for q in data.questions),
        changed=sum(q.changed for q in data.questions),
    )
