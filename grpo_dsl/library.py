"""The experience library and the update step that changes it.

A `Library` is an immutable value: its experiences in order, every experience it
ever retired (`history`), a version number and the next id to hand out. The
learner proposes typed `Operation`s (add, modify, delete, keep); an update rule
turns a library and a list of operations into the next library and an
`ApplyReport` that says, for every operation, whether it was applied and, if not,
why. `apply` is the built-in rule; a policy may name another one with
`rule = python("rules.py:apply")`, loaded by `load_rule`, with exactly the same
signature (`Rule`). Nothing here calls an LLM or touches files.

>>> library, report = apply(Library.empty(), [Operation.add("Check the units.")],
...                         PolicySpec(), ApplyContext(step=1))
>>> print(library.render())
[E1] Check the units.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast, get_args

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

__all__ = [
    "LIBRARY_SCHEMA",
    "ON_FULL_MODES",
    "OPERATIONS_SCHEMA",
    "OPERATION_KINDS",
    "ApplyContext",
    "ApplyReport",
    "Experience",
    "Library",
    "OnFull",
    "OpKind",
    "OpOutcome",
    "Operation",
    "OperationSource",
    "ParsedOperations",
    "PolicySpec",
    "ProvenanceEntry",
    "Rule",
    "RuleError",
    "RuleRef",
    "apply",
    "cited_ids",
    "id_number",
    "load_rule",
    "normalize_text",
    "operations_from_json",
    "word_count",
]

OpKind: TypeAlias = Literal["add", "modify", "delete", "keep"]
OnFull: TypeAlias = Literal["reject", "evict_oldest", "evict_least_used"]
ProvenanceOp: TypeAlias = Literal["add", "modify", "delete", "evict"]

OPERATION_KINDS: tuple[OpKind, ...] = get_args(OpKind)
ON_FULL_MODES: tuple[OnFull, ...] = get_args(OnFull)
_PROVENANCE_OPS: tuple[ProvenanceOp, ...] = get_args(ProvenanceOp)

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


# ---------------------------------------------------------------------- operations


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
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One change the learner proposes: `add {text}`, `modify {id, text}`, `delete {id}` or `keep`.

    The constructor checks the shape (which fields each kind has); whether the
    operation makes sense against a library and a policy is the rule's decision.
    """

    op: OpKind
    id: str | None = None
    text: str | None = None
    rationale: str | None = None
    source: OperationSource | None = None

    def __post_init__(self) -> None:
        if self.op not in OPERATION_KINDS:
            raise ValueError(f"unknown operation `{self.op}`; expected one of {', '.join(OPERATION_KINDS)}")
        needed = _FIELDS_OF[self.op]
        for name in ("id", "text"):
            value = getattr(self, name)
            if name in needed and not isinstance(value, str):
                raise ValueError(f"`{self.op}` needs a string `{name}`")
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

    def to_json(self) -> dict[str, Any]:
        """The learner's JSON form, plus `source` when known; absent fields are left out."""
        data: dict[str, Any] = {"op": self.op}
        for name in ("id", "text", "rationale"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.source is not None:
            data["source"] = self.source.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Operation:
        """Read back an operation written by `to_json`; raises ValueError on a malformed one."""
        source = data.get("source")
        try:
            return cls(
                op=data["op"],
                id=data.get("id"),
                text=data.get("text"),
                rationale=data.get("rationale"),
                source=OperationSource.from_json(source) if source is not None else None,
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


_OPERATION_SCHEMAS: dict[OpKind, dict[str, Any]] = {op: _operation_schema(op) for op in OPERATION_KINDS}

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
    if kind not in OPERATION_KINDS:
        return f"operation {position}: unknown op {json.dumps(kind)}; expected one of {', '.join(OPERATION_KINDS)}"
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


# ---------------------------------------------------------------------- the library


@dataclass(frozen=True, slots=True)
class ProvenanceEntry:
    """One event in an experience's life: created, modified, deleted or evicted, when, by which groups, why."""

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


_PROVENANCE_JSON = {
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
_EXPERIENCE_JSON = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": _ID_PATTERN},
        "text": {"type": "string"},
        "created_step": {"type": "integer", "minimum": 0},
        "uses": {"type": "integer", "minimum": 0},
        "provenance": {"type": "array", "items": _PROVENANCE_JSON},
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
    """

    version: int = 0
    experiences: tuple[Experience, ...] = ()
    history: tuple[Experience, ...] = ()
    next_id: int = 1

    @classmethod
    def empty(cls) -> Library:
        """The library a learn starts from when it has no `init`."""
        return cls()

    def get(self, experience_id: str) -> Experience | None:
        """The live experience with this id, or None."""
        return next((e for e in self.experiences if e.id == experience_id), None)

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

    def content_hash(self) -> str:
        """sha256 of what a prompt sees (the ids and texts, in order); versions and statistics are left out."""
        canonical = json.dumps(self.prompt_entries(), ensure_ascii=False, separators=(",", ":"))
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
        )
        ids = library.ids
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"not a valid library: the id {duplicated[0]} is used by two experiences")
        highest = max((id_number(e.id) or 0 for e in (*library.experiences, *library.history)), default=0)
        if library.next_id <= highest:
            raise ValueError(f"not a valid library: next_id is {library.next_id} but E{highest} exists")
        recorded = document.get("content_hash")
        if recorded is not None and recorded != library.content_hash():
            raise ValueError("not a valid library: its content_hash does not match its experiences")
        return library


# ---------------------------------------------------------------------- policy and context


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A user update rule: `function` in the Python file `path` (relative to the program's folder)."""

    path: str
    function: str


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """How the library may change; a mirror of the plan's `Policy` (docs/plan.md).

    `keep` is always allowed whatever `ops` says. `max_per_group` limits what one
    group may propose and is enforced before the rule runs; `style` is guidance for
    the learner; the rule enforces `ops`, `capacity`, `max_words` and `on_full`.
    """

    ops: tuple[OpKind, ...] = ("add", "modify", "delete", "keep")
    max_per_group: int = 2
    capacity: int = 48
    max_words: int = 32
    on_full: OnFull = "reject"
    style: str | None = None
    rule: RuleRef | None = None

    def allows(self, op: OpKind) -> bool:
        return op == "keep" or op in self.ops

    def to_json(self) -> dict[str, Any]:
        return {
            "ops": list(self.ops),
            "max_per_group": self.max_per_group,
            "capacity": self.capacity,
            "max_words": self.max_words,
            "on_full": self.on_full,
            "style": self.style,
            "rule": {"path": self.rule.path, "function": self.rule.function} if self.rule else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicySpec:
        """Read a plan's policy; absent keys take the defaults, wrong values raise ValueError."""
        default = cls()
        ops = tuple(data.get("ops", default.ops))
        unknown = [op for op in ops if op not in OPERATION_KINDS]
        if unknown:
            raise ValueError(f"policy `ops` has unknown operation {unknown[0]!r}")
        numbers = {name: data.get(name, getattr(default, name)) for name in ("max_per_group", "capacity", "max_words")}
        for name, value in numbers.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"policy `{name}` must be a positive integer, not {value!r}")
        on_full = data.get("on_full", default.on_full)
        if on_full not in ON_FULL_MODES:
            raise ValueError(f"policy `on_full` must be one of {', '.join(ON_FULL_MODES)}, not {on_full!r}")
        style = data.get("style")
        rule = data.get("rule")
        return cls(
            ops=cast(tuple[OpKind, ...], ops),
            max_per_group=numbers["max_per_group"],
            capacity=numbers["capacity"],
            max_words=numbers["max_words"],
            on_full=on_full,
            style=style if isinstance(style, str) else None,
            rule=RuleRef(rule["path"], rule["function"]) if rule else None,
        )


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """What a rule knows about the step besides the operations: its number and its groups."""

    step: int
    groups: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "groups": list(self.groups)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApplyContext:
        return cls(step=data["step"], groups=tuple(data.get("groups", ())))


# ---------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class OpOutcome:
    """What became of the operation at `index` in the list: the id it touched or created,
    or the reason it was rejected, and the ids it evicted to make room."""

    index: int
    op: Operation
    id: str | None = None
    reason: str | None = None
    evicted: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op.to_json(),
            "id": self.id,
            "reason": self.reason,
            "evicted": list(self.evicted),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OpOutcome:
        return cls(
            index=data["index"],
            op=Operation.from_json(data["op"]),
            id=data.get("id"),
            reason=data.get("reason"),
            evicted=tuple(data.get("evicted", ())),
        )


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """Every operation of a list, applied or rejected (with the reason), in list order."""

    applied: tuple[OpOutcome, ...] = ()
    rejected: tuple[OpOutcome, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"applied": [o.to_json() for o in self.applied], "rejected": [o.to_json() for o in self.rejected]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApplyReport:
        return cls(
            applied=tuple(OpOutcome.from_json(o) for o in data["applied"]),
            rejected=tuple(OpOutcome.from_json(o) for o in data["rejected"]),
        )


Rule: TypeAlias = Callable[[Library, Sequence[Operation], PolicySpec, ApplyContext], tuple[Library, ApplyReport]]
"""The signature of every update rule, the built-in `apply` included."""


# ---------------------------------------------------------------------- the built-in rule


@dataclass(slots=True)
class _Step:
    """The working state of one `apply` call."""

    library: Library
    policy: PolicySpec
    context: ApplyContext
    live: list[Experience]
    next_id: int
    retired: list[Experience] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)
    """id -> what happened to it in this step: "added", "modified", "deleted" or "evicted"."""
    outcomes: list[OpOutcome] = field(default_factory=list)

    def position(self, experience_id: str) -> int | None:
        return next((i for i, e in enumerate(self.live) if e.id == experience_id), None)

    def entry(self, op: ProvenanceOp, operation: Operation, **details: str) -> ProvenanceEntry:
        groups = operation.source.groups if operation.source and operation.source.groups else self.context.groups
        return ProvenanceEntry(op, self.context.step, groups, **{"rationale": operation.rationale, **details})

    def text_problem(self, text: str, current: Experience | None = None) -> str | None:
        if not text:
            return "empty text"
        words = word_count(text)
        if words > self.policy.max_words:
            return f"text has {words} words, the limit is {self.policy.max_words}"
        if current is not None and text == current.text:
            return f"text is the same as {current.id}'s"
        key = normalize_text(text)
        duplicate = next((e.id for e in self.live if e is not current and normalize_text(e.text) == key), None)
        return f"text duplicates {duplicate}" if duplicate else None


def apply(
    library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
) -> tuple[Library, ApplyReport]:
    """The built-in update rule: apply `operations` to `library` under `policy`.

    Pure and deterministic. Deletes and modifies are applied first, in list order,
    then adds, in list order, so that room freed by a delete is available to an
    add of the same step. An operation is rejected, with its reason in the report,
    when its kind is not in `policy.ops`; it names an id that is not live; an
    earlier operation of the list already changed that id (the first applied one
    wins); its text is empty, longer than `max_words`, unchanged, or equal to
    another experience's text (compared by `normalize_text`); or it is an add to a
    full library and `on_full` is `reject` (or every experience was changed in
    this step, so none may be evicted). `keep` is always applied and changes nothing.

    When anything changed the result has `version = library.version + 1`;
    otherwise the very same library is returned. New ids are numbered from
    `library.next_id`; replaced, deleted and evicted experiences go to `history`.
    """
    ops = tuple(operations)
    state = _Step(library, policy, context, live=list(library.experiences), next_id=library.next_id)
    for index, operation in enumerate(ops):
        if operation.op in ("modify", "delete"):
            _change(state, index, operation)
    for index, operation in enumerate(ops):
        if operation.op == "add":
            _add(state, index, operation)
        elif operation.op == "keep":
            state.outcomes.append(OpOutcome(index, operation))
    outcomes = sorted(state.outcomes, key=lambda o: o.index)
    report = ApplyReport(
        applied=tuple(o for o in outcomes if o.reason is None),
        rejected=tuple(o for o in outcomes if o.reason is not None),
    )
    if not state.changed:
        return library, report
    updated = Library(
        version=library.version + 1,
        experiences=tuple(state.live),
        history=library.history + tuple(state.retired),
        next_id=state.next_id,
    )
    return updated, report


def _change(state: _Step, index: int, operation: Operation) -> None:
    target = cast(str, operation.id)
    position = state.position(target)
    current = state.live[position] if position is not None else None
    text = (operation.text or "").strip()
    if not state.policy.allows(operation.op):
        reason: str | None = f"op `{operation.op}` not allowed by the policy"
    elif target in state.changed:
        reason = f"conflicting ops on {target} in one step: it was already {state.changed[target]}"
    elif current is None:
        deleted = any(e.id == target for e in state.library.history)
        reason = f"unknown id {target}" + (" (it was deleted)" if deleted else "")
    elif operation.op == "modify":
        reason = state.text_problem(text, current)
    else:
        reason = None
    if reason is not None or current is None or position is None:
        state.outcomes.append(OpOutcome(index, operation, id=target, reason=reason))
        return
    if operation.op == "delete":
        state.retired.append(replace(current, provenance=current.provenance + (state.entry("delete", operation),)))
        del state.live[position]
        state.changed[target] = "deleted"
    else:
        state.retired.append(current)
        provenance = current.provenance + (state.entry("modify", operation, replaced=current.text),)
        state.live[position] = replace(current, text=text, provenance=provenance)
        state.changed[target] = "modified"
    state.outcomes.append(OpOutcome(index, operation, id=target))


def _add(state: _Step, index: int, operation: Operation) -> None:
    text = (operation.text or "").strip()
    capacity = state.policy.capacity
    candidates = sorted((e for e in state.live if e.id not in state.changed), key=_eviction_order(state.policy.on_full))
    excess = len(state.live) - capacity + 1
    if not state.policy.allows("add"):
        reason = "op `add` not allowed by the policy"
    elif (problem := state.text_problem(text)) is not None:
        reason = problem
    elif excess > 0 and state.policy.on_full == "reject":
        reason = f"library is full ({capacity}) and on_full = reject"
    elif excess > len(candidates):
        reason = f"library is full ({capacity}) and every experience was changed in this step"
    else:
        new_id = f"E{state.next_id}"
        state.next_id += 1
        victims = candidates[: max(excess, 0)]
        for victim in victims:
            entry = state.entry("evict", operation, rationale=f"library full ({capacity}), made room for {new_id}")
            state.retired.append(replace(victim, provenance=victim.provenance + (entry,)))
            state.live.remove(victim)
            state.changed[victim.id] = "evicted"
        state.live.append(Experience(new_id, text, (state.entry("add", operation),), created_step=state.context.step))
        state.changed[new_id] = "added"
        state.outcomes.append(OpOutcome(index, operation, id=new_id, evicted=tuple(v.id for v in victims)))
        return
    state.outcomes.append(OpOutcome(index, operation, reason=reason))


def _eviction_order(on_full: OnFull) -> Callable[[Experience], tuple[int, int]]:
    """Oldest first is lowest id first (ids follow creation order); least used first breaks ties by age."""
    if on_full == "evict_least_used":
        return lambda e: (e.uses, id_number(e.id) or 0)
    return lambda e: (0, id_number(e.id) or 0)


# ---------------------------------------------------------------------- user rules


class RuleError(Exception):
    """A user update rule could not be loaded, or misbehaved when called."""


def load_rule(path: str, function: str, base_dir: Path) -> Rule:
    """Import `function` from the Python file `path` (relative to `base_dir`) as an update rule.

    The returned rule checks what the user function returns and turns any
    exception it raises into a `RuleError` naming the rule.
    """
    file = (base_dir / path).resolve()
    label = f"{path}:{function}"
    if not file.is_file():
        raise RuleError(f"update rule {label}: file {file} not found")
    module_name = "grpo_rule_" + hashlib.sha256(str(file).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise RuleError(f"update rule {label}: {file} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise RuleError(f"update rule {label}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    user_rule = getattr(module, function, None)
    if not callable(user_rule):
        defined = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module_name)
        listing = f" (it defines {', '.join(defined)})" if defined else ""
        raise RuleError(f"update rule {label}: {path} has no function `{function}`{listing}")
    try:
        inspect.signature(user_rule).bind(None, None, None, None)
    except TypeError:
        raise RuleError(f"update rule {label} must take (library, operations, policy, context)") from None
    except ValueError:
        pass
    return _checked(user_rule, label)


def _checked(user_rule: Callable[..., Any], label: str) -> Rule:
    def rule(
        library: Library, operations: Sequence[Operation], policy: PolicySpec, context: ApplyContext
    ) -> tuple[Library, ApplyReport]:
        try:
            result = user_rule(library, operations, policy, context)
        except Exception as exc:
            raise RuleError(f"update rule {label} raised {type(exc).__name__}: {exc}") from exc
        if not (
            isinstance(result, tuple)
            and len(result) == 2
            and isinstance(result[0], Library)
            and isinstance(result[1], ApplyReport)
        ):
            raise RuleError(f"update rule {label} returned {type(result).__name__}, expected (Library, ApplyReport)")
        return result

    rule.__name__ = rule.__qualname__ = label.rsplit(":", 1)[-1]
    return rule
