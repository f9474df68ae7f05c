"""A scripted world for the project `grpo init` writes, for the test endpoint.

It knows the starter's word problems (`grpo_dsl/cli/starter/data/`). A rollout answers
with only the number (reward 1) half the time, a little more with each lesson of
`program_world.LESSONS` in the prompt, and otherwise wraps the number in a sentence
(reward 0.5), so groups differ and the learner has something to compare. Learner
requests are answered as `program_world` answers them. Every reply is a pure
function of the request.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from support.program_world import LESSONS, _draw, _text, program_world

from grpo_dsl.core.datasets import read_rows

DATA = Path(__file__).resolve().parents[2] / "grpo_dsl" / "cli" / "starter" / "data"


@functools.cache
def _answers() -> dict[str, str]:
    return {str(row["question"]): str(row["answer"]) for path in sorted(DATA.glob("*.jsonl")) for row in read_rows(path)}


def starter_world(request: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    """Answer a rollout of the starter's task, or any learner request."""
    messages = request.get("messages", [])
    asked = str(messages[-1].get("content") or "") if messages else ""
    answer = _answers().get(asked.strip())
    if answer is None:
        return program_world(request, number)
    text = _text(request)
    known = sum(lesson in text for lesson in LESSONS)
    if _draw(request.get("seed"), text) < 0.5 + 0.1 * known:
        return answer
    return f"The answer is {answer}."
