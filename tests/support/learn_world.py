"""A learning program over the scripted date world of `worlds.py`, written into a folder."""

from __future__ import annotations

import json
from pathlib import Path

PROGRAM = """grpo 1

model world {
  base_url    = "BASE_URL"
  api_key     = "test-key"
  name        = "world"
  concurrency = 16
  max_retries = 8
  price { input = 1.0  output = 2.0 }
MODEL_EXTRA}

dataset dates {
  source = "dates.jsonl"
}

task write_date {
  model       = world
  system      = "You write dates."
  prompt      = "What is day {{ day }} of month {{ month }} of {{ year }}, as a date?"
  experiences = system
  max_tokens  = 20
}

reward correct = exact(strip(output), answer)

learn date_lessons {
  task       = write_date
  data       = dates
  reward     = correct
  group_size = GROUP_SIZE
  batch_size = BATCH_SIZE
  epochs     = EPOCHS
  seed       = 3POLICY
}
"""

DEMO_POLICY = """
policy with_demos {
  demos = DEMOS
}
"""


def write_world(
    folder: Path,
    base_url: str,
    *,
    questions: int = 12,
    group_size: int = 4,
    batch_size: int = 4,
    epochs: int = 1,
    model_extra: str = "",
    demos: int = 0,
) -> Path:
    """Write `world.grpo` and `dates.jsonl` into `folder`; return the program's path.

    `model_extra` is added to the model block (e.g. `batch = true`). With `demos`, the
    learn's policy holds that many demonstrations."""
    rows = []
    for i in range(questions):
        day, month, year = 1 + (7 * i) % 28, 1 + (5 * i) % 12, 1990 + 3 * i
        rows.append({"id": f"d{i}", "day": day, "month": month, "year": year, "answer": f"{year:04d}-{month:02d}-{day:02d}"})
    (folder / "dates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    program = (
        PROGRAM.replace("BASE_URL", base_url)
        .replace("GROUP_SIZE", str(group_size))
        .replace("BATCH_SIZE", str(batch_size))
        .replace("EPOCHS", str(epochs))
        .replace("MODEL_EXTRA", f"  {model_extra}\n" if model_extra else "")
        .replace("POLICY", "\n  policy     = with_demos" if demos else "")
    )
    if demos:
        program += DEMO_POLICY.replace("DEMOS", str(demos))
    path = folder / "world.grpo"
    path.write_text(program)
    return path
