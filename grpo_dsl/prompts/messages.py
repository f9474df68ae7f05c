"""The one place where a task's templates and the experience library meet.

Training rollouts, evaluation and emitted prompt modules all render their chat
messages with `compose_templates` and `render_messages`, so the library is placed
identically everywhere: its lessons in the system turn, in the user turn, or
nowhere, as the task's `experiences` attribute says; its demos as earlier
user/assistant turns before the question, or in the system turn, as the task's
`demos_placement` says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from jinja2 import TemplateError

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.templating import sandbox
from grpo_dsl.prompts.chat import DEMOS_BLOCK, render_chat

__all__ = [
    "DEMOS_BLOCK",
    "EXPERIENCES_BLOCK",
    "DemosPlacement",
    "PromptTemplates",
    "TemplateRenderError",
    "compose_templates",
    "render_messages",
]

EXPERIENCES_BLOCK = (
    "{% if experiences %}"
    "Experiences learned from earlier problems; apply them where they fit:\n"
    "{% for e in experiences %}[{{ e.id }}] {{ e.text }}\n{% endfor %}"
    "{% endif %}"
)

DemosPlacement: TypeAlias = Literal["turns", "system"]


class TemplateRenderError(GrpoError):
    """A template could not be rendered: a missing field, a template error, or a render
    past its budget (`core.templating.RenderBudget`)."""


@dataclass(frozen=True, slots=True)
class PromptTemplates:
    """The composed Jinja sources of a task: `system` (or None) and `user`, and where
    demos go: as earlier `turns` (rendered with `user`) or in the `system` turn."""

    system: str | None
    user: str
    demos: DemosPlacement = "turns"


def compose_templates(
    system: str | None, prompt: str, placement: str, demos: DemosPlacement = "turns"
) -> PromptTemplates:
    """Compose a task's `system` and `prompt` sources with the library placement.

    With `placement == "system"` the lessons follow the system text (a system turn
    is created when there was none and the library is not empty); with `"user"` they
    precede the prompt; with `"none"` they are never shown. Demos are placed when the
    messages are rendered (`render_messages`): as earlier turns, or (`demos ==
    "system"`) at the end of the system turn.
    """
    if placement == "system":
        gap = "{% if experiences %}\n\n{% endif %}" if system else ""
        return PromptTemplates(system=(system or "") + gap + EXPERIENCES_BLOCK, user=prompt, demos=demos)
    if placement == "user":
        return PromptTemplates(system=system, user=EXPERIENCES_BLOCK + "{% if experiences %}\n{% endif %}" + prompt, demos=demos)
    return PromptTemplates(system=system, user=prompt, demos=demos)


def render_messages(
    templates: PromptTemplates,
    fields: Mapping[str, Any],
    experiences: Sequence[Mapping[str, str]] = (),
    demos: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, str]]:
    """Render the chat messages for one question.

    `experiences` is a sequence of `{"id": ..., "text": ...}` and `demos` of
    `{"id": ..., "fields": {...}, "answer": ...}`; a demo's prompt is the user template
    rendered with the demo's fields and no lessons. An empty system turn is left out.
    Raises `TemplateRenderError` naming the missing field.
    """
    try:
        return render_chat(sandbox(), templates.system, templates.user, templates.demos, fields, experiences, demos)
    except TemplateError as exc:
        raise TemplateRenderError(str(exc)) from exc
