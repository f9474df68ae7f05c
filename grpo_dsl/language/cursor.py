"""What surrounds a place in a `.grpo` file that is being typed, for completion.

`cursor_at(text, offset)` reads the tokens before `offset` (`parser.scan`, which
reads a file that does not parse) and tells which block the
place is in and what may be written there: a declaration keyword, an attribute
name, the value of an attribute, a reward expression, or a variable inside a
template's `{{ }}`. It needs no parse, so it works on a file with syntax errors
and on the half-written line under the cursor.

>>> text = 'grpo 1\\nlearn l {\\n  budget {\\n    us'
>>> cursor = cursor_at(text, len(text))
>>> cursor.place, cursor.blocks, cursor.prefix
('attribute', ('learn', 'budget'), 'us')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from lark import Token

from grpo_dsl.language.ast import DECLARATION_KINDS
from grpo_dsl.language.parser import scan, word_types

__all__ = ["Cursor", "Place", "cursor_at"]

Place = Literal["declaration", "attribute", "value", "expression", "template", "string", "other"]

_WORD_END = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_STRINGS = frozenset({"STRING", "LONG_STRING", "UNCLOSED_STRING"})
_OPENERS = {"LSQB": "RSQB", "LPAR": "RPAR"}


@dataclass(frozen=True, slots=True)
class Cursor:
    """A place in a program.

    `place` is what may be written there; `blocks` the declaration kind and the
    nested blocks around it (`("model", "price")`, empty at the top level);
    `declaration` the name of the enclosing declaration; `attribute` the attribute
    whose value is being written (for `value`, and for a `template` or `string`
    inside a block); `prefix` the part of the word before the place.
    """

    place: Place
    blocks: tuple[str, ...] = ()
    declaration: str | None = None
    attribute: str | None = None
    prefix: str = ""


@dataclass
class _Frame:
    """An open block: its key (the declaration kind for the outermost), and the
    attribute whose value is being read in it, with the brackets open in that value."""

    key: str
    attribute: str | None = None
    value_line: int = 0
    value_tokens: int = 0
    brackets: list[str] = field(default_factory=list)


def _in_template(literal: str, at: int) -> bool:
    """True if position `at` of a string literal's text is inside `{{ }}`."""
    opened = literal.rfind("{{", 0, at)
    return opened >= 0 and literal.find("}}", opened, at) < 0


def cursor_at(text: str, offset: int) -> Cursor:
    """The place at `offset` (a character index into `text`)."""
    words = word_types()
    frames: list[_Frame] = []
    declaration: str | None = None
    expression = False  # in `reward NAME = ...` at the top level
    before = [t for t in scan(text) if (t.start_pos or 0) < offset]
    prefix, literal = "", None
    last = before[-1] if before else None
    if last is not None and last.type in _STRINGS and (offset < (last.end_pos or 0) or last.type == "UNCLOSED_STRING"):
        literal = before.pop()
    elif last is not None and last.type in words and (last.end_pos or 0) >= offset:
        prefix = text[last.start_pos or 0 : offset]  # the word being typed
        before.pop()
    for index, token in enumerate(before):
        after = before[index + 1] if index + 1 < len(before) else None
        kind = token.type
        if frames and kind.lower() in DECLARATION_KINDS and token.column == 1 and after is not None and after.type in words:
            frames.clear()  # a declaration at the first column: the block above lacks its `}`
        if not frames:
            if kind.lower() in DECLARATION_KINDS and after is not None and after.type in words:
                declaration, expression = str(after), False
                if index + 2 < len(before) and before[index + 2].type == "LBRACE":
                    frames.append(_Frame(kind.lower()))
                    before[index + 2] = Token("SKIPPED", "")
            elif kind == "EQUAL" and declaration is not None:
                expression = True
            continue
        frame = frames[-1]
        if kind == "SKIPPED":
            continue
        if frame.brackets and kind == frame.brackets[-1]:
            frame.brackets.pop()
        elif kind in _OPENERS and frame.attribute is not None:
            frame.brackets.append(_OPENERS[kind])
        elif kind == "RBRACE":
            frames.pop()
            if not frames:
                declaration = None
            continue
        elif not frame.brackets and kind in words and after is not None and after.type in ("EQUAL", "LBRACE"):
            frame.attribute = None
            if after.type == "LBRACE":
                frames.append(_Frame(str(token)))
            else:
                frame.attribute, frame.value_line, frame.value_tokens = str(token), token.line or 0, 0
            before[index + 1] = Token("SKIPPED", "")
            continue
        if frame.attribute is not None:
            frame.value_tokens += 1
            frame.value_line = token.end_line or token.line or 0
    blocks = tuple(frame.key for frame in frames)
    attribute = frames[-1].attribute if frames else None
    if literal is not None:
        if _in_template(str(literal), offset - (literal.start_pos or 0)):
            word = _WORD_END.search(text, 0, offset)
            return Cursor("template", blocks, declaration, attribute, word.group() if word else "")
        return Cursor("string", blocks, declaration, attribute, "")
    if not frames:
        line_start = text.rfind("\n", 0, offset) + 1
        if expression:
            return Cursor("expression", (), declaration, None, prefix)
        fresh = not text[line_start : offset - len(prefix)].strip()
        return Cursor("declaration" if fresh else "other", (), None, None, prefix)
    frame = frames[-1]
    line = text.count("\n", 0, offset) + 1
    if frame.attribute is not None and (frame.brackets or not frame.value_tokens or line == frame.value_line):
        return Cursor("value", blocks, declaration, frame.attribute, prefix)
    return Cursor("attribute", blocks, declaration, None, prefix)
