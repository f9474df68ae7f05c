"""Write dates_train.csv (40 questions) and dates_heldout.csv (30 more).

Each question states a date in words and asks for it "in standard numeric form";
the reward expects ISO 8601 (`YYYY-MM-DD`), a convention the prompt only hints at,
which is the kind of lesson group contrast can discover. Run from anywhere:

    python programs/data/make_dates.py
"""

from __future__ import annotations

import csv
import datetime
import random
from pathlib import Path

EVENTS = (
    "The museum reopens",
    "The conference starts",
    "The contract ends",
    "The library closes for repairs",
    "The new bridge opens",
    "The festival begins",
    "The report is due",
    "The ship departs",
)


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _in_words(date: datetime.date, style: int) -> str:
    month = date.strftime("%B")
    if style == 0:
        return f"{month} {date.day}, {date.year}"
    if style == 1:
        return f"the {_ordinal(date.day)} of {month} {date.year}"
    return f"{date.day} {month} {date.year}"


def questions(count: int, seed: int, exclude: set[str]) -> list[dict[str, str]]:
    """`count` distinct questions, none in `exclude`."""
    r = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen = set(exclude)
    while len(rows) < count:
        date = datetime.date(1990, 1, 1) + datetime.timedelta(days=r.randint(0, 365 * 40))
        text = f"{r.choice(EVENTS)} on {_in_words(date, len(rows) % 3)}. Write this date in standard numeric form."
        if text not in seen:
            seen.add(text)
            rows.append({"question": text, "iso_date": date.isoformat()})
    return rows


def write(path: Path, rows: list[dict[str, str]], prefix: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["id", "question", "iso_date"])
        writer.writeheader()
        for index, row in enumerate(rows, start=1):
            writer.writerow({"id": f"{prefix}{index:03d}", **row})


def main() -> None:
    here = Path(__file__).resolve().parent
    train = questions(40, seed=21, exclude=set())
    heldout = questions(30, seed=22, exclude={row["question"] for row in train})
    write(here / "dates_train.csv", train, "train-")
    write(here / "dates_heldout.csv", heldout, "heldout-")


if __name__ == "__main__":
    main()
