"""The scripted date world with held-out questions and an `evaluate` block, learned once."""

from __future__ import annotations

import json
from pathlib import Path

from grpo_dsl.learning.run import RunResult, start_run
from grpo_dsl.library import Library
from grpo_dsl.modules import ModelRef, ModuleSpec, emit_module
from grpo_dsl.plan import load_plan
from support.endpoint import Endpoint
from support.learn_world import write_world

HELD_OUT = 12


EVALUATE = """
dataset held {
  source = "held.jsonl"
}

evaluate date_eval {
  task    = write_date
  data    = held
  reward  = correct
  samples = 4
  metrics = [mean, pass@1, pass@4]
  compare = COMPARE
}

emit date_prompts {
  library = date_lessons
  path    = "prompts/dates"
}
"""


def write_held_out(folder: Path, name: str = "held.jsonl", questions: int = HELD_OUT) -> None:
    """Dates none of the training questions asks about."""
    rows = []
    for i in range(questions):
        day, month, year = 2 + (11 * i) % 27, 1 + (7 * i) % 12, 2001 + 2 * i
        rows.append({"id": f"h{i}", "day": day, "month": month, "year": year, "answer": f"{year:04d}-{month:02d}-{day:02d}"})
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_program(folder: Path, endpoint: Endpoint, compare: str = "[none, date_lessons]", questions: int = HELD_OUT) -> Path:
    program = write_world(folder, endpoint.base_url)
    program.write_text(program.read_text() + EVALUATE.replace("COMPARE", compare))
    write_held_out(folder, questions=questions)
    return program


def learn(folder: Path, program: Path, endpoint: Endpoint, script: str = "support.worlds:date_world") -> RunResult:
    endpoint.configure(script=script)
    result = start_run(load_plan(program), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
    assert result.status == "completed"
    return result


def date_module(folder: Path, library: Library, name: str) -> str:
    """Emit `library` as a module of the date task at `prompts/<name>` in `folder`; return its reference."""
    spec = ModuleSpec(
        name=name,
        system="You write dates.",
        prompt="What is day {{ day }} of month {{ month }} of {{ year }}, as a date?",
        placement="system",
        model=ModelRef("world", "world"),
    )
    return f"prompts/{name}@{emit_module(library, spec, f'prompts/{name}', base_dir=folder).version}"
