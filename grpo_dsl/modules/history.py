"""The history of a prompt module: show a version, list the versions, diff two, blame one experience.

Each question has a function returning data (`module_log`, `diff_modules`, `blame`)
and one that formats it for people (`format_show`, `format_log`, `format_diff`,
`format_blame`); the `grpo module` commands print the latter.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo_dsl.library import Demo, Experience, ProvenanceEntry
from grpo_dsl.library.diff import marked_word_diff
from grpo_dsl.modules.loader import IndexEntry, ModuleError, PromptModule, read_index
from grpo_dsl.runs.directory import RunDirectory, RunError

__all__ = [
    "Blame",
    "BlameEvent",
    "ExperienceDiff",
    "GroupEvidence",
    "Modified",
    "ModuleDiff",
    "blame",
    "diff_experiences",
    "diff_modules",
    "format_blame",
    "format_diff",
    "format_log",
    "format_show",
    "module_log",
    "parse_reference",
]


def parse_reference(reference: str) -> tuple[Path, str | None]:
    """Split `PATH@VERSION` (VERSION a number or a range) into the path and the version (None if absent)."""
    path, at, version = reference.rpartition("@")
    if not at or not path:
        return Path(reference), None
    return Path(path), version or None


def module_log(path: str | os.PathLike[str]) -> tuple[IndexEntry, ...]:
    """Every version of the module at `path`, oldest first."""
    return read_index(Path(path)).versions


# ---------------------------------------------------------------------- diff


@dataclass(frozen=True, slots=True)
class Modified:
    """An experience whose text changed."""

    id: str
    old: str
    new: str

    @property
    def words(self) -> str:
        return marked_word_diff(self.old, self.new)


@dataclass(frozen=True, slots=True)
class ExperienceDiff:
    """How one list of experiences (`{"id", "text"}`, in prompt order) became another."""

    added: tuple[Mapping[str, str], ...]
    removed: tuple[Mapping[str, str], ...]
    modified: tuple[Modified, ...]
    order: tuple[str, ...]
    """The ids of the result, in prompt order."""

    def to_json(self) -> dict[str, Any]:
        return {
            "added": [dict(e) for e in self.added],
            "removed": [dict(e) for e in self.removed],
            "modified": [{"id": m.id, "old": m.old, "new": m.new} for m in self.modified],
            "order": list(self.order),
        }

    def apply(self, experiences: Sequence[Mapping[str, str]]) -> tuple[dict[str, str], ...]:
        """The experiences this diff turns `experiences` into."""
        removed = {e["id"] for e in self.removed}
        texts = {e["id"]: e["text"] for e in experiences if e["id"] not in removed}
        texts.update({m.id: m.new for m in self.modified})
        texts.update({e["id"]: e["text"] for e in self.added})
        return tuple({"id": i, "text": texts[i]} for i in self.order)


def diff_experiences(before: Sequence[Mapping[str, str]], after: Sequence[Mapping[str, str]]) -> ExperienceDiff:
    """The experiences added, removed and modified (matched by id) from `before` to `after`."""
    old = {e["id"]: e["text"] for e in before}
    new = {e["id"]: e["text"] for e in after}
    return ExperienceDiff(
        added=tuple({"id": i, "text": t} for i, t in new.items() if i not in old),
        removed=tuple({"id": i, "text": t} for i, t in old.items() if i not in new),
        modified=tuple(Modified(i, old[i], t) for i, t in new.items() if i in old and old[i] != t),
        order=tuple(new),
    )


@dataclass(frozen=True, slots=True)
class ModuleDiff:
    """Two versions of a module compared: the templates, the model and the experiences."""

    before: PromptModule
    after: PromptModule
    experiences: ExperienceDiff

    @property
    def templates_changed(self) -> tuple[str, ...]:
        """Which templates differ: `system`, `user`, both or neither."""
        a, b = self.before.templates, self.after.templates
        return tuple(name for name in ("system", "user") if getattr(a, name) != getattr(b, name))

    @property
    def reordered(self) -> bool:
        """Whether the experiences both versions have appear in another order."""
        survivors = [e.id for e in self.before.experiences if e.id in set(self.experiences.order)]
        return [i for i in self.experiences.order if i in set(survivors)] != survivors

    def to_json(self) -> dict[str, Any]:
        return {
            "before": _version_json(self.before),
            "after": _version_json(self.after),
            "experiences": self.experiences.to_json(),
            "templates_changed": list(self.templates_changed),
            "reordered": self.reordered,
        }


def _version_json(module: PromptModule) -> dict[str, str]:
    return {"path": str(module.path), "name": module.name, "version": module.version}


def diff_modules(before: PromptModule, after: PromptModule) -> ModuleDiff:
    """Compare two loaded versions (of one module or of two)."""
    return ModuleDiff(before, after, diff_experiences(before.library.listed(), after.library.listed()))


# ---------------------------------------------------------------------- blame


@dataclass(frozen=True, slots=True)
class GroupEvidence:
    """One group behind a change, as the run recorded it: its question, rewards and proposals."""

    group: str
    question: str | None
    rewards: tuple[float | None, ...]
    """One per rollout; None for a rollout that failed."""
    kept: bool
    skip_reason: str | None
    proposals: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class BlameEvent:
    """One entry of an experience's provenance, with the text it left and the groups' evidence."""

    entry: ProvenanceEntry
    text: str | None
    """The experience's text after this event (None once deleted or evicted)."""
    evidence: tuple[GroupEvidence, ...]


