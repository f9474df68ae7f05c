"""Scripted worlds for the test endpoint: deterministic models whose answers depend on the prompt.

`date_world` answers questions "What is day D of month M of Y ...". Its rollouts
are right more often when the prompt carries the lessons of `LESSONS` (each lesson
raises the chance), and its learner, asked for a semantic advantage, proposes the
first lesson the library lacks; asked to consolidate, it merges equal proposals.
Every reply is a pure function of the request, so a rerun gets the same answers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["LESSONS", "date_world", "tool_world", "troubled_world"]

LESSONS = (
    "Write every date in the numeric form YYYY-MM-DD.",
    "Pad months and days with a leading zero to two digits.",
)
CHANCE = (0.25, 0.6, 0.95)
"""The chance that a rollout is right with 0, 1 or 2 of the lessons in its prompt."""


def _draw(*parts: Any) -> float:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _text(request: Mapping[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in request.get("messages", []))


def _rollout(request: Mapping[str, Any]) -> str:
    text = _text(request)
    match = re.search(r"day (\d+) of month (\d+) of (\d+)", text)
    if not match:
        return "I do not know."
    day, month, year = (int(g) for g in match.groups())
    known = sum(lesson in text for lesson in LESSONS)
    if _draw(request.get("seed"), text) < CHANCE[known]:
        return f"{year:04d}-{month:02d}-{day:02d}"
    return f"{month}/{day}/{year}"


def _advantage(text: str) -> dict[str, Any]:
    library = text.split("The current library:")[1].split("State it as")[0]
    for lesson in LESSONS:
        if lesson not in library:
            return {"operations": [{"op": "add", "text": lesson, "rationale": "the better attempts did this"}]}
    return {"operations": [{"op": "keep"}]}


def _consolidate(text: str) -> dict[str, Any]:
    proposals = re.findall(r'- from group \S+: add: "([^"]*)"', text)
    unique = list(dict.fromkeys(proposals))
    return {"operations": [{"op": "add", "text": t, "rationale": "proposed by the groups"} for t in unique]}


def date_world(request: Mapping[str, Any], number: int) -> str:
    """Answer a rollout, summary, advantage or consolidation request of the date task."""
    text = _text(request)
    if text.startswith("You are reviewing one attempt"):
        attempt = text.split("<attempt>")[1].split("</attempt>")[0].strip()
        return f"The attempt answered {attempt}."
    if text.startswith("Several attempts at the same task"):
        return json.dumps(_advantage(text))
    if text.startswith("You maintain a small library"):
        return json.dumps(_consolidate(text))
    return _rollout(request)


def troubled_world(request: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    """The date world with trouble: questions of the years 1990 and 1993 fail every rollout
    (HTTP 500), those of 1996 and 1999 are always answered right, and the learner's
    advantage replies are never JSON."""
    text = _text(request)
    if text.startswith("Several attempts at the same task"):
        return "I would suggest that the model be more careful with dates."
    if text.startswith(("You are reviewing one attempt", "You maintain a small library")):
        return date_world(request, number)
    match = re.search(r"day (\d+) of month (\d+) of (\d+)", text)
    if match and int(match.group(3)) in (1990, 1993):
        return {"error_status": 500, "message": "scripted failure"}
    if match and int(match.group(3)) in (1996, 1999):
        day, month, year = (int(g) for g in match.groups())
        return f"{year:04d}-{month:02d}-{day:02d}"
    return _rollout(request)


def tool_world(request: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    """The date world for a task with `tools = [python]`: the model first asks the code
    interpreter to format the date, then answers with what the tool printed."""
    messages = request.get("messages", [])
    tool_replies = [m for m in messages if m.get("role") == "tool"]
    if request.get("tools") and not tool_replies:
        match = re.search(r"day (\d+) of month (\d+) of (\d+)", _text(request))
        day, month, year = (int(g) for g in match.groups()) if match else (1, 1, 2000)
        code = f"import datetime\nprint(datetime.date({year}, {month}, {day}).isoformat())"
        call = {"id": f"call_{number}", "type": "function", "function": {"name": "python", "arguments": json.dumps({"code": code})}}
        return {"content": None, "tool_calls": [call], "finish_reason": "tool_calls"}
    if tool_replies:
        return str(tool_replies[-1].get("content", "")).strip()
    return date_world(request, number)
