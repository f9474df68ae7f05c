"""Load a program with everything it imports into one `Workspace`.

`load_workspace("programs/support.grpo")` parses the file and, recursively, every
`import` (paths relative to the importing file), reporting a missing file or an
import cycle with the place of each import. All declarations of all files share
one namespace; duplicate names are reported by the checks (`grpo_dsl.language.checks`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from grpo_dsl.language.ast import Decl, Import, Program
from grpo_dsl.language.diagnostics import Diagnostic, ProgramError
from grpo_dsl.language.parser import parse, parse_file

__all__ = ["Workspace", "build_workspace", "load_workspace", "load_sources"]


@dataclass(frozen=True)
class Workspace:
    """A main program and the files it imports, with one namespace of declarations.

    `files` maps each file's path (as displayed in diagnostics) to its program, main
    file first; `declarations` holds, for each name, its first declaration in that
    order; `base_dir` is the folder of the main file.
    """

    main: str
    base_dir: str
    files: dict[str, Program]
    declarations: dict[str, Decl]
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def program(self) -> Program:
        """The main program."""
        return self.files[self.main]

    def all_declarations(self) -> Iterable[Decl]:
        """Every declaration of every file, duplicates included, main file first."""
        for program in self.files.values():
            yield from program.declarations

    def folder_of(self, decl: Decl) -> Path:
        """The folder that paths written in `decl` are relative to."""
        return Path(os.path.dirname(decl.span.path) or ".") if decl.span.path in self.files else Path(self.base_dir)


def build_workspace(programs: Iterable[Program], main: str | None = None) -> Workspace:
    """A workspace over already parsed programs (the first is the main one, unless
    `main` names another)."""
    files = {program.path: program for program in programs}
    main = main if main is not None else next(iter(files), "<program>")
    ordered = {main: files[main], **files} if main in files else files
    declarations: dict[str, Decl] = {}
    for program in ordered.values():
        for decl in program.declarations:
            declarations.setdefault(decl.name, decl)
    sources = {path: program.source for path, program in ordered.items()}
    return Workspace(main, os.path.dirname(main) or ".", ordered, declarations, sources)


def _at_import(diagnostic: Diagnostic, via: Import | None) -> Diagnostic:
    """A problem with a whole imported file (no line of its own) points at the import."""
    if via is None or diagnostic.span.line > 0:
        return diagnostic
    return replace(diagnostic, span=via.path.span)


@dataclass
class _Loader:
    open_files: Mapping[Path, Program | str] = field(default_factory=dict)
    programs: dict[str, Program] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    visiting: list[tuple[Path, str, Import | None]] = field(default_factory=list)
    loaded: dict[Path, str] = field(default_factory=dict)

    def load(self, path: str, via: Import | None) -> None:
        key = Path(path).resolve()
        stack = [entry[0] for entry in self.visiting]
        if key in stack and via is not None:
            self._cycle(stack.index(key), via)
            return
        if key in self.loaded:
            return
        try:
            program = self.read(key, path)
        except ProgramError as error:
            self.diagnostics.extend(_at_import(d, via) for d in error.diagnostics)
            self.sources.update(error.sources)
            self.loaded[key] = path
            return
        self.loaded[key] = path
        self.programs[path] = program
        self.sources[path] = program.source
        self.visiting.append((key, path, via))
        for item in program.imports:
            target = os.path.normpath(os.path.join(os.path.dirname(path), item.path.value))
            if not os.path.exists(target) and Path(target).resolve() not in self.open_files:
                self.diagnostics.append(
                    Diagnostic(
                        "E0101",
                        "error",
                        f"cannot find the imported file `{item.path.value}`",
                        item.path.span,
                        f"imports are relative to the importing file: looked for `{target}`",
                    )
                )
                continue
            self.load(target, item)
        self.visiting.pop()

    def read(self, key: Path, path: str) -> Program:
        """The program at `path`: given in `open_files`, or read from the disk."""
        given = self.open_files.get(key)
        if isinstance(given, Program):
            return given
        return parse(given, path) if given is not None else parse_file(path)

    def _cycle(self, start: int, closing: Import) -> None:
        chain = [entry[1] for entry in self.visiting[start:]] + [self.visiting[start][1]]
        opening = self.visiting[start + 1][2] if start + 1 < len(self.visiting) else closing
        assert opening is not None
        where = f"{opening.span.path}:{opening.span.line}"
        self.diagnostics.append(
            Diagnostic(
                "E0102",
                "error",
                f"import cycle: {' -> '.join(f'`{p}`' for p in chain)}",
                closing.path.span,
                f"the cycle starts with the import at {where}; move the shared declarations into a file both import",
            )
        )


def load_sources(
    path: str, open_files: Mapping[Path, Program | str] | None = None
) -> tuple[Workspace | None, list[Diagnostic], dict[str, str]]:
    """Like `load_workspace`, and also the text of every file read (for rendering
    diagnostics even when a file failed to parse).

    `open_files` holds, by resolved path, programs or texts to use instead of the
    files on disk: an editor's unsaved buffers. A program given there must have
    been parsed without a problem, with the path this loader reads it under.
    """
    loader = _Loader(open_files or {})
    loader.load(path, None)
    if loader.diagnostics or path not in loader.programs:
        return None, loader.diagnostics, loader.sources
    workspace = build_workspace(loader.programs.values(), main=path)
    return workspace, [], loader.sources


def load_workspace(path: str) -> tuple[Workspace | None, list[Diagnostic]]:
    """Parse the program at `path` and every file it imports, recursively.

    Returns the workspace, or None with every syntax error, missing import and import
    cycle found (each diagnostic points at the `import` line that caused it).
    """
    workspace, diagnostics, _ = load_sources(path)
    return workspace, diagnostics
