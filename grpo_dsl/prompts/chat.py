"""Render one question's chat messages from composed templates, lessons and demos.

This file imports only `jinja2` (the environment is passed in): `grpo module package`
copies it into every packaged prompt module, so that a module installed without
grpo-dsl renders exactly the messages `load_module` renders. Keep it free of any
other import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Environment

__all__ = ["DEMOS_BLOCK", "demo_turns", "examples_block", "render_chat"]

DEMOS_BLOCK = "Examples of good answers:\n{% for d in demos %}\nInput: {{ d.input }}\nOutput: {{ d.answer }}\n{% endfor %}"
"""The demos in the system turn (`demos_placement = system`), after the system text and
the lessons: each demo's rendered prompt and its answer."""


def demo_turns(env: Environment, user: str, demos: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(prompt, answer) of each demo: the `user` template rendered with the demo's fields and no lessons."""
    template = env.from_string(user)
    return [(template.render({**d["fields"], "experiences": []}).rstrip("\n"), str(d["answer"])) for d in demos]


def examples_block(env: Environment, shown: Sequence[tuple[str, str]]) -> str:
    """The demos' (prompt, answer) pairs as the examples block of the system turn."""
    return env.from_string(DEMOS_BLOCK).render(demos=[{"input": q, "answer": a} for q, a in shown]).rstrip("\n")


def render_chat(
    env: Environment,
    system: str | None,
    user: str,
    demos_placement: str,
    fields: Mapping[str, Any],
    experiences: Sequence[Mapping[str, str]] = (),
    demos: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, str]]:
    """The chat messages for one question, rendered in `env`; raises `jinja2.TemplateError`.

    `experiences` are `{"id", "text"}` and `demos` `{"id", "fields", "answer"}`. Demos go
    before the question as user/assistant turns (`demos_placement == "turns"`) or in an
    examples block at the end of the system turn (`"system"`). An empty system turn is
    left out.
    """
    shown = demo_turns(env, user, demos)
    values = {**fields, "experiences": [dict(e) for e in experiences]}
    text = env.from_string(system).render(values).rstrip("\n") if system is not None else ""
    if shown and demos_placement == "system":
        text = "\n\n".join(part for part in (text, examples_block(env, shown)) if part.strip())
    messages: list[dict[str, str]] = []
    if text.strip():
        messages.append({"role": "system", "content": text})
    if demos_placement == "turns":
        for prompt, answer in shown:
            messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": env.from_string(user).render(values).rstrip("\n")})
    return messages
