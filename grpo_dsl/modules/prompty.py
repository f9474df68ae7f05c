"""The `prompty` format: a version as a Prompty file (https://prompty.ai, schema v2).

```
---
name: "math_prompts"
description: "..."
metadata: {"grpo": {"module": "math_prompts", "version": "1.2.0", "experiences": 3, "demos": 0}}
model: {"id": "deepseek-chat", "provider": "openai", "apiType": "chat", "options": {"temperature": 0.7}}
inputs: [{"name": "question", "kind": "string", "required": true}]
template: {"format": {"kind": "jinja2", "strict": true}, "parser": {"kind": "prompty"}}
---
system:
{self-contained Jinja of the system turn: the lessons set as a literal}
user:
{a demo's prompt, as a literal}
assistant:
{its answer}
user:
{self-contained Jinja of the question's turn}
```

The body is `prompts.portable`'s messages under Prompty's role markers, so
`prompty.prepare(prompty.load(file), fields)` gives `load_module(...).render(...)`'s
messages (Prompty trims blank lines at the ends of each message and writes every
line break as `\\n`). The system turn is wrapped in an `if`, so that it is left out
when it renders blank. Front matter values are written as JSON, which is YAML;
`strict` makes Prompty refuse a field whose value holds a role marker line instead
of starting a new message with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from grpo_dsl.prompts.messages import PromptTemplates
from grpo_dsl.prompts.portable import TEXT_VARIABLE, portable_messages

__all__ = ["prompty_file"]


def _body(messages: Sequence[Mapping[str, str]]) -> str:
    lines: list[str] = []
    for message in messages:
        if message["role"] == "system":
            # Role markers must stand alone on a line of the template (strict mode
            # marks them there); `-%}` keeps a left-out system turn from leaving a blank line.
            lines += [
                f"{{% set {TEXT_VARIABLE}_system %}}{message['content']}{{% endset %}}"
                f"{{% if {TEXT_VARIABLE}_system.strip() -%}}",
                "system:",
                f"{{{{ {TEXT_VARIABLE}_system }}}}",
                "{% endif -%}",
            ]
        else:
            lines += [f"{message['role']}:", message["content"]]
    return "\n".join(lines) + "\n"


def prompty_file(
    *,
    name: str,
    version: str,
    model: str,
    temperature: float | None,
    fields: Sequence[str],
    templates: PromptTemplates,
    experiences: Sequence[Mapping[str, str]],
    demos: Sequence[Mapping[str, Any]],
) -> str:
    """The Prompty file of version `version` of the module `name`, learned for `model`,
    whose templates read `fields`, carrying `experiences` and `demos`."""
    front: dict[str, Any] = {
        "name": name,
        "description": f"prompt module {name} {version}, learned with Training-Free GRPO",
        "metadata": {"grpo": {"module": name, "version": version, "experiences": len(experiences), "demos": len(demos)}},
        "model": {
            "id": model,
            "provider": "openai",
            "apiType": "chat",
            "options": {"temperature": temperature} if temperature is not None else {},
        },
        "inputs": [{"name": field, "kind": "string", "required": True} for field in fields],
        "template": {"format": {"kind": "jinja2", "strict": True}, "parser": {"kind": "prompty"}},
    }
    header = [f"{key}: {json.dumps(value)}" for key, value in front.items()]
    return "\n".join(["---", *header, "---", ""]) + _body(portable_messages(templates, experiences, demos))
