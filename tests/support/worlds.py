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
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FICKLE_LESSONS",
    "HARMFUL_LESSON",
    "HELPFUL_LESSON",
    "LESSONS",
    "MISLEADING_LESSON",
    "date_world",
    "demo_world",
    "fickle_world",
    "half_failing_world",
    "judged_world",
    "learner_reply",
    "misleading_world",
    "planted_world",
    "preamble_world",
    "quarter_failing_world",
    "tool_world",
    "troubled_world",
    "truncating_world",
]

LESSONS = (
    "Write every date in the numeric form YYYY-MM-DD.",
    "Pad months and days with a leading zero to two digits.",
)
DRAFT = "Write the date."
"""A vague first lesson that `revising_world`'s learner later rewrites into `LESSONS[0]`."""
NOISE = "Mention the day of the week."
"""A useless lesson that `revising_world`'s learner adds first and deletes later."""
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


def _advantage(text: str, lessons: tuple[str, ...] = LESSONS) -> dict[str, Any]:
    library = text.split("The current library:")[1].split("State it as")[0]
    for lesson in lessons:
        if lesson not in library:
            return {"operations": [{"op": "add", "text": lesson, "rationale": "the better attempts did this"}]}
    return {"operations": [{"op": "keep"}]}


def _proposals(text: str) -> list[dict[str, Any]]:
    """The proposed operations listed in a consolidation prompt."""
    return [json.loads(op) for op in re.findall(r"^- (\{.*\}) \(proposed by \d+ groups?\)$", text, re.MULTILINE)]


def _consolidate(text: str) -> dict[str, Any]:
    unique = list(dict.fromkeys(op["text"] for op in _proposals(text) if op["op"] == "add"))
    return {"operations": [{"op": "add", "text": t, "rationale": "proposed by the groups"} for t in unique]}


def learner_reply(text: str, lessons: tuple[str, ...], rule: str) -> str | None:
    """The scripted learner: a summary quoting the attempt, `rule` as the contrast, the
    first of `lessons` the library lacks as the advantage, and equal proposals merged;
    None when `text` is not a learner's prompt."""
    if text.startswith("You are reviewing one attempt"):
        attempt = text.split("<attempt>")[1].split("</attempt>")[0].strip()
        return f"The attempt answered {attempt}."
    if text.startswith("Two attempts at the same task"):
        return f"A rule that B breaks is {rule}."
    if text.startswith("Several attempts at the same task"):
        return json.dumps(_advantage(text, lessons))
    if text.startswith("You maintain a small library"):
        return json.dumps(_consolidate(text))
    return None


def date_world(request: Mapping[str, Any], number: int) -> str:
    """Answer a rollout, summary, contrast, advantage or consolidation request of the date task."""
    reply = learner_reply(_text(request), LESSONS, "that the date is written as YYYY-MM-DD")
    return reply if reply is not None else _rollout(request)


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class _Asked:
    """A rollout request of the date task: its question (the last turn) with the day, month and
    year it asks about, the earlier answers it shows (demos) and its system text."""

    question: str
    day: int
    month: int
    year: int
    earlier: tuple[str, ...]
    system: str

    @property
    def iso(self) -> str:
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    @property
    def slashed(self) -> str:
        return f"{self.month}/{self.day}/{self.year}"


def _asked(request: Mapping[str, Any]) -> _Asked | None:
    """The rollout request as `_Asked`, or None when its last turn asks about no date."""
    messages = list(request.get("messages", []))
    question = str(messages[-1].get("content") or "") if messages else ""
    match = re.search(r"day (\d+) of month (\d+) of (\d+)", question)
    if not match:
        return None
    day, month, year = (int(g) for g in match.groups())
    earlier = tuple(str(m.get("content") or "").strip() for m in messages[:-1] if m.get("role") == "assistant")
    system = " ".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    return _Asked(question, day, month, year, earlier, system)


def demo_world(request: Mapping[str, Any], number: int) -> str:
    """The date world where a worked example teaches the format and a lesson does not: a
    rollout whose prompt shows an earlier answer written YYYY-MM-DD (a demo, as an earlier
    assistant turn or in the system turn) is right with chance 0.95, any other with 0.25.
    Its learner proposes no lesson."""
    text = _text(request)
    if text.startswith("Several attempts at the same task"):
        return json.dumps({"operations": [{"op": "keep"}]})
    if text.startswith(("You are reviewing one attempt", "Two attempts at the same task", "You maintain a small library")):
        return date_world(request, number)
    asked = _asked(request)
    if asked is None:
        return "I do not know."
    shown = any(ISO_DATE.fullmatch(answer) for answer in asked.earlier) or "Output: " in asked.system
    return asked.iso if _draw(request.get("seed"), asked.question) < (0.95 if shown else 0.25) else asked.slashed


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


MISLEADING_LESSON = "Write every date as month/day/year, the way people say it."


