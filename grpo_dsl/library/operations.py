"""Typed operations on the experience library: the learner's proposals, their JSON Schema and parsing.

The learner proposes lesson operations (`add`, `modify`, `delete`, `keep`). Demo
operations (`add_demo`, `replace_demo`, `delete_demo`) are never asked of the
learner: the learning step derives them from the group comparison. Both kinds go
through the same update rule and the same report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast, get_args

from jsonschema import Draft202012Validator

__all__ = [
    "DEMO_KINDS",
    "LESSON_KINDS",
    "ON_FULL_MODES",
    "OPERATIONS_SCHEMA",
    "OPERATION_KINDS",
    "OnFull",
    "OpKind",
    "Operation",
    "OperationSource",
    "ParsedOperations",
    "cited_ids",
    "id_number",
    "normalize_text",
    "operations_from_json",
    "word_count",
]
from jsonschema.exceptions import ValidationError, best_match

from grpo_dsl.library.demos import Example

OpKind: TypeAlias = Literal["add", "modify", "delete", "keep", "add_demo", "replace_demo", "delete_demo"]
OnFull: TypeAlias = Literal["reject", "evict_oldest", "evict_least_used"]

OPERATION_KINDS: tuple[OpKind, ...] = get_args(OpKind)
LESSON_KINDS: tuple[OpKind, ...] = ("add", "modify", "delete", "keep")
"""The operations a learner may propose (and a policy's `ops` may list)."""
DEMO_KINDS: tuple[OpKind, ...] = ("add_demo", "replace_demo", "delete_demo")
"""The operations on demonstrations, derived by the learning step."""
ON_FULL_MODES: tuple[OnFull, ...] = get_args(OnFull)

_ID_PATTERN = "^E[1-9][0-9]*$"
_ID_IN_TEXT = re.compile(r"\bE([1-9][0-9]*)\b")


def id_number(experience_id: str) -> int | None:
    """The number of an id such as `E12` (12), or None when it is not an experience id."""
    return int(experience_id[1:]) if re.fullmatch(_ID_PATTERN, experience_id) else None


def word_count(text: str) -> int:
    """Words in `text`, as the policy's `max_words` counts them: runs of non-space characters."""
    return len(text.split())


def normalize_text(text: str) -> str:
    """The form in which two texts are compared for duplicates: case-folded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def cited_ids(text: str) -> tuple[str, ...]:
    """The distinct experience ids (`E3`, `[E3]`) mentioned in `text`, in order of first mention."""
    seen = dict.fromkeys(f"E{m.group(1)}" for m in _ID_IN_TEXT.finditer(text))
    return tuple(seen)


@dataclass(frozen=True, slots=True)
class OperationSource:
    """Where a proposed operation came from: the learning step and the groups behind it."""

    step: int | None = None
    groups: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "groups": list(self.groups)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OperationSource:
        step = data.get("step")
        groups = data.get("groups") or ()
        if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
            raise ValueError(f"an operation source's `step` must be an integer, not {step!r}")
        if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
            raise ValueError(f"an operation source's `groups` must be a list of strings, not {groups!r}")
        return cls(step=step, groups=tuple(groups))


_FIELDS_OF: dict[OpKind, tuple[str, ...]] = {
    "add": ("text",),
    "modify": ("id", "text"),
    "delete": ("id",),
    "keep": (),
    "add_demo": ("example",),
    "replace_demo": ("id", "example"),
    "delete_demo": ("id",),
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One change to the library: `add {text}`, `modify {id, text}`, `delete {id}` or `keep`
    (proposed by the learner), or `add_demo {example}`, `replace_demo {id, example}`,
    `delete_demo {id}` (derived by the learning step).

    The constructor checks the shape (which fields each kind has); whether the
    operation makes sense against a library and a policy is the rule's decision.
    """

    op: OpKind
    id: str | None = None
    text: str | None = None
    rationale: str | None = None
    source: OperationSource | None = None
    example: Example | None = None

    def __post_init__(self) -> None:
        if self.op not in OPERATION_KINDS:
            raise ValueError(f"unknown operation `{self.op}`; expected one of {', '.join(OPERATION_KINDS)}")
        needed = _FIELDS_OF[self.op]
        for name, kind in (("id", str), ("text", str), ("example", Example)):
            value = getattr(self, name)
            if name in needed and not isinstance(value, kind):
                raise ValueError(f"`{self.op}` needs {'a string' if kind is str else 'an'} `{name}`")
            if name not in needed and value is not None:
                raise ValueError(f"`{self.op}` takes no `{name}`")

    @classmethod
    def add(cls, text: str, rationale: str | None = None, source: OperationSource | None = None) -> Operation:
        return cls("add", text=text, rationale=rationale, source=source)

    @classmethod
    def modify(
        cls, id: str, text: str, rationale: str | None = None, source: OperationSource | None = None
    ) -> Operation:
        return cls("modify", id=id, text=text, rationale=rationale, source=source)

    @classmethod
    def delete(cls, id: str, rationale: str | None = None, source: OperationSource | None = None) -> Operation:
        return cls("delete", id=id, rationale=rationale, source=source)

    @classmethod
    def keep(cls, rationale: str | None = None, source: OperationSource | None = None) -> Operation:
        return cls("keep", rationale=rationale, source=source)

    @classmethod
    def add_demo(cls, example: Example, rationale: str | None = None, source: OperationSource | None = None) -> Operation:
        return cls("add_demo", example=example, rationale=rationale, source=source)

    @classmethod
    def replace_demo(
        cls, id: str, example: Example, rationale: str | None = None, source: OperationSource | None = None
    ) -> Operation:
        return cls("replace_demo", id=id, example=example, rationale=rationale, source=source)

    @classmethod
    def delete_demo(cls, id: str, rationale: str | None = None, source: OperationSource | None = None) -> Operation:
        return cls("delete_demo", id=id, rationale=rationale, source=source)

    def to_json(self) -> dict[str, Any]:
        """The learner's JSON form, plus `source` when known; absent fields are left out."""
        data: dict[str, Any] = {"op": self.op}
        for name in ("id", "text", "rationale"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.source is not None:
            data["source"] = self.source.to_json()
        if self.example is not None:
            data["example"] = self.example.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Operation:
        """Read back an operation written by `to_json`; raises ValueError on a malformed one."""
        source = data.get("source")
        example = data.get("example")
        try:
            return cls(
                op=data["op"],
                id=data.get("id"),
                text=data.get("text"),
                rationale=data.get("rationale"),
                source=OperationSource.from_json(source) if source is not None else None,
                example=Example.from_json(example) if example is not None else None,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed operation {data!r}") from exc


def _operation_schema(op: OpKind) -> dict[str, Any]:
    properties: dict[str, Any] = {"op": {"type": "string", "enum": [op]}}
    if "id" in _FIELDS_OF[op]:
        properties["id"] = {"type": "string", "pattern": _ID_PATTERN}
    if "text" in _FIELDS_OF[op]:
        properties["text"] = {"type": "string", "minLength": 1}
    properties["rationale"] = {"type": "string"}
    return {
        "type": "object",
        "properties": properties,
        "required": ["op", *_FIELDS_OF[op]],
        "additionalProperties": False,
    }


_OPERATION_SCHEMAS: dict[OpKind, dict[str, Any]] = {op: _operation_schema(op) for op in LESSON_KINDS}

OPERATIONS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "grpo-operations",
    "type": "object",
    "properties": {
        "operations": {"type": "array", "items": {"anyOf": list(_OPERATION_SCHEMAS.values())}},
    },
    "required": ["operations"],
    "additionalProperties": False,
}
"""The JSON Schema of the learner's reply: `{"operations": [{"op": "add", "text": ..}, ..]}`."""

_VALIDATORS = {op: Draft202012Validator(schema) for op, schema in _OPERATION_SCHEMAS.items()}


@dataclass(frozen=True, slots=True)
class ParsedOperations:
    """The operations read from a learner's reply, and one message for each item that was not one."""

    operations: tuple[Operation, ...]
    errors: tuple[str, ...]


def operations_from_json(
    reply: object, *, source: OperationSource | Mapping[str, Any] | None = None
) -> ParsedOperations:
    """Validate a learner's reply item by item against `OPERATIONS_SCHEMA`.

    Every valid item becomes an `Operation` carrying `source`; every invalid one
    yields an error naming its position and the reason, so nothing is dropped
    silently. Parsing is tolerant where intent is unambiguous: `op` is matched
    case-insensitively, ids may be written `[E4]` or `e4`, texts are stripped,
    and fields that are null or that the schema does not know are ignored.

    >>> operations_from_json({"operations": [{"op": "delete"}]}).errors
    ('operation 1 (delete): `delete` needs `id`',)
    """
    origin = OperationSource.from_json(source) if isinstance(source, Mapping) else source
    items = reply.get("operations") if isinstance(reply, Mapping) else reply
    if not isinstance(items, list):
        return ParsedOperations((), ("the reply has no `operations` list",))
    operations: list[Operation] = []
    errors: list[str] = []
    for position, item in enumerate(items, start=1):
        result = _parse_operation(position, item, origin)
        if isinstance(result, Operation):
            operations.append(result)
        else:
            errors.append(result)
    return ParsedOperations(tuple(operations), tuple(errors))


def _parse_operation(position: int, item: object, source: OperationSource | None) -> Operation | str:
    """The operation `item` describes, or the error message saying why it is not one."""
    if not isinstance(item, Mapping):
        return f"operation {position}: expected an object, got {json.dumps(item)}"
    kind = item.get("op")
    kind = kind.strip().lower() if isinstance(kind, str) else kind
    if kind not in LESSON_KINDS:
        return f"operation {position}: unknown op {json.dumps(kind)}; expected one of {', '.join(LESSON_KINDS)}"
    op = cast(OpKind, kind)
    known = {
        name: item[name]
        for name in ("id", "text", "rationale")
        if item.get(name) is not None and name in _OPERATION_SCHEMAS[op]["properties"]
    }
    if isinstance(known.get("id"), str):
        known["id"] = known["id"].strip().strip("[]").strip().upper()
    if isinstance(known.get("text"), str):
        known["text"] = known["text"].strip()
    error = best_match(_VALIDATORS[op].iter_errors({"op": op, **known}))
    if error is not None:
        return f"operation {position} ({op}): {_explain(op, error)}"
    return Operation(op, id=known.get("id"), text=known.get("text"), rationale=known.get("rationale"), source=source)


def _explain(op: OpKind, error: ValidationError) -> str:
    if error.validator == "required":
        missing = re.search(r"'(\w+)' is a required property", error.message)
        return f"`{op}` needs `{missing.group(1) if missing else error.message}`"
    name = error.path[0] if error.path else "operation"
    if error.validator == "minLength":
        return f"`{name}` is empty"
    if error.validator == "pattern":
        return f"`{name}` {json.dumps(error.instance)} is not an experience id like E4"
    return f"`{name}`: {error.message}"
