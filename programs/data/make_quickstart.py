"""Write the quick start's data: quickstart_train.jsonl, quickstart_validate.jsonl, quickstart_heldout.jsonl.

Each row holds a date written in words (`date`, in one of four styles) and the same
date as YYYY-MM-DD (`answer`). The quick start asks for the date "in standard
numeric form" and rewards only the ISO form: a convention the prompt hints at and
group contrast can discover. The three files use different seeds and share no date.
Run from anywhere:

    python programs/data/make_quickstart.py
"""

from __future__ import annotations

import datetime
import json
import random
from pathlib import Path

STYLES = ("{month} {day}, {year}", "{day} {month} {year}", "the {ordinal} of {month}, {year}", "{month} {ordinal}, {year}")
FIRST_DAY = datetime.date(1950, 1, 1).toordinal()
LAST_DAY = datetime.date(2049, 12, 31).toordinal()
SPLITS = (("train", 40, 101), ("validate", 10, 202), ("heldout", 30, 303))
"""(name, rows, seed) of each file."""


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def rows(count: int, seed: int, taken: set[datetime.date]) -> list[dict[str, str]]:
    """`count` rows of distinct dates not in `taken` (which grows with them), styles in turn."""
    rng = random.Random(seed)
    result: list[dict[str, str]] = []
    while len(result) < count:
        date = datetime.date.fromordinal(rng.randint(FIRST_DAY, LAST_DAY))
        if date in taken:
            continue
        taken.add(date)
        style = STYLES[len(result) % len(STYLES)]
        words = style.format(month=date.strftime("%B"), day=date.day, year=date.year, ordinal=_ordinal(date.day))
        result.append({"id": f"{seed}-{len(result) + 1:03d}", "date": words, "answer": date.isoformat()})
    return result


def write_splits(folder: Path) -> list[Path]:
    """Write the three files into `folder` and return their paths."""
    taken: set[datetime.date] = set()
    paths = []
    for name, count, seed in SPLITS:
        path = folder / f"quickstart_{name}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows(count, seed, taken)), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    write_splits(Path(__file__).resolve().parent)