def misleading_world(request: Mapping[str, Any], number: int) -> str:
    """The date world with a learner that proposes `MISLEADING_LESSON`, which a model
    that reads it follows: every rollout with that lesson in its prompt is wrong."""
    text = _text(request)
    if text.startswith("Several attempts at the same task"):
        return json.dumps({"operations": [{"op": "add", "text": MISLEADING_LESSON, "rationale": "people write dates so"}]})
    if MISLEADING_LESSON in text and not text.startswith(("You are reviewing one attempt", "You maintain a small library")):
        match = re.search(r"day (\d+) of month (\d+) of (\d+)", text)
        return f"{match.group(2)}/{match.group(1)}/{match.group(3)}" if match else "I do not know."
    return date_world(request, number)


def _allowed(text: str) -> set[str]:
    match = re.search(r"Allowed operations: ([a-z, ]+)\.", text)
    return set(match.group(1).split(", ")) if match else {"add", "modify", "delete", "keep"}


def _revising_advantage(text: str) -> dict[str, Any]:
    library = text.split("The current library:")[1].split("State it as")[0]
    ids = {entry: id_ for id_, entry in re.findall(r"^\[(E\d+)\] (.*)$", library, re.MULTILINE)}
    allowed = _allowed(text)
    if not ids:
        return {"operations": [{"op": "add", "text": DRAFT}, {"op": "add", "text": NOISE}]}
    operations: list[dict[str, Any]] = []
    if DRAFT in ids and "modify" in allowed:
        operations.append({"op": "modify", "id": ids[DRAFT], "text": LESSONS[0], "rationale": "say which form"})
    if NOISE in ids and "delete" in allowed:
        operations.append({"op": "delete", "id": ids[NOISE], "rationale": "the weekday never helped"})
    if not operations:
        missing = [lesson for lesson in LESSONS if lesson not in ids]
        operations = [{"op": "add", "text": missing[0]}] if missing else [{"op": "keep"}]
    return {"operations": operations}


def _revising_consolidate(text: str) -> dict[str, Any]:
    allowed = _allowed(text)
    unique = dict.fromkeys(json.dumps(op, sort_keys=True) for op in _proposals(text) if op["op"] in allowed)
    return {"operations": [json.loads(op) for op in unique]}


def revising_world(request: Mapping[str, Any], number: int) -> str:
    """The date world with a learner that revises its library: on an empty library it
    proposes `DRAFT` and `NOISE`; once they exist it rewrites `DRAFT` into `LESSONS[0]`
    (modify) and deletes `NOISE`, then adds the missing lessons. It proposes only the
    operations the prompt allows (an add of `LESSONS[0]` when modify is not allowed),
    and consolidates by passing every distinct allowed proposal through. `NOISE` in
    a rollout's prompt makes half of its answers wrong (they name the weekday)."""
    text = _text(request)
    if text.startswith("Several attempts at the same task"):
        return json.dumps(_revising_advantage(text))
    if text.startswith("You maintain a small library"):
        return json.dumps(_revising_consolidate(text))
    answer = date_world(request, number)
    if NOISE in text and _draw("noise", request.get("seed"), text) < 0.5:
        return f"Monday, {answer}"
    return answer


HELPFUL_LESSON = "Write the date as YYYY-MM-DD, with the month and the day on two digits."
HARMFUL_LESSON = "Spell the month out in words, the way people say it."
SLASH_DATE = re.compile(r"\d{1,2}/\d{1,2}/\d{4}")


def planted_world(request: Mapping[str, Any], number: int) -> str:
    """The date world with one lesson that helps and one that hurts, both proposed by its learner.

    A rollout's luck is drawn from its seed and its question alone, so every library
    meets the same luck. It is right when its prompt carries `HELPFUL_LESSON` or an
    earlier answer written YYYY-MM-DD (a good demo), or else with chance 0.25; but when
    the prompt carries `HARMFUL_LESSON` or an earlier answer written M/D/YYYY (a bad
    demo), half of the questions' samples spell the month out and are wrong. So: no
    library 0.25, the helpful lesson 1.0, the harmful one 0.125, both 0.5. Its learner
    proposes whichever of the two lessons the library lacks."""
    text = _text(request)
    if text.startswith("Several attempts at the same task"):
        library = text.split("The current library:")[1].split("State it as")[0]
        missing = [lesson for lesson in (HELPFUL_LESSON, HARMFUL_LESSON) if lesson not in library]
        operations = [{"op": "add", "text": lesson, "rationale": "the better attempts did this"} for lesson in missing]
        return json.dumps({"operations": operations or [{"op": "keep"}]})
    if text.startswith(("You are reviewing one attempt", "Two attempts at the same task", "You maintain a small library")):
        return date_world(request, number)
    asked = _asked(request)
    if asked is None:
        return "I do not know."
    helped = HELPFUL_LESSON in asked.system or any(ISO_DATE.fullmatch(answer) for answer in asked.earlier)
    hurt = HARMFUL_LESSON in asked.system or any(SLASH_DATE.fullmatch(answer) for answer in asked.earlier)
    if hurt and _draw("spelled", request.get("seed"), asked.question) < 0.5:
        return f"the {asked.day} of month {asked.month}, {asked.year}"
    return asked.iso if helped or _draw("luck", request.get("seed"), asked.question) < 0.25 else asked.slashed


