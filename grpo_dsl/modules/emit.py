"""Write prompt modules: a new immutable version folder, then the index, each atomically.

```
PATH/
  index.json            every version: number, content sha256, parent, where it came from
  1.2.0/
    module.json         the manifest (schema grpo-module/1)
    experiences.json    the library, with ids and provenance
    system.j2 user.j2   the composed templates          (format `jinja`)
    library.md          the library for people           (format `markdown`)
    module.prompty      a Prompty export                 (format `prompty`)
    README.md           what it is, how it was learned, its evaluation
```

A version folder is written under a temporary name and renamed into place, then
`index.json` is replaced; a crash at any point leaves every published version
intact, and the next emit clears what the crash left behind.

Versions are immutable in content; `record_evaluation` adds an evaluation's results
to a version's `module.json` and README.md: both are staged beside the originals
(`.grpo-next-*`), `index.json` is replaced to name the staged manifest (the commit),
and the staged files are renamed into place. A reader finds the staged manifest
while the renames are pending; the next write under the lock finishes a committed
record or drops one that was never committed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import meta

from grpo_dsl._version import __version__
from grpo_dsl.core.env import resolve_env
from grpo_dsl.core.files import (
    atomic_write_text,
    permitted_mode,
    read_json,
    sha256_bytes,
    sha256_text,
)
from grpo_dsl.core.resources import resource_path
from grpo_dsl.core.templating import sandbox
from grpo_dsl.library import Experience, Library
from grpo_dsl.modules.loader import (
    EXPERIENCES_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    README_FILE,
    STAGED_PREFIX,
    IndexEntry,
    ModuleError,
    ModuleIndex,
    read_index,
    read_version,
    staged_name,
    validate_document,
)
from grpo_dsl.modules.prompty import prompty_file
from grpo_dsl.modules.versioning import (
    Change,
    ModuleContent,
    VersionError,
    compare_content,
    is_version,
    next_version,
)
from grpo_dsl.plan import LearnView, Plan, PlanError
from grpo_dsl.prompts.messages import DemosPlacement, PromptTemplates, compose_templates
from grpo_dsl.runs.directory import RunDirectory, RunError

__all__ = [
    "FORMATS",
    "EmitResult",
    "ModelRef",
    "ModuleSpec",
    "Origin",
    "emit_from_run",
    "emit_module",
    "ablation_record",
    "evaluation_record",
    "record_ablation",
    "record_evaluation",
    "template_fields",
]

FORMATS = ("json", "jinja", "markdown", "prompty")
_TMP_PREFIX = ".grpo-tmp-"
_LOCK_FILE = ".lock"


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model: its declaration in the program (`block`) and the name sent to the endpoint."""

    block: str | None
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"block": self.block, "name": self.name}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a library came from: the run directory, its learn, the step and the plan's hash."""

    run: Path | None = None
    learn: str | None = None
    step: int | None = None
    plan_sha256: str | None = None


@dataclass(frozen=True)
class ModuleSpec:
    """Everything a module records besides the library: the task's templates, the model, the origin."""

    name: str
    system: str | None
    prompt: str
    placement: str
    model: ModelRef
    demos_placement: DemosPlacement = "turns"
    learner: ModelRef | None = None
    temperature: float | None = None
    formats: tuple[str, ...] = ("json", "jinja", "markdown")
    origin: Origin = field(default_factory=Origin)
    evaluation: Mapping[str, Any] | None = None

    @cached_property
    def templates(self) -> PromptTemplates:
        """The composed templates, exactly as training and evaluation compose them."""
        return compose_templates(self.system, self.prompt, self.placement, self.demos_placement)


@dataclass(frozen=True, slots=True)
class EmitResult:
    """The version an emit wrote (`created`) or found unchanged, and the change it made."""

    path: Path
    version: str
    created: bool
    change: Change | None = None