@dataclass(frozen=True, slots=True)
class Blame:
    """Where an experience of a module version came from and how it changed."""

    module: PromptModule
    experience: Experience
    live: bool
    events: tuple[BlameEvent, ...]
    run: Path | None
    """The run directory the version came from, when it still exists."""

    def to_json(self) -> dict[str, Any]:
        return {
            "module": _version_json(self.module),
            "experience": self.experience.to_json(),
            "live": self.live,
            "run": str(self.run) if self.run is not None else None,
            "events": [
                {
                    "entry": event.entry.to_json(),
                    "text": event.text,
                    "evidence": [
                        {
                            "group": g.group,
                            "question": g.question,
                            "rewards": list(g.rewards),
                            "kept": g.kept,
                            "skip_reason": g.skip_reason,
                            "proposals": [dict(p) for p in g.proposals],
                        }
                        for g in event.evidence
                    ],
                }
                for event in self.events
            ],
        }


def _find(module: PromptModule, experience_id: str) -> tuple[Experience, bool]:
    """The experience (or demo, as an item whose text is its answer) with this id, and whether it is live."""
    library = module.library

    def items(demos: Sequence[Demo]) -> list[Experience]:
        return [Experience(d.id, d.example.answer, d.provenance, d.created_step) for d in demos]

    for found_in, live in (
        (library.experiences, True),
        (items(library.demos), True),
        (library.history[::-1], False),
        (items(library.demo_history)[::-1], False),
    ):
        found = next((e for e in found_in if e.id == experience_id), None)
        if found is not None:
            return found, live
    if experience_id.startswith("D"):
        demos = ", ".join(d.id for d in library.demos) or "none"
        raise ModuleError(f"{module.name}@{module.version} has no demo {experience_id} (its demos: {demos})")
    ids = ", ".join(library.ids) or "none"
    raise ModuleError(f"{module.name}@{module.version} has no experience {experience_id} (its experiences: {ids})")


def _texts_after(experience: Experience) -> list[str | None]:
    versions = [e.replaced for e in experience.provenance if e.op == "modify"] + [experience.text]
    texts: list[str | None] = []
    position = 0
    for entry in experience.provenance:
        if entry.op in ("delete", "evict"):
            texts.append(None)
            continue
        position += entry.op == "modify"
        texts.append(versions[position])
    return texts


