"""Diagnostics are data; `render_text` and `render_json` turn them into output.

A `Diagnostic` carries a stable code from `CODES`, a severity, a message, the span
it points at, and an optional hint printed under the caret. Colour is never part of
a diagnostic: the CLI asks `render_text(..., color=True)` on a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.language.ast import Span

__all__ = [
    "CODES",
    "Diagnostic",
    "ProgramError",
    "Severity",
    "render_text",
    "render_json",
]

Severity = Literal["error", "warning"]

# The registry of diagnostic codes. Codes never change meaning; new ones are added.
# Each is documented in docs/errors.md. Ranges:
#   E00xx syntax and lexical     E01xx files, imports, duplicates
#   E02xx references             E03xx attributes, types and ranges
#   E04xx templates and data     E05xx semantic rules of learning/evaluation
#   W0xxx warnings
CODES: dict[str, str] = {
    "E0001": "syntax error",
    "E0002": "file is not valid UTF-8",
    "E0003": "malformed escape in a string",
    "E0004": "missing language header",
    "E0005": "unknown language version",
    "E0006": "cannot read file",
    "E0008": "reserved word used as a name",
    "E0009": "number out of range",
    "E0010": "program nested too deeply",
    # files, imports, duplicates
    "E0101": "cannot find an imported file",
    "E0102": "import cycle",
    "E0103": "duplicate declaration name",
    "E0104": "file not found",
    "E0105": "python file not found",
    "E0106": "malformed python reference",
    "E0107": "two tool files with the same name",
    "E0108": "a Python tool whose function cannot be offered",
    "E0109": "a tool that is neither or both of a function and an MCP server",
    "E0110": "an MCP server without one way to reach it",
    "E0111": "a response schema that is not a JSON schema",
    # references
    "E0201": "reference to a declaration of the wrong kind",
    "E0202": "unknown name in a reward expression",
    "E0203": "unknown declaration",
    "E0204": "unknown function",
    "E0205": "wrong number of arguments",
    "E0206": "reward cycle",
    "E0207": "misuse of env()",
    "E0208": "a tool called `python`",
    # attributes, types and ranges
    "E0301": "unknown attribute",
    "E0302": "missing required attribute",
    "E0303": "wrong type",
    "E0304": "value out of range",
    "E0305": "duplicate attribute",
    "E0306": "value not allowed",
    "E0307": "unknown metric",
    # templates and data
    "E0401": "template syntax error",
    "E0402": "template variable is not a dataset field",
    "E0403": "malformed dataset file",
    "E0404": "field mapped to a missing column",
    "E0405": "template past the render budget",
    "E0406": "dataset without rows",
    "E0407": "two dataset rows with one id",
    # semantic rules of learning and evaluation
    "E0501": "group too small to compare",
    "E0502": "reward reads the answer without ground truth",
    "E0503": "metric needs more samples",
    "E0504": "evaluation without a reward",
    "E0505": "reference demos without ground truth",
    "E0506": "pruning without a validation set",
    # warnings
    "W0001": "unused declaration",
    "W0002": "identical rollouts",
    "W0003": "validation set is the training set",
    "W0004": "secret written in the source",
    "W0005": "code runs without isolation",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a program, pointing at a span of its source."""

    code: str
    severity: Severity
    message: str
    span: Span
    hint: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "path": self.span.path,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "hint": self.hint,
        }


class ProgramError(GrpoError):
    """A program failed a phase; `diagnostics` holds every problem found in it."""

    def __init__(self, diagnostics: Iterable[Diagnostic], sources: Mapping[str, str] | None = None):
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        self.sources: dict[str, str] = dict(sources or {})
        super().__init__(render_text(self.diagnostics, self.sources))


_COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "gutter": "\x1b[1;34m", "reset": "\x1b[0m"}


def _render_one(d: Diagnostic, source: str | None, color: bool) -> str:
    def paint(text: str, what: str) -> str:
        return f"{_COLORS[what]}{text}{_COLORS['reset']}" if color else text

    s = d.span
    head = f"{s.path}:{s.line}:{s.column}: {paint(f'{d.severity}[{d.code}]', d.severity)}: {d.message}"
    lines = source.splitlines() if source is not None else []
    if not (1 <= s.line <= len(lines)):
        return head + (f"\n  = hint: {d.hint}" if d.hint else "")
    text = lines[s.line - 1].expandtabs(1)
    width = len(str(s.line))
    start = max(s.column, 1)
    stop = s.end_column if s.end_line == s.line and s.end_column > start else len(text) + 1
    carets = "^" * max(1, min(stop, len(text) + 1) - start)
    gutter = paint(" " * width + " |", "gutter")
    out = [
        head,
        gutter,
        f"{paint(str(s.line) + ' |', 'gutter')} {text}",
        f"{gutter} {' ' * (start - 1)}{paint(carets, d.severity)}" + (f" {d.hint}" if d.hint else ""),
    ]
    return "\n".join(out)


def render_text(
    diagnostics: Iterable[Diagnostic], sources: Mapping[str, str] | None = None, *, color: bool = False
) -> str:
    """Render diagnostics as rustc-style text: header, source line, caret and hint."""
    sources = sources or {}
    return "\n\n".join(_render_one(d, sources.get(d.span.path), color) for d in diagnostics)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    """Render diagnostics as a JSON array (the `--format json` output)."""
    return json.dumps([d.to_json() for d in diagnostics], indent=2, sort_keys=True)
