"""`grpo lsp`: the language server, on pygls, over standard input and output.

Each open document is analysed (`analysis.analyse`) when it opens and, debounced by
`DEBOUNCE_SECONDS`, after it changes; its diagnostics are published, and the open
documents that import it are checked again. Requests (hover, completion,
definition, references, symbols, formatting, code lenses) are answered from the
analysis of the document's current text by `features`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from grpo_dsl._version import __version__
from grpo_dsl.language.ast import Program, Span
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.incremental import Reparser
from grpo_dsl.language.workspace import Workspace, load_sources
from grpo_dsl.lsp import features
from grpo_dsl.lsp.analysis import Analysis, analyse
from grpo_dsl.lsp.positions import Lines

__all__ = ["DEBOUNCE_SECONDS", "GrpoLanguageServer", "make_server", "serve"]

DEBOUNCE_SECONDS = 0.05
"""How long a document must stay unchanged before it is checked again."""

PROJECT_FILES = 500
"""The most `.grpo` files of the workspace folders searched for references."""

_SEVERITIES = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}
_SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "runs"})


class GrpoLanguageServer(LanguageServer):
    """The server, with the latest analysis of each open document."""

    def __init__(self) -> None:
        super().__init__("grpo", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.analyses: dict[str, Analysis] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.lenses: dict[str, tuple[int | None, list[features.Lens]]] = {}
        self.reparsers: dict[str, Reparser] = {}

    # ------------------------------------------------------------------ texts

    def lines(self, text: str) -> Lines:
        """`text` with the position encoding agreed with the client."""
        return Lines(text, self.workspace.position_codec)

    def text_of(self, path: str) -> str:
        """The text of a file: the editor's if it is open, else the disk's."""
        uri = from_fs_path(path)
        if uri is not None and uri in self.workspace.text_documents:
            return self.workspace.get_text_document(uri).source
        try:
            return Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return ""

    def location(self, path: str, span: Span) -> types.Location:
        """An LSP location of a span in the file `path`."""
        return types.Location(from_fs_path(path) or path, self.lines(self.text_of(path)).range(span))

    def open_files(self, but: str | None = None) -> dict[Path, Program | str]:
        """Every open document but `but`, by resolved path: its program when its
        current text parsed cleanly, else its text."""
        given: dict[Path, Program | str] = {}
        for uri, document in self.workspace.text_documents.items():
            if uri == but:
                continue
            last = self.analyses.get(uri)
            parsed = last.program if last is not None and last.text == document.source and last.parses else None
            given[Path(to_fs_path(uri) or uri).resolve()] = parsed or document.source
        return given

    # ------------------------------------------------------------ diagnostics

    def check(self, uri: str, *, dependents: bool) -> Analysis:
        """Analyse the document now and publish its diagnostics; with `dependents`,
        schedule the open documents that read it for a check too."""
        self.cancel(uri)
        document = self.workspace.get_text_document(uri)
        reparser = self.reparsers.setdefault(uri, Reparser())
        analysis = analyse(to_fs_path(uri) or uri, document.source, self.open_files(but=uri), document.version, reparser)
        self.analyses[uri] = analysis
        lines = self.lines(analysis.text)
        published = [self.diagnostic(lines, d) for d in analysis.own_diagnostics()]
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, published, version=document.version))
        if dependents:
            for other, known in list(self.analyses.items()):
                if other != uri and analysis.path in known.sources:
                    self.schedule(other, dependents=False)
        return analysis

    @staticmethod
    def diagnostic(lines: Lines, found: Diagnostic) -> types.Diagnostic:
        """A diagnostic as the protocol has it; the hint goes on a second line."""
        message = found.message + (f"\n{found.hint}" if found.hint else "")
        return types.Diagnostic(lines.range(found.span), message, _SEVERITIES[found.severity], found.code, source="grpo")

    def cancel(self, uri: str) -> None:
        """Drop the check scheduled for the document, if any."""
        timer = self.timers.pop(uri, None)
        if timer is not None:
            timer.cancel()

    def schedule(self, uri: str, *, dependents: bool) -> None:
        """Check the document once it has not changed for `DEBOUNCE_SECONDS`."""
        self.cancel(uri)
        self.timers[uri] = asyncio.get_running_loop().call_later(DEBOUNCE_SECONDS, self._due, uri, dependents)

    def _due(self, uri: str, dependents: bool) -> None:
        self.timers.pop(uri, None)
        if uri in self.workspace.text_documents:
            self.check(uri, dependents=dependents)

    def current(self, uri: str) -> Analysis:
        """The analysis of the document's current text, made now if it changed since
        the last one."""
        last = self.analyses.get(uri)
        document = self.workspace.get_text_document(uri)
        if last is None or last.text != document.source:
            last = self.check(uri, dependents=False)
        return last

    def close(self, uri: str) -> None:
        """Forget a closed document and clear its diagnostics."""
        self.cancel(uri)
        closed = self.analyses.pop(uri, None)
        self.lenses.pop(uri, None)
        self.reparsers.pop(uri, None)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, []))
        for other, known in list(self.analyses.items()):
            if closed is not None and closed.path in known.sources:
                self.schedule(other, dependents=False)

    # ------------------------------------------------------------- the project

    def project_files(self) -> Iterator[str]:
        """The `.grpo` files of the workspace folders (hidden folders and run
        directories skipped), at most `PROJECT_FILES`."""
        roots = [to_fs_path(folder.uri) for folder in self.workspace.folders.values()]
        if not roots and self.workspace.root_path:
            roots = [self.workspace.root_path]
        count = 0
        for root in roots:
            if root is None:
                continue
            for folder, subfolders, files in os.walk(root):
                subfolders[:] = sorted(s for s in subfolders if not s.startswith(".") and s not in _SKIPPED_FOLDERS)
                for name in sorted(files):
                    if name.endswith(".grpo"):
                        yield os.path.join(folder, name)
                        count += 1
                        if count >= PROJECT_FILES:
                            return

    def project_workspaces(self, but: str) -> Iterator[Workspace]:
        """The workspace of every other file of the project that loads."""
        given = self.open_files()
        for path in dict.fromkeys([*(to_fs_path(uri) for uri in self.workspace.text_documents), *self.project_files()]):
            if path is None or Path(path).resolve() == Path(but).resolve():
                continue
            workspace, _, _ = load_sources(path, given)
            if workspace is not None:
                yield workspace

    def code_lenses(self, uri: str) -> list[features.Lens]:
        """The lenses of the document's current version (compiling it once per version)."""
        analysis = self.current(uri)
        cached = self.lenses.get(uri)
        if cached is None or cached[0] != analysis.version:
            cached = (analysis.version, features.code_lenses(analysis))
            self.lenses[uri] = cached
        return cached[1]


