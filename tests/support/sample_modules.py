"""Prompt modules with lessons and demos in every placement, for the package and export tests."""

from __future__ import annotations

from pathlib import Path

from grpo_dsl.library import ApplyContext, Example, Library, Operation, PolicySpec, apply
from grpo_dsl.modules import ModelRef, ModuleSpec, emit_module

LESSONS = (
    'Write every date as YYYY-MM-DD, e.g. "2024-01-31".',
    "Pad the month and the day with zeros; {{ braces }} and {% tags %} are text here.",
)
DEMO_QUESTIONS = (("d1", {"day": 3, "month": 4, "style": "ISO"}, "2024-04-03"), ("d2", {"day": 31, "month": 12, "style": "ISO"}, "2024-12-31"))
EVALUATION = {
    "library": "dates@1.0.1",
    "run": "../runs/eval/1",
    "reward": "correct",
    "confidence": 0.95,
    "questions": 30,
    "samples": 4,
    "metrics": {"mean": {"estimate": 0.9, "low": 0.8, "high": 0.97}},
    "baseline": None,
    "comparisons": [],
}
"""An evaluation record (`evaluation_record`'s form) to record with a sample version."""
PLACEMENTS = tuple((lessons, demos) for lessons in ("system", "user") for demos in ("turns", "system"))
"""(lesson placement, demo placement) of every sample with demos."""


def sample_library(*, lessons: bool = True, demos: bool = True) -> Library:
    """A library with two lessons and two demos (either can be left out), and a second step that edits a lesson."""
    operations = [Operation.add(text, "it worked") for text in LESSONS] if lessons else []
    operations += [Operation.add_demo(Example(q, fields, answer, 1.0)) for q, fields, answer in DEMO_QUESTIONS] if demos else []
    library, report = apply(Library.empty(), operations, PolicySpec(demos=2), ApplyContext(1, ("1:q1",)))
    assert not report.rejected, report.rejected
    return library


SYSTEM = "You write dates in the {{ style }} style."


def sample_spec(name: str, lessons: str, demos: str, *, system: str | None = SYSTEM) -> ModuleSpec:
    """A date task whose lessons go in `lessons` (system, user, none) and demos in `demos` (turns, system)."""
    return ModuleSpec(
        name=name,
        system=system,
        prompt="What is day {{ day }} of month {{ month }}?\nAnswer with the date only.",
        placement=lessons,
        demos_placement="system" if demos == "system" else "turns",
        model=ModelRef("world", "world-model"),
        learner=ModelRef("teacher", "teacher-model"),
        temperature=0.7,
        formats=("json", "jinja", "markdown", "prompty"),
    )


def emit_sample(
    folder: Path, lessons: str, demos: str, *, with_demos: bool = True, versions: int = 1, system: str | None = SYSTEM
) -> Path:
    """Emit a sample module into `folder`/dates-`lessons`-`demos`; with `versions=2`, a
    second version edits the first lesson and drops a demo. Returns the module folder."""
    name = f"dates-{lessons}-{demos}" + ("" if with_demos else "-nodemos") + ("" if system else "-nosystem")
    library = sample_library(demos=with_demos)
    emit_module(library, sample_spec(name, lessons, demos, system=system), name, base_dir=folder)
    if versions > 1:
        operations = [Operation.modify("E1", "Write every date as YYYY-MM-DD, with dashes.", "clearer")]
        if with_demos:
            operations.append(Operation.delete_demo("D2", "one is enough"))
        library, report = apply(library, operations, PolicySpec(demos=2), ApplyContext(2, ("2:q1",)))
        assert not report.rejected, report.rejected
        emit_module(library, sample_spec(name, lessons, demos, system=system), name, base_dir=folder)
    return folder / name
