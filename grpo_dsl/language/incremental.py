"""Parse a file again after an edit, reusing the declarations that did not change.

An editor parses a file at every pause in typing, and most of it is what it was
before. `Reparser.parse(text, path)` cuts the text before each declaration that
starts at the first column of a line; a piece seen in the last parse keeps its
declarations and problems, moved to their new lines and offsets, and only the
pieces that are new are parsed. The result is always that of
`parse_partial(text, path)`: when a piece does not stand alone as declarations
only, or its parse might have gone on past its end, the whole text is parsed.

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
from grpo_dsl.language.parser import MAX_SYNTAX_ERRORS, parse_partial

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
    """The declarations, comments and problems of one piece of text, parsed on its own."""

    declarations: tuple[Decl, ...]
    comments: tuple[Comment, ...]
    problems: tuple[Diagnostic, ...]


@dataclass
class Reparser:
    """Parses one file again and again, keeping the pieces of its last parse."""

    pieces: dict[str, _Piece | None] = field(default_factory=dict)
    placed: dict[tuple[str, int, int], _Piece] = field(default_factory=dict)

    def parse(self, text: str, path: str) -> tuple[Program | None, tuple[Diagnostic, ...]]:
        """What `parse_partial(text, path)` returns."""
        starts = [0, *(m.start() for m in _PIECE.finditer(text) if m.start() > 0)]
        if len(starts) == 1:
            return parse_partial(text, path)
        head, head_problems = parse_partial(text[: starts[1]], path)
        if head is None or head_problems:
            return parse_partial(text, path)
        pieces: dict[str, _Piece | None] = {}
        placed: dict[tuple[str, int, int], _Piece] = {}
        declarations: list[Decl] = list(head.declarations)
        comments: list[Comment] = list(head.comments)
        problems: list[Diagnostic] = []
        line = text.count("\n", 0, starts[1])
        for start, end in zip(starts[1:], [*starts[2:], len(text)]):
            piece_text = text[start:end]
            piece = self._piece(piece_text, path, pieces)
            if piece is None:
                return parse_partial(text, path)
            key = (piece_text, line, start)
            moved = self.placed.get(key) or _moved(piece, line, start)
            placed[key] = moved
            declarations.extend(moved.declarations)
            comments.extend(moved.comments)
            problems.extend(moved.problems)
            line += piece_text.count("\n")
        if sum(d.code == "E0001" for d in problems) >= MAX_SYNTAX_ERRORS:
            return parse_partial(text, path)  # the whole parse stops at the limit
        self.pieces, self.placed = pieces, placed
        program = Program(path, head.header, head.imports, tuple(declarations), tuple(comments), text)
        return program, tuple(problems)

    def _piece(self, text: str, path: str, seen: dict[str, _Piece | None]) -> _Piece | None:
        """The piece parsed on its own, from the last parse when it was there; None
        when it is more than declarations, or parsing it on its own may differ from
        parsing it in the file."""
        if text in seen:
            return seen[text]
        if text in self.pieces:
            piece = self.pieces[text]
        else:
            program, problems = parse_partial(text, path)
            problems = tuple(d for d in problems if d.code != "E0004")  # a piece has no header of its own
            # After a syntax error the parser looks ahead for a place to go on: in the
            # file it may look past the piece, so an error it reports at the end of the
            # piece, or a piece it could not finish, is parsed again with the file.
            alone = program is not None and program.header is None and not program.imports
            within = all(d.span.start < len(text) for d in problems)
            piece = _Piece(program.declarations, program.comments, problems) if program is not None and alone and within else None
        seen[text] = piece
        return piece
