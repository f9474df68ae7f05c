"""`Reparser`: parsing a file again after edits gives exactly what `parse_partial` gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpo_dsl.language.ast import Span
from grpo_dsl.language.incremental import Reparser
from grpo_dsl.language.parser import parse_partial

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "programs").glob("*.grpo"))] + [
    p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests" / "fixtures").glob("*.grpo"))
]


def spans(node: object) -> list[Span]:
    """Every span in a tree (equality of the tree ignores them)."""
    if isinstance(node, Span):
        return [node]
    if isinstance(node, tuple):
        return [span for item in node for span in spans(item)]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return [span for f in dataclasses.fields(node) for span in spans(getattr(node, f.name))]
    return []


def assert_same_parse(reparser: Reparser, text: str) -> None:
    program, problems = reparser.parse(text, "edited.grpo")
    expected, expected_problems = parse_partial(text, "edited.grpo")
    assert problems == expected_problems
    assert program == expected
    if program is not None and expected is not None:
        assert spans(program) == spans(expected)
        assert [c.text for c in program.comments] == [c.text for c in expected.comments]
        assert spans(program.comments) == spans(expected.comments)
        assert program.source == text


@st.composite
def edits(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A program and texts made from it by successive small edits."""
    text = draw(st.sampled_from(SOURCES))
    versions = []
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(("insert", "delete", "newline")))
        if kind == "insert":
            text = text[:at] + draw(st.sampled_from(["x", "1", " ", '"', "}", "{", "model n {}\n", "# c", "="])) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 4)) :]
        else:
            text = text[:at] + "\n" + text[at:]
        versions.append(text)
    return text, versions


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_a_reparse_after_edits_is_the_whole_parse(case: tuple[str, list[str]]) -> None:
    _, versions = case
    reparser = Reparser()
    for text in versions:
        assert_same_parse(reparser, text)


def test_pieces_are_reused_and_moved() -> None:
    text = (ROOT / "programs" / "support.grpo").read_text(encoding="utf-8")
    reparser = Reparser()
    assert_same_parse(reparser, text)
    first = reparser.parse(text, "edited.grpo")[0]
    edited = text.replace("  temperature = 0.9\n", "  temperature = 0.95\n\n")
    assert_same_parse(reparser, edited)
    second = reparser.parse(edited, "edited.grpo")[0]
    assert first is not None and second is not None
    before = [d for d in first.declarations if d.kind == "dataset"]
    assert [d for d in second.declarations if d.kind == "dataset"][0] is before[0]
    assert second.declarations[-1].span.line == first.declarations[-1].span.line + 1
