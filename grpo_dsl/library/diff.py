"""Word-level differences between two experience texts, for diffs, blame and the report."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["DiffSegment", "marked_word_diff", "word_diff"]


@dataclass(frozen=True, slots=True)
class DiffSegment:
    """A run of words that is the same in both texts, deleted from the old one, or inserted."""

    kind: Literal["same", "del", "ins"]
    text: str


def word_diff(old: str, new: str) -> tuple[DiffSegment, ...]:
    """The word-level difference between `old` and `new`, whitespace kept, as segments."""
    old_words = re.findall(r"\S+|\s+", old)
    new_words = re.findall(r"\S+|\s+", new)
    segments: list[DiffSegment] = []
    matcher = difflib.SequenceMatcher(None, old_words, new_words, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            segments.append(DiffSegment("same", "".join(old_words[i1:i2])))
            continue
        if i2 > i1:
            segments.append(DiffSegment("del", "".join(old_words[i1:i2])))
        if j2 > j1:
            segments.append(DiffSegment("ins", "".join(new_words[j1:j2])))
    return tuple(segments)


_MARKS = {"same": ("", ""), "del": ("[-", "-]"), "ins": ("{+", "+}")}


def marked_word_diff(old: str, new: str) -> str:
    """`new` against `old` on one line: removed words as `[-...-]`, added ones as `{+...+}`.

    >>> marked_word_diff("Draw a figure.", "Sketch a figure.")
    '[-Draw-] {+Sketch+} a figure.'
    """
    parts = []
    for segment in word_diff(old, new):
        words = " ".join(segment.text.split())
        if words:
            opening, closing = _MARKS[segment.kind]
            parts.append(opening + words + closing)
    return " ".join(parts)
