"""`cursor_at`: what may be written at a place of a file that is being typed."""

from __future__ import annotations

import pytest

from grpo_dsl.language.cursor import Cursor, cursor_at

HEAD = 'grpo 1\nmodel m {\n  name = "x"\n}\n'


def at_end(text: str) -> Cursor:
    return cursor_at(text, len(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD, Cursor("declaration")),
        (HEAD + "mo", Cursor("declaration", prefix="mo")),
        (HEAD + "task t { ", Cursor("attribute", ("task",), "t")),
        (HEAD + "learn l {\n  budget {\n    us", Cursor("attribute", ("learn", "budget"), "l", prefix="us")),
        (HEAD + "learn l {\n  task = ", Cursor("value", ("learn",), "l", "task")),
        (HEAD + "learn l {\n  task = t\n  gr", Cursor("attribute", ("learn",), "l", prefix="gr")),
        (HEAD + "learn l {\n  task = t\n  budget { usd = 2 }\n  se", Cursor("attribute", ("learn",), "l", prefix="se")),
        (HEAD + "task t {\n  tools = [\n    py", Cursor("value", ("task",), "t", "tools", "py")),
        (HEAD + "evaluate e { compare = [none, ", Cursor("value", ("evaluate",), "e", "compare")),
        (HEAD + "reward r = exact(out", Cursor("expression", (), "r", prefix="out")),
        (HEAD + 'task t {\n  prompt = "Q: {{ qu', Cursor("template", ("task",), "t", "prompt", "qu")),
        (HEAD + 'task t {\n  prompt = """\n    Q: {{ question }}\n    ', Cursor("string", ("task",), "t", "prompt")),
        (HEAD + 'reward j {\n  rubric = """\n  {{ ', Cursor("template", ("reward",), "j", "rubric")),
        (HEAD + 'task t {\n  prompt = "{{ q }}"\n  ', Cursor("attribute", ("task",), "t")),
        (HEAD + "model n {\n  name = 1\n}\n# a comment\n", Cursor("declaration")),
    ],
)
def test_the_place_at_the_end_of_a_text_being_typed(text: str, expected: Cursor) -> None:
    assert at_end(text) == expected


def test_a_place_inside_a_finished_file() -> None:
    text = HEAD + 'task t {\n  prompt = "{{ question }}"\n  model = m\n}\n'
    assert cursor_at(text, text.index("question") + 3) == Cursor("template", ("task",), "t", "prompt", "que")
    assert cursor_at(text, text.index("model = m") + 2) == Cursor("attribute", ("task",), "t", prefix="mo")
    assert cursor_at(text, text.index("= m\n}") + 2) == Cursor("value", ("task",), "t", "model")


def test_errors_earlier_in_the_file_do_not_confuse_the_place() -> None:
    text = 'grpo 1\nmodel m {\n  name "x" : ;\n  price { input = [1 2 }\n}\ntask t {\n  max_tok'
    assert at_end(text) == Cursor("attribute", ("task",), "t", prefix="max_tok")
