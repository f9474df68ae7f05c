"""The library value: experiences and demos with stable ids and provenance, retired ones kept in history."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from grpo_dsl.library.demos import DEMO_JSON, Demo, demo_number
from grpo_dsl.library.operations import (
    _ID_PATTERN,
    id_number,
)
from grpo_dsl.library.provenance import PROVENANCE_JSON, ProvenanceEntry

__all__ = [
    "Experience",
    "LIBRARY_SCHEMA",
    "Library",
]




@dataclass(frozen=True, slots=True)
class Experience:
    """One natural-language experience with a stable id (`E1`, `E2`, ... never reused) and its provenance.

    `uses` counts the rollout summaries that cited the experience by id (see
    `Library.record_uses`); `evict_least_used` evicts the experience with the fewest.
    """

    id: str
    text: str
    provenance: tuple[ProvenanceEntry, ...]
    created_step: int
    uses: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "created_step": self.created_step,
            "uses": self.uses,
            "provenance": [p.to_json() for p in self.provenance],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Experience:
        return cls(
            id=data["id"],
            text=data["text"],
            provenance=tuple(ProvenanceEntry.from_json(p) for p in data["provenance"]),
            created_step=data["created_step"],
            uses=data["uses"],
        )


_EXPERIENCE_JSON = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": _ID_PATTERN},
        "text": {"type": "string"},
        "created_step": {"type": "integer", "minimum": 0},
        "uses": {"type": "integer", "minimum": 0},
        "provenance": {"type": "array", "items": PROVENANCE_JSON},
    },
    "required": ["id", "text", "created_step", "uses", "provenance"],
    "additionalProperties": False,
}
LIBRARY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "grpo-library/1",
    "type": "object",
    "properties": {
        "schema": {"const": "grpo-library/1"},
        "version": {"type": "integer", "minimum": 0},
        "next_id": {"type": "integer", "minimum": 1},
        "content_hash": {"type": "string"},
        "experiences": {"type": "array", "items": _EXPERIENCE_JSON},
        "history": {"type": "array", "items": _EXPERIENCE_JSON},
        "demos": {"type": "array", "items": DEMO_JSON},
        "demo_history": {"type": "array", "items": DEMO_JSON},
        "next_demo": {"type": "integer", "minimum": 1},
    },
    "required": ["schema", "version", "next_id", "experiences", "history"],
    "additionalProperties": False,
}
_LIBRARY_VALIDATOR = Draft202012Validator(LIBRARY_SCHEMA)


@dataclass(frozen=True, slots=True)
class Library:
    """A version of the experience library.

    `experiences` are the live ones, in prompt order; `history` holds, oldest first,
    every experience that was deleted or evicted (with its last provenance entry
    saying so) and every text a `modify` replaced (the experience as it was).
    `next_id` is the number of the next id to hand out: ids are never reused.
    `demos` are the live demonstrations in prompt order, `demo_history` the retired
    ones (and every version a `replace_demo` replaced), `next_demo` the number of the
    next demo id. A library without demos reads and writes as it did before demos.
    """

    version: int = 0
    experiences: tuple[Experience, ...] = ()
    history: tuple[Experience, ...] = ()
    next_id: int = 1
    demos: tuple[Demo, ...] = ()
    demo_history: tuple[Demo, ...] = ()
    next_demo: int = 1

    @classmethod
    def empty(cls) -> Library:
        """The library a learn starts from when it has no `init`."""
        return cls()

    def get(self, experience_id: str) -> Experience | None:
        """The live experience with this id, or None."""
        return next((e for e in self.experiences if e.id == experience_id), None)

    def demo(self, demo_id: str) -> Demo | None:
        """The live demo with this id, or None."""
        return next((d for d in self.demos if d.id == demo_id), None)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.experiences)

    def __len__(self) -> int:
        return len(self.experiences)

    def render(self) -> str:
        """The numbered lines shown to models: `[E1] text`, one per experience."""
        return "\n".join(f"[{e.id}] {e.text}" for e in self.experiences)

    def prompt_entries(self) -> tuple[dict[str, str], ...]:
        """`{"id", "text"}` for each experience, the form prompt templates receive."""
        return tuple({"id": e.id, "text": e.text} for e in self.experiences)

    def listed(self) -> tuple[dict[str, str], ...]:
        """Every live experience and demo as `{"id", "text"}`, for diffs and listings; a
        demo's text is its answer and the question it answers."""
        return self.prompt_entries() + tuple({"id": d.id, "text": d.listing()} for d in self.demos)

    def demo_entries(self) -> tuple[dict[str, Any], ...]:
        """`{"id", "fields", "answer"}` for each demo, the form message rendering receives."""
        return tuple(d.prompt_entry() for d in self.demos)

    def content_hash(self) -> str:
        """sha256 of what a prompt sees (the ids and texts, and the demos, in order);
        versions and statistics are left out. Without demos it is the hash of the lessons alone."""
        seen: object = self.prompt_entries()
        if self.demos:
            seen = {"experiences": seen, "demos": self.demo_entries()}
        canonical = json.dumps(seen, ensure_ascii=False, separators=(",", ":"), sort_keys=bool(self.demos))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def record_uses(self, experience_ids: Iterable[str]) -> Library:
        """Count one use for each occurrence of a live id in `experience_ids`; unknown ids are ignored.

        The runtime calls it with the ids each rollout summary cites (`cited_ids`),
        so `uses` counts the summaries that say the experience was followed. Uses
        are statistics: they do not change the version or the content hash.
        """
        counts: dict[str, int] = {}
        for experience_id in experience_ids:
            counts[experience_id] = counts.get(experience_id, 0) + 1
        if not any(e.id in counts for e in self.experiences):
            return self
        updated = tuple(replace(e, uses=e.uses + counts.get(e.id, 0)) for e in self.experiences)
        return replace(self, experiences=updated)

    def to_json(self) -> dict[str, Any]:
        """The library as a JSON document (schema `grpo-library/1`); `from_json` reads it back equal."""
        return {
            "schema": "grpo-library/1",
            "version": self.version,
            "next_id": self.next_id,
            "content_hash": self.content_hash(),
            "experiences": [e.to_json() for e in self.experiences],
            "history": [e.to_json() for e in self.history],
            **(self._demos_json() if self.demos or self.demo_history or self.next_demo != 1 else {}),
        }

    def _demos_json(self) -> dict[str, Any]:
        return {
            "demos": [d.to_json() for d in self.demos],
            "demo_history": [d.to_json() for d in self.demo_history],
            "next_demo": self.next_demo,
        }

    @classmethod
    def from_json(cls, data: object) -> Library:
        """Read a library written by `to_json`; raises ValueError saying what is wrong with it."""
        error = best_match(_LIBRARY_VALIDATOR.iter_errors(data))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the document"
            raise ValueError(f"not a valid library: at {where}: {error.message}")
        document = cast(Mapping[str, Any], data)
        library = cls(
            version=document["version"],
            experiences=tuple(Experience.from_json(e) for e in document["experiences"]),
            history=tuple(Experience.from_json(e) for e in document["history"]),
            next_id=document["next_id"],
            demos=tuple(Demo.from_json(d) for d in document.get("demos", ())),
            demo_history=tuple(Demo.from_json(d) for d in document.get("demo_history", ())),
            next_demo=document.get("next_demo", 1),
        )
        ids = library.ids + tuple(d.id for d in library.demos)
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"not a valid library: the id {duplicated[0]} is used by two items")
        highest = max((id_number(e.id) or 0 for e in (*library.experiences, *library.history)), default=0)
        if library.next_id <= highest:
            raise ValueError(f"not a valid library: next_id is {library.next_id} but E{highest} exists")
        highest_demo = max((demo_number(d.id) or 0 for d in (*library.demos, *library.demo_history)), default=0)
        if library.next_demo <= highest_demo:
            raise ValueError(f"not a valid library: next_demo is {library.next_demo} but D{highest_demo} exists")
        recorded = document.get("content_hash")
        if recorded is not None and recorded != library.content_hash():
            raise ValueError("not a valid library: its content_hash does not match its experiences")
        return library