def template_fields(templates: PromptTemplates) -> tuple[str, ...]:
    """The variables the templates read, besides `experiences`, sorted."""
    env = sandbox()
    names: set[str] = set()
    for source in (templates.system, templates.user):
        if source is not None:
            names |= meta.find_undeclared_variables(env.parse(source))
    return tuple(sorted(names - {"experiences"}))


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------- the folder


def _target(path: Path, base_dir: Path | None, force: bool) -> Path:
    root = ((base_dir / path) if base_dir is not None else path).resolve()
    if base_dir is not None and not force and not root.is_relative_to(base_dir.resolve()):
        raise ModuleError(
            f"the module path {path} is outside the program's folder {base_dir.resolve()}; "
            "pass --force (force=True) to write there"
        )
    if root.exists() and not root.is_dir():
        raise ModuleError(f"{root} exists and is not a folder")
    if root.is_dir() and not force and not (root / INDEX_FILE).exists():
        if any(child.name != _LOCK_FILE for child in root.iterdir()):
            raise ModuleError(
                f"{root} exists and is not a prompt module (it has no {INDEX_FILE}); "
                "choose another path or pass --force (force=True)"
            )
    return root


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the module's lock file, so that two emits to one module take turns."""
    fd = os.open(root / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _left_by_a_crash(child: Path, published: set[str]) -> bool:
    if child.name.startswith(f".{INDEX_FILE}.") and child.name.endswith(".tmp"):
        return True
    if not child.is_dir():
        return False
    if child.name.startswith(_TMP_PREFIX):
        return True
    if not is_version(child.name) or child.name in published:
        return False
    try:
        return bool(read_json(child / MANIFEST_FILE).get("schema") == "grpo-module/1")
    except (OSError, ValueError, AttributeError):
        return False


def _sweep(root: Path, index: ModuleIndex) -> None:
    """Remove what an interrupted write left: temporary folders, versions it never
    published; finish the evaluation records index.json names and drop the others."""
    published = {e.version for e in index.versions}
    for child in root.iterdir():
        if _left_by_a_crash(child, published):
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    for entry in index.versions:
        folder = root / entry.version
        if folder.is_dir():
            _settle_record(folder, entry)


def _settle_record(folder: Path, entry: IndexEntry) -> None:
    """Finish the interrupted record in `folder` if index.json names its staged manifest, else drop it."""
    for child in folder.iterdir():
        if child.name.startswith(".") and child.name.endswith(".tmp"):
            child.unlink()
    staged_manifest = folder / staged_name(MANIFEST_FILE)
    if staged_manifest.is_file() and sha256_bytes(staged_manifest.read_bytes()) == entry.manifest_sha256:
        _rename_staged(folder)
        return
    for child in folder.iterdir():
        if child.name.startswith(STAGED_PREFIX):
            child.unlink()


def _rename_staged(folder: Path) -> None:
    """Move the staged files of `folder` into place, module.json last."""
    staged = sorted(
        (c for c in folder.iterdir() if c.name.startswith(STAGED_PREFIX)), key=lambda c: c.name == staged_name(MANIFEST_FILE)
    )
    for child in staged:
        os.replace(child, folder / child.name.removeprefix(STAGED_PREFIX))
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _publish(root: Path, version: str, files: Mapping[str, str]) -> None:
    """Write `files` into a temporary folder, then rename it to `root/version`."""
    staging = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{version}-", dir=root))
    staging.chmod(permitted_mode(directory=True))
    for name, text in files.items():
        atomic_write_text(staging / name, text)
    os.rename(staging, root / version)
    _fsync_folder(root)


def _write_index(root: Path, index: ModuleIndex) -> None:
    document = index.to_json()
    validate_document(document, "index", root / INDEX_FILE)
    atomic_write_text(root / INDEX_FILE, _json_text(document))


# ---------------------------------------------------------------------- the files


def _provenance_lines(experience: Experience) -> list[str]:
    lines = []
    for entry in experience.provenance:
        groups = f" by groups {', '.join(entry.groups)}" if entry.groups else ""
        why = f": {entry.rationale}" if entry.rationale else ""
        was = f' (was: "{entry.replaced}")' if entry.replaced is not None else ""
        lines.append(f"{entry.op} at step {entry.step}{groups}{why}{was}")
    return lines


def _library_markdown(library: Library) -> str:
    """The library for people: each experience, its text and its history."""
    blocks = []
    for experience in library.experiences:
        history = "\n".join(f"- {line}" for line in _provenance_lines(experience))
        uses = f"\n- cited by {experience.uses} rollout summaries" if experience.uses else ""
        blocks.append(f"### {experience.id}\n\n{experience.text}\n\n{history}{uses}\n")
    return "\n".join(blocks) if blocks else "The library is empty.\n"


def _readme(manifest: Mapping[str, Any], library: Library, path: Path) -> str:
    template = sandbox().from_string(resource_path("modules/readme.md.j2").read_text(encoding="utf-8"))
    evaluation = manifest["evaluation"]
    return template.render(
        module=manifest,
        path=path.as_posix(),
        library_markdown=_library_markdown(library),
        evaluation_json=json.dumps(evaluation, indent=2, sort_keys=True, ensure_ascii=False) if evaluation else None,
        ablations=sorted((manifest.get("ablation") or {}).items()),
    )


def _version_files(spec: ModuleSpec, library: Library, version: str) -> dict[str, str]:
    files = {EXPERIENCES_FILE: _json_text(library.to_json())}
    if "jinja" in spec.formats:
        if spec.templates.system is not None:
            files["system.j2"] = spec.templates.system
        files["user.j2"] = spec.templates.user
    if "markdown" in spec.formats:
        files["library.md"] = f"# {spec.name} {version}: the experience library\n\n" + _library_markdown(library)
    if "prompty" in spec.formats:
        files["module.prompty"] = prompty_file(
            name=spec.name,
            version=version,
            model=spec.model.name,
            temperature=spec.temperature,
            fields=template_fields(spec.templates),
            templates=spec.templates,
            experiences=library.prompt_entries(),
            demos=library.demo_entries(),
        )
    return files


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def _origin_json(origin: Origin, root: Path, library: Library) -> dict[str, Any]:
    return {
        "run": _relative(origin.run, root) if origin.run is not None else None,
        "learn": origin.learn,
        "step": origin.step,
        "plan_sha256": origin.plan_sha256,
        "library_version": library.version,
    }


# ---------------------------------------------------------------------- emit


def emit_module(
    library: Library,
    spec: ModuleSpec,
    path: str | os.PathLike[str],
    *,
    base_dir: Path | None = None,
    version: str | None = None,
    force: bool = False,
    failures: int = 0,
) -> EmitResult:
    """Write `library` as the next version of the prompt module at `path`.

    `path` is relative to `base_dir` (the program's folder) when given, and must stay
    inside it; an existing folder must be a module or empty. `force` lifts both
    checks. Emitting the content of the latest version again writes nothing and
    returns that version with `created=False`. `version` forces the number, which
    must be higher than the latest. `failures` counts the failed calls and rollouts
    behind `library`: an empty library with failures is never published over a
    version that has experiences, `force` or not. Raises `ModuleError`.
    """
    unknown = [f for f in spec.formats if f not in FORMATS]
    if unknown:
        raise ModuleError(f"unknown module format `{unknown[0]}`; the formats are {', '.join(FORMATS)}")
    if version is not None and not is_version(version):
        raise ModuleError(f"the forced version {version!r} is not a version number like 1.2.0")
    formats = ("json", *(f for f in FORMATS[1:] if f in spec.formats))
    root = _target(Path(path), base_dir, force)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        if (root / INDEX_FILE).exists():
            index = read_index(root)
            if index.name != spec.name:
                raise ModuleError(f"{root} holds the module `{index.name}`, not `{spec.name}`")
        else:
            index = ModuleIndex(spec.name)
            _write_index(root, index)
        _sweep(root, index)
        content = ModuleContent(spec.templates, spec.model.name, library.prompt_entries(), library.demo_entries())
        latest = index.latest
        if failures and not library.experiences and latest is not None and latest.experiences:
            raise ModuleError(
                f"{root}: the library is empty after {failures} failed calls and rollouts, and would replace "
                f"version {latest.version} and its {latest.experiences} experiences; nothing was written"
            )
        if latest is not None and latest.sha256 == content.sha256():
            return EmitResult(root, latest.version, created=False)
        previous = read_version(root, index, latest.version).content() if latest is not None else None
        change = compare_content(previous, content)
        assert change.bump is not None, "a different content always changes something"
        try:
            number = next_version(latest.version if latest else None, change.bump, version)
        except VersionError as exc:
            raise ModuleError(f"{root}: {exc}") from None
        files = _version_files(spec, library, number)
        manifest: dict[str, Any] = {
            "schema": "grpo-module/1",
            "name": spec.name,
            "version": number,
            "parent": latest.version if latest else None,
            "sha256": content.sha256(),
            "generator": _generator(),
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "created_from": _origin_json(spec.origin, root, library),
            "change": change.to_json(forced=version is not None),
            "model": spec.model.to_json(),
            "learner": spec.learner.to_json() if spec.learner else None,
            "temperature": spec.temperature,
            "placement": spec.placement,
            "templates": {"system": spec.templates.system, "user": spec.templates.user, "demos": spec.templates.demos},
            "fields": list(template_fields(spec.templates)),
            "formats": list(formats),
            "experiences": len(library.experiences),
            "demos": len(library.demos),
            "files": {},
            "evaluation": dict(spec.evaluation) if spec.evaluation is not None else None,
        }
        files[README_FILE] = _readme(manifest, library, Path(path))
        manifest["files"] = {name: sha256_text(text) for name, text in sorted(files.items())}
        validate_document(manifest, "module", root / number / MANIFEST_FILE)
        manifest_text = _json_text(manifest)
        _publish(root, number, {**files, MANIFEST_FILE: manifest_text})
        entry = IndexEntry(
            version=number,
            parent=manifest["parent"],
            sha256=manifest["sha256"],
            manifest_sha256=sha256_text(manifest_text),
            bump=change.bump,
            created=manifest["created"],
            experiences=manifest["experiences"],
            created_from=manifest["created_from"],
        )
        _write_index(root, ModuleIndex(index.name, index.versions + (entry,)))
    return EmitResult(root, number, created=True, change=change)


def _generator() -> str:
    return f"grpo-dsl {__version__}"


def emit_from_run(
    plan: Plan,
    emit_name: str,
    run_dir: Path,
    *,
    step: int | None = None,
    base_dir: Path,
    force: bool = False,
    evaluation: Mapping[str, Any] | None = None,
) -> EmitResult:
    """Emit, as the plan's `emit` block `emit_name` says, the library of the run in `run_dir`.

    The library is the one of the run's last completed step, or of `step` (0 is the
    empty library a learn without `init` starts from). The task, model and learner
    are read from the plan the run executed, so the module renders exactly what the
    run sent. `base_dir` is the program's folder; `evaluation` is recorded in the
    manifest and the README. Only a `completed` run is published, unless `force`.
    Raises `ModuleError`, also when the module's files cannot be written.
    """
    if emit_name not in plan.names("emit"):
        known = ", ".join(plan.names("emit")) or "none"
        raise ModuleError(f"the program has no emit `{emit_name}` (its emits: {known})")
    block = plan.emit(emit_name)
    run = RunDirectory(Path(run_dir))
    if not run.info_path.is_file() or not run.plan_path.is_file():
        raise ModuleError(f"{run_dir} is not a run directory (it has no run.json and plan.json)")
    try:
        info = run.info()
    except RunError as exc:
        raise ModuleError(str(exc)) from None
    status = info.get("status")
    if status != "completed" and not force:
        raise ModuleError(
            f"the run {run_dir} is `{status}`, not completed, so its library is not published: "
            f"finish it with `grpo run --resume {run_dir}`, or pass --force (force=True) to publish it anyway"
        )
    try:
        run_plan = Plan.from_json(run.plan_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, PlanError) as exc:
        raise ModuleError(f"{run.plan_path}: {exc}") from None
    learn_name = info["learn"]
    if block.library != learn_name:
        raise ModuleError(
            f"emit `{emit_name}` takes the library of learn `{block.library}`, but {run_dir} is a run of `{learn_name}`"
        )
    learn = run_plan.learn(learn_name)
    chosen = step if step is not None else _last_step(run, run_dir)
    library = _library_at(run, run_dir, learn, chosen)
    task = run_plan.task(learn.task)
    spec = ModuleSpec(
        name=block.name or emit_name,
        system=task.system,
        prompt=task.prompt,
        placement=task.experiences,
        demos_placement=task.demos_placement,
        model=_model_ref(run_plan, task.model),
        learner=_model_ref(run_plan, learn.learner),
        temperature=learn.temperature,
        formats=block.formats or ("json",),
        origin=Origin(run=run.path, learn=learn_name, step=chosen, plan_sha256=info.get("plan_sha256")),
        evaluation=evaluation,
    )
    try:
        return emit_module(
            library, spec, Path(block.path), base_dir=base_dir, version=block.version, force=force, failures=_failures(run, chosen)
        )
    except OSError as exc:
        raise ModuleError(f"cannot write the module {block.path}: {exc.strerror or exc} ({exc.filename or 'a file'})") from None


def _failures(run: RunDirectory, last: int) -> int:
    """The failed rollouts and calls of the run's steps up to `last`, as their outcomes record them."""
    total = 0
    for step in run.completed_steps():
        if step <= last:
            try:
                outcome = run.read_step(step, "outcome")
            except RunError:
                continue
            total += int(outcome.get("failed_rollouts", 0)) + int(outcome.get("failed_calls", 0))
    return total


def _model_ref(run_plan: Plan, block: str) -> ModelRef:
    """The model `block` of the plan, with its name as sent to the endpoint (an `env` value resolved now)."""
    declared = run_plan.model(block).name
    name = resolve_env(declared)
    if not isinstance(name, str) or not name:
        raise ModuleError(
            f"the name of model `{block}` comes from the environment variable {declared['env']}, "
            "which is not set and has no default: set it to the model name the run used"
        )
    return ModelRef(block, name)


def _last_step(run: RunDirectory, run_dir: Path) -> int:
    completed = run.completed_steps()
    if not completed:
        raise ModuleError(f"the run {run_dir} has no completed step to emit")
    return completed[-1]


def _library_at(run: RunDirectory, run_dir: Path, learn: LearnView, step: int) -> Library:
    if step == 0:
        if learn.init:
            raise ModuleError(f"step 0 of {run_dir} is the library of `{learn.init}`: emit it from that learn's run")
        return Library.empty()
    completed: Sequence[int] = run.completed_steps()
    if step not in completed:
        listing = ", ".join(map(str, completed)) or "none"
        raise ModuleError(f"step {step} of the run {run_dir} is not complete (completed steps: {listing})")
    try:
        return Library.from_json(run.read_step(step, "library"))
    except (ValueError, RunError) as exc:
        raise ModuleError(f"{run.step_dir(step) / 'library.json'}: {exc}") from None


# ---------------------------------------------------------------------- evaluations

_COMPARISON_KEYS = ("metric", "difference", "low", "high", "p_value", "better", "worse", "ties")


def evaluation_record(document: Mapping[str, Any], library: str, module: Path) -> dict[str, Any]:
    """What a module keeps of an evaluation: the part of `document` (an `evaluation.json`,
    grpo-evaluation/1) about the compared library `library`, the module at `module`.

    The record holds the library's metrics with their intervals, the questions and
    samples per question, the reward, the confidence, the baseline (the first library
    compared; None when it is this one), this library's comparisons with it, and the
    evaluation's run directory relative to the module folder.
    """
    libraries = {entry["name"]: entry for entry in document["libraries"]}
    if library not in libraries:
        raise ModuleError(f"the evaluation {document['evaluate']} has no library {library!r}")
    result = libraries[library]
    baseline = document["libraries"][0]["name"]
    return {
        "library": library,
        "run": _relative(Path(document["run_dir"]), module),
        "reward": document["reward"],
        "confidence": document["confidence"],
        "questions": result["questions"],
        "samples": result["samples"],
        "metrics": result["metrics"],
        "baseline": None if baseline == library else baseline,
        "comparisons": [
            {key: comparison[key] for key in _COMPARISON_KEYS}
            for comparison in document["comparisons"]
            if comparison["candidate"] == library
        ],
    }


def record_evaluation(
    path: str | os.PathLike[str],
    version: str,
    name: str,
    evaluation: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
) -> None:
    """Record in version `version` of the module at `path` the results of the `evaluate` named `name`.

    `evaluation` (as `evaluation_record` builds it) becomes `module.json`'s
    `evaluation[name]`, replacing an earlier record of that name, and README.md is
    written again with it. The content sha256 stays, so no version is created;
    index.json takes the new sha256 of module.json. `path` is relative to `base_dir`
    when given, as for `emit_module`. Recording the same results again writes
    nothing. Raises `ModuleError`.
    """
    _record(path, version, "evaluation", name, evaluation, base_dir)


def ablation_record(document: Mapping[str, Any], module: Path) -> dict[str, Any]:
    """What a module keeps of an ablation (`ablation.json`, grpo-ablation/1) of one of its
    versions: the method, the questions and samples, the full library's score, and each
    item's utility with its interval and verdict; the run directory relative to `module`."""
    return {
        "library": document["library"]["name"],
        "run": _relative(Path(document["run_dir"]), module),
        "reward": document["reward"],
        "data": document["data"],
        "method": document["method"],
        "exact": document["exact"],
        "confidence": document["confidence"],
        "questions": document["questions"],
        "samples": document["samples"],
        "full": document["full"],
        "items": [
            {key: item[key] for key in ("id", "kind", "estimate", "low", "high", "p_value", "verdict")}
            for item in document["items"]
        ],
    }


def record_ablation(
    path: str | os.PathLike[str],
    version: str,
    name: str,
    ablation: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
) -> None:
    """Record in version `version` of the module at `path` the ablation measured with the
    `evaluate` named `name`: `ablation` (as `ablation_record` builds it) becomes
    `module.json`'s `ablation[name]` and a table of README.md, as `record_evaluation` does."""
    _record(path, version, "ablation", name, ablation, base_dir)


def _record(
    path: str | os.PathLike[str], version: str, section: str, name: str, value: Mapping[str, Any], base_dir: Path | None
) -> None:
    """Set `module.json`'s `section[name]` of a version to `value` and write its README again."""
    root = base_dir / path if base_dir is not None else Path(path)
    read_index(root)
    with _locked(root):
        index = read_index(root)
        _sweep(root, index)
        try:
            entry = index.entry(version)
        except VersionError as exc:
            raise ModuleError(f"{root}: {exc}") from None
        module = read_version(root, index, version)
        try:
            recording = json.loads(_json_text(dict(value)))
        except (TypeError, ValueError) as exc:
            raise ModuleError(f"the results of evaluate `{name}` are not JSON: {exc}") from None
        recorded = dict(module.manifest.get(section) or {})
        if recorded.get(name) == recording:
            return
        folder = root / version
        manifest = {**module.manifest, section: {**recorded, name: recording}}
        readme = _readme(manifest, module.library, Path(path))
        manifest["files"] = {**manifest["files"], README_FILE: sha256_text(readme)}
        validate_document(manifest, "module", folder / MANIFEST_FILE)
        manifest_text = _json_text(manifest)
        atomic_write_text(folder / staged_name(README_FILE), readme)
        atomic_write_text(folder / staged_name(MANIFEST_FILE), manifest_text)
        committed = replace(entry, manifest_sha256=sha256_text(manifest_text))
        _write_index(root, ModuleIndex(index.name, tuple(committed if e is entry else e for e in index.versions)))
        _rename_staged(folder)
