"""Provenance: what created, changed and retired each item of the library, when and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

__all__ = ["PROVENANCE_JSON", "ProvenanceEntry", "ProvenanceOp"]

ProvenanceOp: TypeAlias = Literal["add", "modify", "delete", "evict"]
_PROVENANCE_OPS: tuple[ProvenanceOp, ...] = get_args(ProvenanceOp)


@dataclass(frozen=True, slots=True)
class ProvenanceEntry:
    """One event in the life of an experience or a demo: created, modified, deleted or evicted, when, by which groups, why."""

    op: ProvenanceOp
    step: int
    groups: tuple[str, ...] = ()
    rationale: str | None = None
    replaced: str | None = None
    """For `modify`: the text this change replaced."""

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "step": self.step,
            "groups": list(self.groups),
            "rationale": self.rationale,
            "replaced": self.replaced,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProvenanceEntry:
        return cls(
            op=data["op"],
            step=data["step"],
            groups=tuple(data["groups"]),
            rationale=data["rationale"],
            replaced=data["replaced"],
        )


PROVENANCE_JSON = {
    "type": "object",
    "properties": {
        "op": {"enum": list(_PROVENANCE_OPS)},
        "step": {"type": "integer", "minimum": 0},
        "groups": {"type": "array", "items": {"type": "string"}},
        "rationale": {"type": ["string", "null"]},
        "replaced": {"type": ["string", "null"]},
    },
    "required": ["op", "step", "groups", "rationale", "replaced"],
    "additionalProperties": False,
}
