"""Parse a file again after an edit, reusing the declarations that did not change.

An editor parses a file at every pause in typing, and most of it is what it was
before. `Reparser.parse(text, path)` cuts the text before each declaration that
starts at the first column of a line; a piece seen in the last parse keeps its
declarations, moved to their new lines and offsets, and only the pieces that are
new are parsed. The result is always that of `parse_partial(text, path)`: when a
piece has a problem, or does not stand alone as declarations only, the whole text
is parsed instead.

>>> reparser = Reparser()
>>> first, _ = reparser.parse('grpo 1\\nmodel m { name = "x" }\\n', "p.grpo")
>>> second, _ = reparser.parse('grpo 1\\n\\nmodel m { name = "x" }\\n', "p.grpo")
>>> second.declarations[0].span.line, second == first
(3, True)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TypeVar

from grpo_dsl.language.ast import DECLARATION_KINDS, Comment, Decl, Program, Span
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.parser import parse_partial

__all__ = ["Reparser"]

_PIECE = re.compile(rf"^(?:{'|'.join(DECLARATION_KINDS)})[ \t]+[A-Za-z_]", re.M)
Node = TypeVar("Node")


def _moved(node: Node, lines: int, offset: int) -> Node:
    """`node` with every span in it moved down `lines` lines and on `offset`
    characters (a piece starts a line, so columns stay)."""
    if isinstance(node, Span):
        return Span(node.path, node.line + lines, node.column, node.end_line + lines, node.end_column,  # type: ignore[return-value]
                    node.start + offset, node.end + offset)
    if isinstance(node, tuple):
        return tuple(_moved(item, lines, offset) for item in node)  # type: ignore[return-value]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {
            f.name: _moved(value, lines, offset)
            for f in dataclasses.fields(node)
            if isinstance(value := getattr(node, f.name), Span | tuple) or dataclasses.is_dataclass(value)
        }
        return dataclasses.replace(node, **changes)
    return node


@dataclass(frozen=True, slots=True)
class _Piece:
    """The declarations and comments of one piece of text, parsed on its own."""

    declarations: tuple[Decl, ...]
    comments: tuple[Comment, ...]


@dataclass
class Reparser:
    """Parses one file again and again, keeping the pieces of its last parse."""

    pieces: dict[str, _Piece | None] = field(default_factory=dict)
    placed: dict[tuple[str, int, int], _Piece] = field(default_factory=dict)

    def parse(self, text: str, path: str) -> tuple[Program | None, tuple[Diagnostic, ...]]:
        """What `parse_partial(text, path)` returns."""
        starts = [0, *(m.start() for m in _PIECE.finditer(text) if m.start() > 0)]
        head_end = starts[1] if len(starts) > 1 else len(text)
        head, head_problems = parse_partial(text[:head_end], path)
        if head is None or head_problems:
            return parse_partial(text, path)
        pieces: dict[str, _Piece | None] = {}
        placed: dict[tuple[str, int, int], _Piece] = {}
        declarations: list[Decl] = list(head.declarations)
        comments: list[Comment] = list(head.comments)
        line = text.count("\n", 0, head_end)
        for start, end in zip(starts[1:], [*starts[2:], len(text)]):
            piece_text = text[start:end]
            piece = self._piece(piece_text, path, pieces)
            if piece is None:
                return parse_partial(text, path)
            key = (piece_text, line, start)
            moved = self.placed.get(key) or _Piece(_moved(piece.declarations, line, start), _moved(piece.comments, line, start))
            placed[key] = moved
            declarations.extend(moved.declarations)
            comments.extend(moved.comments)
            line += piece_text.count("\n")
        self.pieces, self.placed = pieces, placed
        program = Program(path, head.header, head.imports, tuple(declarations), tuple(comments), text)
        return program, ()

    def _piece(self, text: str, path: str, seen: dict[str, _Piece | None]) -> _Piece | None:
        """The piece parsed on its own (None if it has a problem or is more than
        declarations), from the last parse when it was there."""
        if text in seen:
            return seen[text]
        if text in self.pieces:
            piece = self.pieces[text]
        else:
            program, problems = parse_partial(text, path)
            alone = program is not None and program.header is None and not program.imports
            clean = all(d.code == "E0004" for d in problems)  # a piece has no header of its own
            piece = _Piece(program.declarations, program.comments) if program is not None and alone and clean else None
        seen[text] = piece
        return piece