def _markdown(text: str) -> types.MarkupContent:
    return types.MarkupContent(types.MarkupKind.Markdown, text)


def make_server() -> GrpoLanguageServer:
    """A server with every feature registered."""
    server = GrpoLanguageServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: GrpoLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.check(params.text_document.uri, dependents=True)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: GrpoLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, dependents=True)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: GrpoLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.close(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: GrpoLanguageServer, params: types.HoverParams) -> types.Hover | None:
        analysis = ls.current(params.text_document.uri)
        lines = ls.lines(analysis.text)
        found = features.hover(analysis, lines.offset(params.position))
        return types.Hover(_markdown(found[0]), lines.range(found[1])) if found else None

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["=", "[", ",", "{", " ", "("])
    )
    def completion(ls: GrpoLanguageServer, params: types.CompletionParams) -> types.CompletionList:
        analysis = ls.current(params.text_document.uri)
        items = features.completions(analysis, ls.lines(analysis.text).offset(params.position))
        return types.CompletionList(is_incomplete=False, items=items)

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: GrpoLanguageServer, params: types.DefinitionParams) -> types.Location | None:
        analysis = ls.current(params.text_document.uri)
        found = features.definition(analysis, ls.lines(analysis.text).offset(params.position))
        return ls.location(*found) if found else None

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    def references(ls: GrpoLanguageServer, params: types.ReferenceParams) -> list[types.Location]:
        analysis = ls.current(params.text_document.uri)
        offset = ls.lines(analysis.text).offset(params.position)
        others = ls.project_workspaces(but=analysis.path)
        spans = features.references(analysis, offset, others, params.context.include_declaration)
        return [ls.location(span.path, span) for span in spans]

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(ls: GrpoLanguageServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
        analysis = ls.current(params.text_document.uri)
        return features.symbols(analysis, ls.lines(analysis.text).range)

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: GrpoLanguageServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
        analysis = ls.current(params.text_document.uri)
        text = features.formatted(analysis)
        if text is None:
            return None
        return [types.TextEdit(ls.lines(analysis.text).whole(), text)] if text != analysis.text else []

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    def code_lens(ls: GrpoLanguageServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        uri = params.text_document.uri
        lines = ls.lines(ls.current(uri).text)
        return [
            types.CodeLens(lines.range(lens.span), types.Command(lens.title, lens.command, arguments=list(lens.arguments)))
            for lens in ls.code_lenses(uri)
        ]

    return server


def serve() -> None:
    """Run the language server over standard input and output until the client exits."""
    make_server().start_io()
