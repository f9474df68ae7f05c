"""Version numbers of prompt modules: what changed, which number follows, which version a range selects.

The content of a version is what decides the messages it renders: the composed
templates (with the demos' placement), the model name, the experiences (ids and
texts, in order) and the demos (ids, fields and answers, in order). Against the
previous version a change is

- **major** when a template, the demos' placement or the model changed (whatever
  happened to the experiences and demos);
- otherwise **minor** when at least one experience or demo was added (even if others
  were also edited or deleted in the same change);
- otherwise **patch** when experiences or demos were only edited (a demo replaced),
  deleted or reordered;
- otherwise no change at all: the same content, and no new version.

The first version is 1.0.0. A forced version must be higher than the latest one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import semantic_version

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.prompts.messages import PromptTemplates

__all__ = [
    "FIRST_VERSION",
    "Bump",
    "Change",
    "ModuleContent",
    "VersionError",
    "compare_content",
    "is_version",
    "next_version",
    "select_version",
    "version_key",
]

Bump: TypeAlias = Literal["initial", "major", "minor", "patch"]

_VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
FIRST_VERSION = "1.0.0"


class VersionError(GrpoError, ValueError):
    """A version number or range that is malformed, missing or not higher than the latest."""


def is_version(text: str) -> bool:
    """Whether `text` is a plain `MAJOR.MINOR.PATCH` number."""
    return _VERSION.fullmatch(text) is not None


def version_key(text: str) -> tuple[int, int, int]:
    """The sort key of a `MAJOR.MINOR.PATCH` number."""
    match = _VERSION.fullmatch(text)
    if match is None:
        raise VersionError(f"{text!r} is not a version number like 1.2.0")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


@dataclass(frozen=True, slots=True)
class ModuleContent:
    """What a version renders with: the composed templates, the model name, the experiences
    and the demos. A version without demos, placing them by default, has the content (and
    the hash) it had before demos existed."""

    templates: PromptTemplates
    model: str
    experiences: tuple[Mapping[str, str], ...]
    demos: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        templates: dict[str, Any] = {"system": self.templates.system, "user": self.templates.user}
        if self.templates.demos != "turns":
            templates["demos"] = self.templates.demos
        content: dict[str, Any] = {
            "templates": templates,
            "model": self.model,
            "experiences": [{"id": e["id"], "text": e["text"]} for e in self.experiences],
        }
        if self.demos:
            content["demos"] = [{"id": d["id"], "fields": dict(d["fields"]), "answer": d["answer"]} for d in self.demos]
        return content

    def items(self) -> dict[str, str]:
        """Every experience and demo by id, as the text a version diff compares."""
        texts = {e["id"]: e["text"] for e in self.experiences}
        for demo in self.demos:
            shown = {"fields": dict(demo["fields"]), "answer": demo["answer"]}
            texts[demo["id"]] = json.dumps(shown, sort_keys=True, ensure_ascii=False)
        return texts

    def sha256(self) -> str:
        """The content sha256: of the canonical JSON of `to_json()` (sorted keys, no spaces)."""
        canonical = json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Change:
    """How one content differs from the previous one, and the bump that follows (None: unchanged)."""

    bump: Bump | None
    templates: bool = False
    model: bool = False
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    reordered: bool = False

    def to_json(self, *, forced: bool) -> dict[str, Any]:
        return {
            "bump": self.bump,
            "forced": forced,
            "templates": self.templates,
            "model": self.model,
            "added": list(self.added),
            "removed": list(self.removed),
            "modified": list(self.modified),
            "reordered": self.reordered,
        }


def compare_content(previous: ModuleContent | None, new: ModuleContent) -> Change:
    """The change from `previous` (None for a first version) to `new`, with its bump (see the module doc)."""
    if previous is None:
        return Change("initial", added=tuple(new.items()))
    old_text = previous.items()
    new_text = new.items()
    added = tuple(i for i in new_text if i not in old_text)
    removed = tuple(i for i in old_text if i not in new_text)
    modified = tuple(i for i in new_text if i in old_text and old_text[i] != new_text[i])
    kept_old = [i for i in old_text if i in new_text]
    kept_new = [i for i in new_text if i in old_text]
    reordered = kept_old != kept_new
    templates = previous.templates != new.templates
    model = previous.model != new.model
    bump: Bump | None
    if templates or model:
        bump = "major"
    elif added:
        bump = "minor"
    elif removed or modified or reordered:
        bump = "patch"
    else:
        bump = None
    return Change(bump, templates, model, added, removed, modified, reordered)


def next_version(latest: str | None, bump: Bump, forced: str | None = None) -> str:
    """The number of the next version: `forced` when given (it must be higher), else `latest` bumped."""
    if forced is not None:
        forced_key = version_key(forced)
        if latest is not None and forced_key <= version_key(latest):
            raise VersionError(f"the forced version {forced} is not higher than the latest version {latest}")
        return forced
    if latest is None or bump == "initial":
        return FIRST_VERSION
    major, minor, patch = version_key(latest)
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def select_version(available: Sequence[str], wanted: str | None) -> str:
    """The version of `available` that `wanted` names: None for the latest, an exact number,
    or an npm-style range (`^1.2`, `~1.2.3`, `>=1.1 <2`), which selects its highest match."""
    if not available:
        raise VersionError("the module has no versions yet")
    if wanted is None:
        return max(available, key=version_key)
    wanted = wanted.strip()
    if is_version(wanted):
        if wanted not in available:
            raise VersionError(f"there is no version {wanted}; the versions are {', '.join(available)}")
        return wanted
    try:
        spec = semantic_version.NpmSpec(wanted)
    except ValueError:
        raise VersionError(f"{wanted!r} is neither a version like 1.2.0 nor a range like ^1.2 or ~1.2") from None
    chosen = spec.select([semantic_version.Version(v) for v in available])
    if chosen is None:
        raise VersionError(f"no version matches {wanted}; the versions are {', '.join(available)}")
    return str(chosen)
