"""The one place where a task's templates and the experience library meet.

Training rollouts, evaluation and emitted prompt modules all render their chat
messages with `compose_templates` and `render_messages`, so the library is placed
identically everywhere: in the system turn, in the user turn, or nowhere, as the
task's `experiences` attribute says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.templating import sandbox

__all__ = [
    "EXPERIENCES_BLOCK",
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


class TemplateRenderError(GrpoError):
    """A template could not be rendered: a missing field, a template error, or a render
    past its budget (`core.templating.RenderBudget`)."""


@dataclass(frozen=True, slots=True)
class PromptTemplates:
    """The composed Jinja sources of a task: `system` (or None) and `user`."""

    system: str | None
    user: str


def compose_templates(system: str | None, prompt: str, placement: str) -> PromptTemplates:
    """Compose a task's `system` and `prompt` sources with the library placement.

    With `placement == "system"` the library follows the system text (a system turn
    is created when there was none and the library is not empty); with `"user"` it
    precedes the prompt; with `"none"` the library is never shown.
    """
    if placement == "system":
        head = system or ""
        gap = "{% if experiences %}\n\n{% endif %}" if system else ""
        return PromptTemplates(system=head + gap + EXPERIENCES_BLOCK, user=prompt)
    if placement == "user":
        return PromptTemplates(system=system, user=EXPERIENCES_BLOCK + "{% if experiences %}\n{% endif %}" + prompt)
    return PromptTemplates(system=system, user=prompt)


def render_messages(
    templates: PromptTemplates,
    fields: Mapping[str, Any],
    experiences: Sequence[Mapping[str, str]] = (),
) -> list[dict[str, str]]:
    """Render the chat messages for one question.

    `experiences` is a sequence of `{"id": ..., "text": ...}`; an empty system turn is
    left out. Raises `TemplateRenderError` naming the missing field.
    """
    env = sandbox()
    values = {**fields, "experiences": [dict(e) for e in experiences]}
    try:
        messages: list[dict[str, str]] = []
        if templates.system is not None:
            system = env.from_string(templates.system).render(values)
            if system.strip():
                messages.append({"role": "system", "content": system.rstrip("\n")})
        messages.append({"role": "user", "content": env.from_string(templates.user).render(values).rstrip("\n")})
    except TemplateError as exc:
        raise TemplateRenderError(str(exc)) from exc
    return messages
