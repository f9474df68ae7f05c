"""Demonstrations: worked examples the library holds beside its lessons.

A small model learns a format from two examples far better than from a sentence
(docs/local-model.md). The group comparison already marks the winning answers, so a
demonstration is a winning rollout (or, with ground truth, a reference answer) of a
training question: the question's fields, the answer, its reward and where it came
from. A `Demo` has a stable id (`D1`, `D2`, ... never reused) and a provenance like
an `Experience`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

from grpo_dsl.library.provenance import PROVENANCE_JSON, ProvenanceEntry

__all__ = [
    "DEMO_ID_PATTERN",
    "DEMO_JSON",
    "DEMO_SOURCES",
    "Demo",
    "DemoSource",
    "Example",
    "demo_number",
    "text_shape",
]

DemoSource: TypeAlias = Literal["rollout", "reference"]
DEMO_SOURCES: tuple[DemoSource, ...] = get_args(DemoSource)
DEMO_ID_PATTERN = "^D[1-9][0-9]*$"


def demo_number(demo_id: str) -> int | None:
    """The number of a demo id such as `D3` (3), or None when it is not one."""
    return int(demo_id[1:]) if re.fullmatch(DEMO_ID_PATTERN, demo_id) else None


def text_shape(text: str) -> str:
    """The shape of a text, for preferring demos that differ: each run of digits becomes
    9, each run of letters a, each run of space one space (`1984-12-11` and `2033-10-26`
    share a shape; `Dec 11, 1984` and `the 3rd of May, 2020` do not).

    >>> text_shape("Dec 11, 1984"), text_shape("the 3rd of May, 2020")
    ('a 9, 9', 'a 9a a a, 9')
    """
    shape = re.sub(r"[^\W\d_]+", "a", re.sub(r"\d+", "9", text))
    return " ".join(shape.split())


@dataclass(frozen=True, slots=True)
class Example:
    """What a demonstration shows: a training question's prompt fields and an answer to it.

    `fields` are the values the task's templates read; `question` is the question's
    id in its dataset; `reward` is the answer's reward; `source` says whether the
    answer is the model's own winning rollout or the dataset's reference answer.
    """

    question: str
    fields: Mapping[str, Any]
    answer: str
    reward: float
    source: DemoSource = "rollout"

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "fields": dict(self.fields),
            "answer": self.answer,
            "reward": self.reward,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Example:
        source = data.get("source", "rollout")
        if source not in DEMO_SOURCES:
            raise ValueError(f"a demo's `source` must be one of {', '.join(DEMO_SOURCES)}, not {source!r}")
        if not isinstance(data.get("fields"), Mapping) or not isinstance(data.get("answer"), str):
            raise ValueError(f"malformed demo example {data!r}")
        return cls(str(data["question"]), dict(data["fields"]), data["answer"], float(data["reward"]), source)

    def shape(self) -> tuple[str, str]:
        """The shape of the question (its prompt fields, in name order) and of the answer."""
        question = " | ".join(str(self.fields[name]) for name in sorted(self.fields))
        return text_shape(question), text_shape(self.answer)

    def key(self) -> str:
        """What a prompt sees of the example, as canonical text (for hashes and diffs)."""
        return json.dumps({"fields": dict(self.fields), "answer": self.answer}, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Demo:
    """A demonstration in the library: an `Example` with its id and provenance."""

    id: str
    example: Example
    provenance: tuple[ProvenanceEntry, ...]
    created_step: int

    def listing(self) -> str:
        """One line for listings and diffs: the answer and the question it answers."""
        return f"{self.example.answer}  (demo for question {self.example.question})"

    def prompt_entry(self) -> dict[str, Any]:
        """`{"id", "fields", "answer"}`, the form message rendering receives."""
        return {"id": self.id, "fields": dict(self.example.fields), "answer": self.example.answer}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.example.to_json(),
            "created_step": self.created_step,
            "provenance": [p.to_json() for p in self.provenance],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Demo:
        return cls(
            id=data["id"],
            example=Example.from_json(data),
            provenance=tuple(ProvenanceEntry.from_json(p) for p in data["provenance"]),
            created_step=data["created_step"],
        )


DEMO_JSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": DEMO_ID_PATTERN},
        "question": {"type": "string"},
        "fields": {"type": "object"},
        "answer": {"type": "string"},
        "reward": {"type": "number"},
        "source": {"enum": list(DEMO_SOURCES)},
        "created_step": {"type": "integer", "minimum": 0},
        "provenance": {"type": "array", "items": PROVENANCE_JSON},
    },
    "required": ["id", "question", "fields", "answer", "reward", "source", "created_step", "provenance"],
    "additionalProperties": False,
}
