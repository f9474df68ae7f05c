"""The questions of a dataset as the plan declares them: fields mapped, limited, shuffled."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo_dsl.core.datasets import read_rows, row_id
from grpo_dsl.plan.views import DatasetView

__all__ = ["Question", "load_questions", "epoch_order", "stable_seed"]


@dataclass(frozen=True, slots=True)
class Question:
    """One dataset row: its stable id and its fields under the program's names."""

    id: str
    fields: Mapping[str, Any]


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from `parts`, the same on every machine and Python."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def load_questions(dataset: DatasetView, base_dir: Path, seed: int = 0) -> list[Question]:
    """Read a plan dataset: map `fields`, apply the seeded `shuffle` and `limit`."""
    rows = read_rows(base_dir / dataset.source)
    mapping = dataset.fields
    mapped_columns = set(mapping.values())
    questions = []
    for row in rows:
        fields = {k: v for k, v in row.items() if k not in mapped_columns}
        fields.update({name: row.get(column) for name, column in mapping.items()})
        questions.append(Question(id=row_id(row), fields=fields))
    if dataset.shuffle:
        random.Random(stable_seed("dataset", dataset.source, seed)).shuffle(questions)
    return questions[: dataset.limit] if dataset.limit else questions


def epoch_order(questions: Sequence[Question], seed: int, epoch: int) -> list[Question]:
    """The order in which an epoch visits the questions: a shuffle seeded by (seed, epoch)."""
    order = list(questions)
    random.Random(stable_seed("epoch", seed, epoch)).shuffle(order)
    return order
