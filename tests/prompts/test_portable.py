"""Portable message sources: rendered with the fields alone, in any Jinja environment, each
gives the content `render_messages` gives, whatever the lessons and demos hold."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import Environment, StrictUndefined, Undefined
from jinja2.sandbox import SandboxedEnvironment

from grpo_dsl.prompts.messages import compose_templates, render_messages
from grpo_dsl.prompts.portable import portable_messages

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
"""Any text, Jinja delimiters, quotes, backslashes and line breaks included."""
ENVIRONMENTS = (
    Environment(),
    SandboxedEnvironment(undefined=Undefined),
    SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True),
)


@settings(max_examples=200, deadline=None)
@given(
    lessons=st.lists(TEXT, max_size=3),
    demos=st.lists(st.tuples(TEXT, TEXT), max_size=2),
    question=TEXT,
    system=st.sampled_from([None, "", "You answer.", "You answer {{ who }}.\n\n"]),
    placement=st.sampled_from(["system", "user", "none"]),
    demos_placement=st.sampled_from(["turns", "system"]),
)
def test_portable_sources_render_what_render_messages_renders(
    lessons: list[str], demos: list[tuple[str, str]], question: str, system: str | None, placement: str, demos_placement: Any
) -> None:
    templates = compose_templates(system, "Q: {{ q }}\n", placement, demos_placement)
    experiences = [{"id": f"E{i}", "text": text} for i, text in enumerate(lessons, start=1)]
    demo_entries = [{"id": f"D{i}", "fields": {"q": q}, "answer": a} for i, (q, a) in enumerate(demos, start=1)]
    fields = {"q": question, "who": question}
    expected = render_messages(templates, fields, experiences, demo_entries)
    sources = portable_messages(templates, experiences, demo_entries)
    for env in ENVIRONMENTS:
        rendered = [{"role": m["role"], "content": env.from_string(m["content"]).render(fields)} for m in sources]
        # A system turn that reads fields may render blank; render_messages leaves it out.
        kept = [m for m in rendered if m["role"] != "system" or m["content"].strip()]
        assert kept == expected


def test_a_system_turn_that_can_only_be_blank_is_left_out() -> None:
    templates = compose_templates(None, "Q: {{ q }}", "system")
    assert [m["role"] for m in portable_messages(templates)] == ["user"]
    assert [m["role"] for m in portable_messages(templates, [{"id": "E1", "text": "Check."}])] == ["system", "user"]