def _run_dir(module: PromptModule) -> Path | None:
    run = module.created_from.get("run")
    if not run:
        return None
    path = (module.path / run).resolve()
    return path if (path / "steps").is_dir() else None


def _step_records(run: RunDirectory, step: int, name: str) -> dict[str, Mapping[str, Any]]:
    try:
        records = run.read_step(step, name)
    except RunError:
        return {}
    return {r["group"]: r for r in records if isinstance(r, Mapping) and "group" in r}


def _evidence(run_path: Path | None, entry: ProvenanceEntry) -> tuple[GroupEvidence, ...]:
    if run_path is None or not entry.groups:
        return ()
    run = RunDirectory(run_path)
    rewards = _step_records(run, entry.step, "rewards")
    proposals = _step_records(run, entry.step, "proposals")
    rollouts = _step_records(run, entry.step, "rollouts")
    found = []
    for group in entry.groups:
        if group not in rewards:
            continue
        record = rewards[group]
        found.append(
            GroupEvidence(
                group=group,
                question=rollouts.get(group, {}).get("question"),
                rewards=tuple(record.get("rewards", ())),
                kept=bool(record.get("kept")),
                skip_reason=record.get("skip_reason"),
                proposals=tuple(proposals.get(group, {}).get("operations", ())),
            )
        )
    return tuple(found)


def blame(module: PromptModule, experience_id: str) -> Blame:
    """The steps, groups, rewards and rationales that created and changed an experience.

    The provenance comes from the module's library; the rewards, questions and
    per-group proposals from the run directory named in module.json, when it exists.
    """
    experience, live = _find(module, experience_id.strip().strip("[]").upper())
    run = _run_dir(module)
    events = tuple(
        BlameEvent(entry, text, _evidence(run, entry))
        for entry, text in zip(experience.provenance, _texts_after(experience))
    )
    return Blame(module, experience, live, events, run)


# ---------------------------------------------------------------------- for people


def _origin(created_from: Mapping[str, Any]) -> str:
    if not created_from.get("run"):
        return "not from a run"
    step = created_from.get("step")
    return f"run {created_from['run']}" + (f", step {step}" if step is not None else "")


def format_show(module: PromptModule) -> str:
    """A version described: its origin, model, templates' fields and experiences."""
    manifest = module.manifest
    change = manifest["change"]
    learner = manifest["learner"]["name"] if manifest["learner"] else "unknown"
    temperature = manifest["temperature"] if manifest["temperature"] is not None else "unknown"
    lines = [
        f"{module.name} {module.version}" + (f" (parent {module.parent}, {change['bump']} change)" if module.parent else " (first version)"),
        f"model: {module.model}; learner: {learner}; temperature: {temperature}",
        f"from: {_origin(module.created_from)}"
        + (f", learn {module.created_from['learn']}" if module.created_from.get("learn") else ""),
        f"plan sha256: {module.created_from.get('plan_sha256') or 'unknown'}",
        f"content sha256: {module.sha256}",
        f"placement: {manifest['placement']}; fields: {', '.join(module.fields) or 'none'}; formats: {', '.join(manifest['formats'])}",
    ]
    for name, record in sorted((module.evaluation or {}).items()):
        lines += _evaluation_lines(name, record)
    lines.append(f"experiences ({len(module.experiences)}):")
    lines += [f"  [{e.id}] {e.text}" for e in module.experiences] or ["  (none)"]
    if module.demos:
        lines.append(f"demos ({len(module.demos)}, placed as {module.templates.demos}):")
        lines += [f"  [{d.id}] {d.listing()}" for d in module.demos]
    return "\n".join(lines)


def _interval(value: Mapping[str, float], sign: str = "") -> str:
    return f"{value['estimate']:{sign}.3g} [{value['low']:{sign}.3g}, {value['high']:{sign}.3g}]"