FICKLE_LESSONS = {
    "Write the date as YYYY-MM-DD, always.": 0.95,
    "Numbers in dates want leading zeros.": 0.5,
    "Read the question twice.": 0.25,
}
"""The lessons of `fickle_world`, each with the chance that a rollout whose prompt carries it is right."""


def fickle_world(request: Mapping[str, Any], number: int) -> str:
    """The date world whose learner settles on one lesson by chance, so that learning again
    with another seed can end with another library.

    Asked for an advantage while the library is empty, the learner proposes one of
    `FICKLE_LESSONS`, drawn from its request's seed (which the learn's seed derives);
    once the library holds a lesson it keeps it. Consolidating, it applies only the
    proposal made by the most groups. A rollout is right with the chance of the lesson
    in its prompt (0.25 without one), its luck drawn from its seed and its question."""
    text = _text(request)
    if text.startswith("Several attempts at the same task"):
        library = text.split("The current library:")[1].split("State it as")[0]
        if "(empty)" not in library:
            return json.dumps({"operations": [{"op": "keep"}]})
        lessons = list(FICKLE_LESSONS)
        chosen = lessons[int(_draw("fickle", request.get("seed")) * len(lessons))]
        return json.dumps({"operations": [{"op": "add", "text": chosen, "rationale": "the better attempts did this"}]})
    if text.startswith("You maintain a small library"):
        proposals = [op for op in _proposals(text) if op["op"] == "add"]
        return json.dumps({"operations": proposals[:1] or [{"op": "keep"}]})
    if text.startswith(("You are reviewing one attempt", "Two attempts at the same task")):
        return date_world(request, number)
    asked = _asked(request)
    if asked is None:
        return "I do not know."
    chance = max((value for lesson, value in FICKLE_LESSONS.items() if lesson in text), default=0.25)
    return asked.iso if _draw("luck", request.get("seed"), asked.question) < chance else asked.slashed


LEARNER_OPENINGS = ("You are reviewing one attempt", "Two attempts at the same task", "Several attempts at the same task", "You maintain a small library")
"""How the learner's prompts begin."""


def half_failing_world(request: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    """The date world whose rollouts fail (HTTP 500) for every question of an even year: half of them."""
    match = re.search(r"day (\d+) of month (\d+) of (\d+)", _text(request))
    if match and int(match.group(3)) % 2 == 0 and not _text(request).startswith(LEARNER_OPENINGS):
        return {"error_status": 500, "message": "scripted failure"}
    return date_world(request, number)



def truncating_world(request: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    """The date world whose learner runs out of tokens: every contrast and advantage reply stops at max_tokens."""
    text = _text(request)
    if text.startswith("Two attempts at the same task"):
        return {"content": "A rule that B breaks is that the date", "finish_reason": "length"}
    if text.startswith("Several attempts at the same task"):
        return {"content": '{"operations": [{"op": "add", "text": "Write every date in the numeric', "finish_reason": "length"}
    return date_world(request, number)


PREAMBLED = "A rule that B breaks is that the date must be written as YYYY-MM-DD."
ABOUT_AN_ATTEMPT = "Attempt A wrote the date with dashes between its parts."


def preamble_world(request: Mapping[str, Any], number: int) -> str:
    """The date world whose learner words its lessons as answers to the prompt: one with the
    prompt's preamble, one describing an attempt."""
    text = _text(request)
    if text.startswith("Several attempts at the same task"):
        return json.dumps({"operations": [{"op": "add", "text": PREAMBLED}, {"op": "add", "text": ABOUT_AN_ATTEMPT}]})
    return date_world(request, number)


def judged_world(request: Mapping[str, Any], number: int) -> str:
    """The date world with a judge: an answer in the form YYYY-MM-DD scores 1, any other 0."""
    text = _text(request)
    if text.startswith("You are grading one answer"):
        answer = text.split("<answer>")[1].split("</answer>")[0].strip()
        score = 1 if re.fullmatch(r"\d{4}-\d{2}-\d{2}", answer) else 0
        return json.dumps({"score": score, "reason": "the form of the date"})
    return date_world(request, number)


def quarter_failing_world(request: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    """The date world whose rollouts fail (HTTP 500) for questions of the years 1, 5, 9, ... modulo 4:
    half of the held-out questions of `eval_world`."""
    match = re.search(r"day (\d+) of month (\d+) of (\d+)", _text(request))
    if match and int(match.group(3)) % 4 == 1 and not _text(request).startswith(LEARNER_OPENINGS):
        return {"error_status": 500, "message": "scripted failure"}
    return date_world(request, number)
