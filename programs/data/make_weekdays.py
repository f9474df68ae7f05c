"""Write weekdays_train.jsonl (24 questions) and weekdays_heldout.jsonl (16 more).

Each question asks the day of the week of a date written in words, which a small
model rarely works out by itself; the agent program's `weekday` tool knows it, if the
model passes the date in the form the tool expects. Run from anywhere:

    python programs/data/make_weekdays.py
"""

from __future__ import annotations

import datetime
import random
from pathlib import Path

from rows import write_jsonl

FOLDER = Path(__file__).resolve().parent


def _rows(rng: random.Random, count: int, seen: set[datetime.date]) -> list[dict[str, str]]:
    rows = []
    while len(rows) < count:
        date = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(365 * 70))
        if date in seen:
            continue
        seen.add(date)
        rows.append({"question": f"On what day of the week was {date.strftime('%B')} {date.day}, {date.year}?", "answer": date.strftime("%A")})
    return rows


def write_splits(folder: Path = FOLDER) -> list[Path]:
    """Write both splits into `folder`; return their paths."""
    rng, seen = random.Random(16), set()
    paths = []
    for split, count in (("train", 24), ("heldout", 16)):
        path = folder / f"weekdays_{split}.jsonl"
        write_jsonl(path, _rows(rng, count, seen), f"w{split[0]}")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_splits():
        print(written)
