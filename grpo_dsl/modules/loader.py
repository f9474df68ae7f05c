"""Read prompt modules back: every file validated, every hash checked, then rendered.

>>> module = load_module("prompts/math", version="^1.2")      # doctest: +SKIP
>>> module.render(question="What is 2 + 2?")                   # doctest: +SKIP
[{'role': 'system', 'content': '...'}, {'role': 'user', 'content': 'What is 2 + 2?'}]

A module whose files were changed after they were emitted, truncated, or that does
not match its schema is refused with a `ModuleError` naming the file and the JSON
path of the problem.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import sha256_bytes
from grpo_dsl.core.resources import resource_path
from grpo_dsl.library import Demo, Experience, Library
from grpo_dsl.modules.versioning import (
    Bump,
    ModuleContent,
    VersionError,
    select_version,
    version_key,
)
from grpo_dsl.prompts.messages import (
    PromptTemplates,
    TemplateRenderError,
    render_messages,
)

__all__ = [
    "INDEX_FILE",
    "MANIFEST_FILE",
    "EXPERIENCES_FILE",
    "README_FILE",
    "STAGED_PREFIX",
    "IndexEntry",
    "ModelMismatchWarning",
    "ModuleError",
    "ModuleIndex",
    "PromptModule",
    "load_module",
    "read_index",
    "read_version",
    "staged_name",
    "validate_document",
]

INDEX_FILE = "index.json"
MANIFEST_FILE = "module.json"
EXPERIENCES_FILE = "experiences.json"
README_FILE = "README.md"
STAGED_PREFIX = ".grpo-next-"
"""The prefix of a version's file staged by `record_evaluation`, in use once index.json names its manifest."""


def staged_name(name: str) -> str:
    """The name under which the next content of a version's file `name` is staged."""
    return STAGED_PREFIX + name


class ModuleError(GrpoError):
    """A prompt module that cannot be written or read: missing, malformed, tampered or refused."""


class ModelMismatchWarning(UserWarning):
    """A module is loaded for a model other than the one its library was learned with."""


