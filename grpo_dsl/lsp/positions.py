"""Between the compiler's places and the editor's.

Spans count lines from 1 and columns from 1 in characters, as Lark does (a line
ends at `\\n`); the Language Server Protocol counts both from 0, and columns in the
code units the client chose (UTF-16 unless it asked for another). `Lines` converts
one text's places both ways.
"""

from __future__ import annotations

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from grpo_dsl.language.ast import Span

__all__ = ["Lines"]


class Lines:
    """The lines of one text, to convert spans and offsets to LSP positions and back."""

    def __init__(self, text: str, codec: PositionCodec) -> None:
        self.text = text
        self.codec = codec
        self.lines = text.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def position(self, line: int, column: int) -> types.Position:
        """The LSP position of 1-based `line` and `column` (in characters)."""
        if line < 1:
            return types.Position(0, 0)
        if line > len(self.lines):
            return types.Position(len(self.lines) - 1, self.codec.client_num_units(self.lines[-1]))
        text = self.lines[line - 1]
        return types.Position(line - 1, self.codec.client_num_units(text[: max(column - 1, 0)]))

    def range(self, span: Span) -> types.Range:
        """The LSP range of a span of this text."""
        return types.Range(self.position(span.line, span.column), self.position(span.end_line, span.end_column))

    def offset(self, position: types.Position) -> int:
        """The character offset into the text of an LSP position (clamped to the text)."""
        if position.line >= len(self.lines):
            return len(self.text)
        text, units, column = self.lines[position.line], 0, 0
        while column < len(text) and units < position.character:
            units += self.codec.client_num_units(text[column])
            column += 1
        return self.starts[position.line] + column

    def whole(self) -> types.Range:
        """The range of the whole text."""
        return types.Range(types.Position(0, 0), self.position(len(self.lines), len(self.lines[-1]) + 1))
