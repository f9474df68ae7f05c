"""A scripted world for every program of `programs/`, for the test endpoint.

It knows the rows of `programs/data/` and finds, in a rollout's prompt, the question
it asks: it answers right half the time, a little more with each of its lessons in
the prompt (the few points Training-Free GRPO gains), else says it is not sure. A task with tools first calls the
first tool offered once (the interpreter, as a maths model checking its arithmetic would, or
a declared tool with the answer as each required argument). Its learner
writes summaries of about sixty words, states a rule with the preamble small models
use ("A rule that B breaks is that ..."), proposes the first lessons of `LESSONS`
the library lacks (as many as the prompt allows), and consolidates by keeping each
distinct proposal once. Every reply is a pure function of the request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grpo_dsl.core.datasets import read_rows

DATA = Path(__file__).resolve().parents[2] / "programs" / "data"
ANSWER_FIELDS = ("answer", "iso_date", "team")
LESSONS = (
    "Reply with only the final answer, in exactly the form the task asks for, with no words around it.",
    "Read the whole question before answering and take every number and name from the question itself.",
    "Check the answer once more against the question before replying, and correct any slip you find.",
    "When the task names a format, follow that format exactly, including its separators and its zeros.",
    "Prefer the plain reading of the question over a clever one when both seem possible.",
    "Keep the answer short: one value, no explanation, no repetition of the question.",
    "Do not guess a format from the examples in the question; use the one the reply must match.",
    "Work out intermediate results before the final one instead of writing the answer at once.",
    "Give numbers as digits and never spell them out in words, unless the task asks for words.",
    "If a question names a team, a place or a date, copy it in the reply exactly as it is spelled.",
    "Leave out units and currency signs unless the question shows them in the expected answer.",
    "Answer the question that was asked, not a related one that seems more likely or more common.",
)
UNSURE = "I am not sure."


def _draw(*parts: Any) -> float:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@functools.cache
def _questions() -> dict[str, str]:
    """Every question text of the programs' data, with its right answer."""
    found: dict[str, str] = {}
    for path in sorted(DATA.glob("*.jsonl")) + sorted(DATA.glob("*.csv")):
        for row in read_rows(path):
            answer = next((str(row[f]) for f in ANSWER_FIELDS if f in row), None)
            texts = [str(v) for k, v in row.items() if k not in ANSWER_FIELDS and k not in ("id", "topic")]
            if answer is not None and texts:
                found[max(texts, key=len)] = answer
    return found


def _text(request: Mapping[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in request.get("messages", []))


def _rollout(request: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    text = _text(request)
    users = [str(m.get("content") or "") for m in request.get("messages", []) if m.get("role") == "user"]
    asked = users[-1] if users else text  # earlier user turns are demos: the question is the last one
    answer = next((right for question, right in _questions().items() if question in asked), None)
    if answer is None:
        return UNSURE
    boxed = "\\boxed" in text
    if request.get("tools") and not any(m.get("role") == "tool" for m in request.get("messages", [])):
        tool = request["tools"][0]["function"]
        required = tool.get("parameters", {}).get("required", [])
        arguments = {"code": f"print({json.dumps(answer)})"} if tool["name"] == "python" else {name: answer for name in required}
        call = {"id": f"call_{number}", "type": "function", "function": {"name": tool["name"], "arguments": json.dumps(arguments)}}
        return {"content": None, "tool_calls": [call], "finish_reason": "tool_calls"}
    known = sum(lesson in text for lesson in LESSONS)
    if _draw(request.get("seed"), text) < 0.5 + 0.02 * known:
        return f"The answer is \\boxed{{{answer}}}." if boxed else answer
    return UNSURE


def _library(text: str, head: str) -> str:
    return text.split(head, 1)[1] if head in text else ""


def _missing(library: str, count: int) -> list[str]:
    return [lesson for lesson in LESSONS if lesson not in library][:count]


def _summary(text: str) -> str:
    attempt = text.split("<attempt>")[1].split("</attempt>")[0].strip()
    reward = re.search(r"\(reward ([0-9.]+)", text)
    good = reward is not None and float(reward.group(1)) >= 1
    verdict = (
        "Its reward is high because the answer matches the reference answer exactly."
        if good
        else "Its reward is low because it gave no usable answer, so it went wrong at the very end."
    )
    return (
        f"The attempt answered: {attempt[:80]}. It gave its final answer directly, without showing any working, "
        f"and it did not cite any experience of the library by its id. {verdict} "
        "A better attempt would state the answer plainly in the requested form."
    )


def _operations(text: str) -> dict[str, Any]:
    allowed = re.search(r"at most (\d+) operation", text)
    wanted = int(allowed.group(1)) if allowed else 1
    lessons = _missing(_library(text, "The current library:"), wanted)
    if not lessons:
        return {"operations": [{"op": "keep"}]}
    return {"operations": [{"op": "add", "text": lesson, "rationale": "the better attempts did this"} for lesson in lessons]}


def _consolidate(text: str) -> dict[str, Any]:
    proposed = [json.loads(op) for op in re.findall(r"^- (\{.*\}) \(proposed by \d+ groups?\)$", text, re.MULTILINE)]
    unique = list(dict.fromkeys(op["text"] for op in proposed if op.get("op") == "add"))
    return {"operations": [{"op": "add", "text": t, "rationale": "proposed by the groups"} for t in unique] or [{"op": "keep"}]}


def program_world(request: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    """Answer any rollout, summary, contrast, advantage or consolidation request of the programs."""
    text = _text(request)
    if text.startswith("You are reviewing one attempt"):
        return _summary(text)
    if text.startswith("Two attempts at the same task"):
        lesson = (_missing("", 1) or LESSONS[:1])[0]
        return "A rule that B breaks is that " + lesson[0].lower() + lesson[1:]
    if text.startswith("Several attempts at the same task"):
        return json.dumps(_operations(text))
    if text.startswith("You maintain a small library"):
        return json.dumps(_consolidate(text))
    return _rollout(request, number)