@cache
def _validator(schema: str) -> Draft202012Validator:
    document = json.loads(resource_path(f"schemas/{schema}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(document)


def validate_document(document: object, schema: str, file: Path) -> None:
    """Check `document` (the content of `file`) against `schemas/<schema>.schema.json`."""
    error = best_match(_validator(schema).iter_errors(document))
    if error is not None:
        raise ModuleError(f"{file}: at {error.json_path}: {error.message}")


def _read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise ModuleError(f"{file}: the file is missing") from None
    except OSError as exc:
        raise ModuleError(f"{file}: cannot be read: {exc.strerror}") from None


def _parse_json(file: Path, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModuleError(f"{file}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ModuleError(
            f"{file}: not valid JSON (truncated or damaged?): {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


# ---------------------------------------------------------------------- the index


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One version as the index lists it."""

    version: str
    parent: str | None
    sha256: str
    manifest_sha256: str
    bump: Bump
    created: str
    experiences: int
    created_from: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "parent": self.parent,
            "sha256": self.sha256,
            "manifest_sha256": self.manifest_sha256,
            "bump": self.bump,
            "created": self.created,
            "experiences": self.experiences,
            "created_from": dict(self.created_from),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IndexEntry:
        return cls(
            version=data["version"],
            parent=data["parent"],
            sha256=data["sha256"],
            manifest_sha256=data["manifest_sha256"],
            bump=data["bump"],
            created=data["created"],
            experiences=data["experiences"],
            created_from=dict(data["created_from"]),
        )


@dataclass(frozen=True, slots=True)
class ModuleIndex:
    """The `index.json` of a module: its name and every version, oldest first."""

    name: str
    versions: tuple[IndexEntry, ...] = ()

    @property
    def latest(self) -> IndexEntry | None:
        return self.versions[-1] if self.versions else None

    def entry(self, version: str) -> IndexEntry:
        found = next((e for e in self.versions if e.version == version), None)
        if found is None:
            raise VersionError(f"there is no version {version}")
        return found

    def position(self, version: str) -> int:
        return next(i for i, e in enumerate(self.versions) if e.version == version)

    def to_json(self) -> dict[str, Any]:
        return {"schema": "grpo-module-index/1", "name": self.name, "versions": [e.to_json() for e in self.versions]}


def read_index(root: Path) -> ModuleIndex:
    """Read and validate `root/index.json`; versions must grow and each must name the one before as parent."""
    file = root / INDEX_FILE
    if not file.is_file():
        raise ModuleError(f"{root} is not a prompt module: {file} does not exist")
    document = _parse_json(file, _read_bytes(file))
    validate_document(document, "index", file)
    index = ModuleIndex(document["name"], tuple(IndexEntry.from_json(e) for e in document["versions"]))
    for position, (before, after) in enumerate(zip(index.versions, index.versions[1:]), start=1):
        if version_key(after.version) <= version_key(before.version):
            raise ModuleError(f"{file}: at $.versions[{position}].version: {after.version} is not higher than {before.version}")
        if after.parent != before.version:
            raise ModuleError(f"{file}: at $.versions[{position}].parent: expected {before.version}, found {after.parent}")
    return index


# ---------------------------------------------------------------------- one version


@dataclass(frozen=True, slots=True)
class PromptModule:
    """One version of a prompt module: its manifest, its library and its templates."""

    path: Path
    """The module folder (the one holding index.json)."""
    manifest: Mapping[str, Any]
    """The validated content of module.json."""
    library: Library

    @property
    def name(self) -> str:
        return cast(str, self.manifest["name"])

    @property
    def version(self) -> str:
        return cast(str, self.manifest["version"])

    @property
    def parent(self) -> str | None:
        return cast("str | None", self.manifest["parent"])

    @property
    def sha256(self) -> str:
        return cast(str, self.manifest["sha256"])

    @property
    def model(self) -> str:
        """The model name the library was learned with (as sent to the endpoint)."""
        return cast(str, self.manifest["model"]["name"])

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the templates use (besides `experiences`)."""
        return tuple(self.manifest["fields"])

    @property
    def created_from(self) -> Mapping[str, Any]:
        return cast(Mapping[str, Any], self.manifest["created_from"])

    @property
    def evaluation(self) -> Mapping[str, Any] | None:
        return cast("Mapping[str, Any] | None", self.manifest["evaluation"])

    @property
    def experiences(self) -> tuple[Experience, ...]:
        """The experiences the prompt carries, in prompt order, with their provenance."""
        return self.library.experiences

    @property
    def templates(self) -> PromptTemplates:
        """The composed templates: the task's, with the library placed as the run placed it."""
        templates = self.manifest["templates"]
        return PromptTemplates(system=templates["system"], user=templates["user"], demos=templates.get("demos", "turns"))

    @property
    def demos(self) -> tuple[Demo, ...]:
        """The demos the prompt carries, in prompt order, with their provenance."""
        return self.library.demos

    def content(self) -> ModuleContent:
        return ModuleContent(self.templates, self.model, self.library.prompt_entries(), self.library.demo_entries())

    def render(self, /, **fields: Any) -> list[dict[str, str]]:
        """The OpenAI chat messages for one question, e.g. `render(question="What is 2 + 2?")`.

        Rendering is sandboxed Jinja with strict undefined variables: a missing field is
        a `TemplateRenderError` naming it. Fields the templates do not use are ignored.
        """
        try:
            return render_messages(self.templates, fields, self.library.prompt_entries(), self.library.demo_entries())
        except TemplateRenderError as exc:
            missing = [f for f in self.fields if f not in fields]
            if not missing:
                raise
            names = ", ".join(f"`{f}`" for f in missing)
            raise TemplateRenderError(
                f"prompt module {self.name}@{self.version} needs the field{'s' if len(missing) > 1 else ''} {names} "
                f"(it renders with {', '.join(self.fields)})"
            ) from exc


def _read_if_present(file: Path) -> bytes | None:
    try:
        return file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ModuleError(f"{file}: cannot be read: {exc.strerror}") from None


def _manifest_of(folder: Path, manifest_sha256: str) -> tuple[Path, bytes, bool]:
    """The manifest index.json names: module.json, or the staged one of an evaluation
    being recorded (True), whose files are then read staged while they still are.
    When neither matches, module.json is read again: the staged one may just have
    been renamed into its place."""
    current = folder / MANIFEST_FILE
    raw = _read_bytes(current)
    if sha256_bytes(raw) == manifest_sha256:
        return current, raw, False
    staged = _read_if_present(folder / staged_name(MANIFEST_FILE))
    if staged is not None and sha256_bytes(staged) == manifest_sha256:
        return folder / staged_name(MANIFEST_FILE), staged, True
    return current, _read_bytes(current), False


def _version_file_bytes(folder: Path, name: str, staged: bool) -> bytes:
    found = _read_if_present(folder / staged_name(name)) if staged else None
    return found if found is not None else _read_bytes(folder / name)


def read_version(root: Path, index: ModuleIndex, version: str) -> PromptModule:
    """Read one version of the module at `root`, checking its schema and every hash."""
    entry = index.entry(version)
    folder = root / version
    index_file = root / INDEX_FILE
    manifest_file, raw, staged = _manifest_of(folder, entry.manifest_sha256)
    manifest = _parse_json(manifest_file, raw)
    validate_document(manifest, "module", manifest_file)
    where = f"$.versions[{index.position(version)}]"
    if manifest["version"] != version:
        raise ModuleError(f"{manifest_file}: at $.version: {manifest['version']} but the folder is {version}")
    if sha256_bytes(raw) != entry.manifest_sha256:
        raise ModuleError(
            f"{manifest_file}: the file was changed after it was emitted: "
            f"its sha256 does not match {index_file} at {where}.manifest_sha256"
        )
    experiences_file = folder / EXPERIENCES_FILE
    library_document = _parse_json(experiences_file, _read_bytes(experiences_file))
    for name, expected in sorted(manifest["files"].items()):
        if sha256_bytes(_version_file_bytes(folder, name, staged)) != expected:
            raise ModuleError(
                f"{folder / name}: the file was changed after it was emitted: "
                f"its sha256 does not match {manifest_file} at $.files['{name}']"
            )
    try:
        library = Library.from_json(library_document)
    except ValueError as exc:
        raise ModuleError(f"{experiences_file}: {exc}") from None
    module = PromptModule(root, manifest, library)
    if module.content().sha256() != module.sha256 or module.sha256 != entry.sha256:
        raise ModuleError(f"{manifest_file}: at $.sha256: the content sha256 does not match the templates and experiences")
    return module


def load_module(path: str | PathLike[str], version: str | None = None, *, model: str | None = None) -> PromptModule:
    """Load a version of the prompt module at `path`.

    `version` is None (the latest), an exact number (`"1.2.0"`) or a range
    (`"^1.2"`, `"~1.2"`, `">=1.1 <2"`: the highest match). With `model`, a
    `ModelMismatchWarning` is issued when the module was learned with another model.
    Raises `ModuleError` when the module is missing, malformed or was tampered with.
    """
    root = Path(path)
    index = read_index(root)
    try:
        chosen = select_version([e.version for e in index.versions], version)
    except VersionError as exc:
        raise ModuleError(f"{root}: {exc}") from None
    module = read_version(root, index, chosen)
    learned_with = {module.model, module.manifest["model"]["block"]}
    if model is not None and model not in learned_with:
        warnings.warn(
            ModelMismatchWarning(
                f"prompt module {module.name}@{module.version} was learned with model {module.model!r}, "
                f"not {model!r}: its experiences may not transfer"
            ),
            stacklevel=2,
        )
    return module
