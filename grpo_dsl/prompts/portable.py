"""Self-contained Jinja sources of a prompt's messages, for tools that render Jinja themselves.

MLflow's Prompt Registry and Prompty render a template with the application's fields
only. `portable_messages` turns the composed templates, the lessons and the demos into
one Jinja source per message that needs nothing else: the lessons are set inside it
as a literal list, each demo is a literal string, and the rendered text is trimmed as
`render_messages` trims it. Rendered with the same fields in any Jinja environment
(sandboxed or not, strict or not), each gives the content `render_messages` gives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from grpo_dsl.core.templating import sandbox, template_variables
from grpo_dsl.prompts.chat import demo_turns, examples_block
from grpo_dsl.prompts.messages import PromptTemplates

__all__ = ["TEXT_VARIABLE", "jinja_literal", "portable_messages"]

TEXT_VARIABLE = "grpo_text"
"""The variable each portable source captures its rendered template in."""


def jinja_literal(value: Any) -> str:
    """A Jinja expression for a value made of strings, lists and objects.

    JSON's escapes are the ones Jinja's string literals decode, so the JSON text
    (with non-ASCII characters left as they are) reads back as the same value.
    """
    return json.dumps(value, ensure_ascii=False)


def _captured(source: str, experiences: Sequence[Mapping[str, str]]) -> str:
    """`source` rendered with the lessons, into TEXT_VARIABLE, trailing newlines trimmed."""
    return (
        f"{{% set experiences = {jinja_literal([dict(e) for e in experiences])} %}}"
        f"{{% set {TEXT_VARIABLE} %}}{source}{{% endset %}}"
        f"{{% set {TEXT_VARIABLE} = {TEXT_VARIABLE}.rstrip({jinja_literal(chr(10))}) %}}"
    )


def _statically_blank(source: str) -> bool:
    """True when `source` reads no field and renders to blank text."""
    variables = template_variables(source)
    return variables is not None and not variables and not sandbox().from_string(source).render().strip()


def portable_messages(
    templates: PromptTemplates,
    experiences: Sequence[Mapping[str, str]] = (),
    demos: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, str]]:
    """`{"role", "content"}` for each message, the content a Jinja source reading only the task's fields.

    The system message, when there is one, comes first. It is left out when it reads no
    field and renders blank; one that reads fields may still render blank, which
    `render_messages` leaves out and a consumer that can should too.
    """
    shown = demo_turns(sandbox(), templates.user, demos)
    examples = examples_block(sandbox(), shown) if shown and templates.demos == "system" else None
    messages: list[dict[str, str]] = []
    if templates.system is not None:
        system = _captured(templates.system, experiences)
        if examples is None:
            system += f"{{{{ {TEXT_VARIABLE} }}}}"
        else:
            system += f"{{% if {TEXT_VARIABLE}.strip() %}}{{{{ {TEXT_VARIABLE} }}}}\n\n{{% endif %}}{{{{ {jinja_literal(examples)} }}}}"
        if not _statically_blank(system):
            messages.append({"role": "system", "content": system})
    elif examples is not None:
        messages.append({"role": "system", "content": f"{{{{ {jinja_literal(examples)} }}}}"})
    if templates.demos == "turns":
        for prompt, answer in shown:
            messages.append({"role": "user", "content": f"{{{{ {jinja_literal(prompt)} }}}}"})
            messages.append({"role": "assistant", "content": f"{{{{ {jinja_literal(answer)} }}}}"})
    messages.append({"role": "user", "content": _captured(templates.user, experiences) + f"{{{{ {TEXT_VARIABLE} }}}}"})
    return messages