def _evaluation_lines(name: str, record: Mapping[str, Any]) -> list[str]:
    confidence = round(100 * record["confidence"])
    lines = [
        f"evaluation {name}: {record['questions']} questions x {record['samples']} samples, reward {record['reward']}, "
        f"{confidence} % intervals; run {record['run']}",
        "  " + "; ".join(f"{metric} {_interval(value)}" for metric, value in record["metrics"].items()),
    ]
    if record["comparisons"]:
        differences = (
            f"{c['metric']} {_interval({'estimate': c['difference'], 'low': c['low'], 'high': c['high']}, '+')} (p = {c['p_value']:.3g})"
            for c in record["comparisons"]
        )
        lines.append(f"  minus {record['baseline']}: " + "; ".join(differences))
    return lines


def format_log(entries: Sequence[IndexEntry]) -> str:
    """Every version, newest first, one line each."""
    lines = []
    for entry in reversed(entries):
        count = f"{entry.experiences} experience{'' if entry.experiences == 1 else 's'}"
        lines.append(f"{entry.version:<9} {entry.bump:<7} {entry.created}  {count:<15} {_origin(entry.created_from)}  {entry.sha256[:12]}")
    return "\n".join(lines) if lines else "no versions yet"


def format_diff(diff: ModuleDiff) -> str:
    """The templates, model and experiences that differ, with a word diff for each edited text."""
    before, after = diff.before, diff.after
    lines = [f"{before.name} {before.version} -> {after.name} {after.version}"]
    for name in diff.templates_changed:
        lines.append(f"template {name}: changed")
        old = (getattr(before.templates, name) or "").splitlines()
        new = (getattr(after.templates, name) or "").splitlines()
        lines += ["  " + line for line in difflib.unified_diff(old, new, "before", "after", lineterm="", n=1)]
    if before.model != after.model:
        lines.append(f"model: {before.model} -> {after.model}")
    changes = diff.experiences
    lines += [f"+ [{e['id']}] {e['text']}" for e in changes.added]
    lines += [f"- [{e['id']}] {e['text']}" for e in changes.removed]
    lines += [f"~ [{m.id}] {m.words}" for m in changes.modified]
    if diff.reordered:
        lines.append("experiences reordered: " + " ".join(changes.order))
    if len(lines) == 1:
        lines.append("no differences")
    return "\n".join(lines)


def format_blame(result: Blame) -> str:
    """The life of one experience, event by event, with the groups and rewards behind each."""
    module, experience = result.module, result.experience
    state = "in the prompt" if result.live else "retired"
    lines = [f"{experience.id} in {module.name} {module.version} ({state}): {experience.text}"]
    if result.run is None:
        lines.append("(the run directory of this version is not available: provenance only)")
    for event in result.events:
        entry = event.entry
        groups = f" by groups {', '.join(entry.groups)}" if entry.groups else ""
        lines.append(f"step {entry.step}: {entry.op}{groups}")
        if entry.rationale:
            lines.append(f"  why: {entry.rationale}")
        if entry.op == "modify" and entry.replaced is not None and event.text is not None:
            lines.append(f"  text: {marked_word_diff(entry.replaced, event.text)}")
        elif event.text is not None and entry.op == "add":
            lines.append(f"  text: {event.text}")
        for evidence in event.evidence:
            rewards = ", ".join("failed" if r is None else f"{r:.3g}" for r in evidence.rewards)
            kept = "kept" if evidence.kept else f"skipped: {evidence.skip_reason}"
            lines.append(f"  group {evidence.group} (question {evidence.question}): rewards {rewards}; {kept}")
            for proposal in evidence.proposals:
                text = f' "{proposal["text"]}"' if proposal.get("text") else ""
                target = f" {proposal['id']}" if proposal.get("id") else ""
                why = f": {proposal['rationale']}" if proposal.get("rationale") else ""
                lines.append(f"    proposed {proposal.get('op')}{target}{text}{why}")
    return "\n".join(lines)
