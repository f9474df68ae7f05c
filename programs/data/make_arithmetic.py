"""Write arithmetic_train.jsonl (40 questions) and arithmetic_heldout.jsonl (20 more).

Two-operand sums, differences and products with short integer answers, sized for
the embedded local model. Run from anywhere:

    python programs/data/make_arithmetic.py
"""

from __future__ import annotations

import random
from pathlib import Path

from rows import write_jsonl

OPERATIONS = (("+", lambda a, b: a + b), ("-", lambda a, b: a - b), ("*", lambda a, b: a * b))


def questions(count: int, seed: int, exclude: set[str]) -> list[dict[str, str]]:
    """`count` distinct questions, none in `exclude`."""
    r = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen = set(exclude)
    while len(rows) < count:
        symbol, apply = OPERATIONS[len(rows) % len(OPERATIONS)]
        a, b = (r.randint(11, 99), r.randint(11, 99)) if symbol != "*" else (r.randint(3, 29), r.randint(3, 19))
        text = f"What is {a} {symbol} {b}?"
        if text not in seen:
            seen.add(text)
            rows.append({"question": text, "answer": str(apply(a, b))})
    return rows


def main() -> None:
    here = Path(__file__).resolve().parent
    train = questions(40, seed=11, exclude=set())
    heldout = questions(20, seed=12, exclude={row["question"] for row in train})
    write_jsonl(here / "arithmetic_train.jsonl", train, "train-")
    write_jsonl(here / "arithmetic_heldout.jsonl", heldout, "heldout-")


if __name__ == "__main__":
    main()
