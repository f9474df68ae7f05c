"""One check of an open document: what the editor shows, and what it asks about.

`analyse(path, text, open_files)` parses the document as far as it parses
(`parse_partial`, or a `Reparser` that parses again only what an edit changed), loads what it imports (open documents as the editor has them,
other files from disk) and, when the document parses, runs the same checks as
`grpo check`. The `Analysis` keeps the partial program and the workspace for
hover, completion and navigation, and every diagnostic for the editor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from grpo_dsl.language.ast import Import, Program
from grpo_dsl.language.checks import check_path
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.incremental import Reparser
from grpo_dsl.language.parser import parse_partial
from grpo_dsl.language.workspace import Workspace, load_sources

__all__ = ["Analysis", "analyse", "import_target"]


@dataclass(frozen=True)
class Analysis:
    """A document checked at one version.

    `program` is the document as far as it parses (None when nothing could be
    recovered); `workspace` the document with its imports (None when they do not
    load); `diagnostics` what `grpo check` reports, in every file it read;
    `sources` the text of each of those files.
    """

    path: str
    text: str
    version: int | None
    program: Program | None
    workspace: Workspace | None
    diagnostics: tuple[Diagnostic, ...]
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def parses(self) -> bool:
        """True when the document itself has no syntax problem."""
        return not any(d.span.path == self.path and d.code.startswith("E00") for d in self.diagnostics)

    def own_diagnostics(self) -> list[Diagnostic]:
        """The diagnostics to show in this document: its own, and for each import
        through which a file with problems is reached, one that sums them up."""
        own = [d for d in self.diagnostics if d.span.path == self.path]
        elsewhere: dict[Import, list[Diagnostic]] = {}
        for diagnostic in self.diagnostics:
            if diagnostic.span.path != self.path and (via := self._import_reaching(diagnostic.span.path)) is not None:
                elsewhere.setdefault(via, []).append(diagnostic)
        for via, found in elsewhere.items():
            errors = sum(d.severity == "error" for d in found)
            first = found[0]
            what = f"{errors} error{'s' if errors != 1 else ''}" if errors else f"{len(found)} warning{'s' if len(found) != 1 else ''}"
            message = f"`{via.path.value}` has {what}, first at line {first.span.line}: {first.message}"
            own.append(Diagnostic(first.code, "error" if errors else "warning", message, via.path.span, first.hint))
        return own

    def _import_reaching(self, path: str) -> Import | None:
        """The import of this document through which the file `path` was read."""
        if self.program is None:
            return None
        for item in self.program.imports:
            seen: set[str] = set()
            pending = [import_target(self.path, item)]
            while pending:
                current = pending.pop()
                if current == path:
                    return item
                if current in seen:
                    continue
                seen.add(current)
                program = self._program_of(current)
                pending.extend(import_target(current, inner) for inner in (program.imports if program else ()))
        return None

    def _program_of(self, path: str) -> Program | None:
        if self.workspace is not None and path in self.workspace.files:
            return self.workspace.files[path]
        text = self.sources.get(path)
        return parse_partial(text, path)[0] if text is not None else None


def import_target(importer: str, item: Import) -> str:
    """The path of the file an `import` of the file `importer` reads, as the
    workspace loader names it."""
    return os.path.normpath(os.path.join(os.path.dirname(importer), item.path.value))


def analyse(
    path: str,
    text: str,
    open_files: Mapping[Path, Program | str],
    version: int | None = None,
    reparser: Reparser | None = None,
) -> Analysis:
    """Check the document at `path` whose text is `text`; `open_files` gives the
    other open documents (programs or texts, by resolved path) in place of the disk.
    A `reparser` kept for the document parses only what changed since its last text."""
    program, problems = reparser.parse(text, path) if reparser is not None else parse_partial(text, path)
    given = dict(open_files)
    if program is not None:
        given[Path(path).resolve()] = program
    if problems:
        # As `grpo check`: the problems of the parse stop before the checks. The
        # imports are still loaded, for completion and navigation.
        workspace, _, sources = load_sources(path, given) if program is not None else (None, [], {})
        return Analysis(path, text, version, program, workspace, problems, {**sources, path: text})
    result = check_path(path, given)
    return Analysis(path, text, version, program, result.workspace, result.diagnostics, {**result.sources, path: text})
