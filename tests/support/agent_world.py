"""The agent world: questions that need the glossary tool and questions that do not.

Its rows are glossary terms (`zorp0`, `zorp2`, ...), whose definitions only the tool
`lookup` knows (`glossary.py`, served by the MCP server `glossary_server.py` or
offered as a Python function tool), and sums, which the model can do itself. Its
scripted model calls `lookup` on its first turn for most questions, out of habit:
for a term that is right, for a sum it is a wasted call after which the model gives
up. `AGENT_LESSONS[0]`, about when to call the tool, makes the model compute sums
itself; `AGENT_LESSONS[1]` makes it call the tool for every term. The learner
proposes the first lesson the library lacks. Every reply is a pure function of the
request, and tool call ids are derived from the question, so a rerun sends the
same requests.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from support.worlds import _draw, _text, learner_reply

__all__ = ["AGENT_LESSONS", "agent_world", "write_agent_world"]

AGENT_LESSONS = (
    "Compute sums yourself; call the lookup tool only for glossary terms.",
    "Call the lookup tool for every glossary term before you answer.",
)
HABIT = 0.9
"""The chance of a first-turn tool call without the lesson about that kind of question."""
SUPPORT = Path(__file__).resolve().parent

PROGRAM = """grpo 1

model agent {
  base_url    = "BASE_URL"
  api_key     = "test-key"
  name        = "agent"
  concurrency = 16
  max_retries = 8
}

dataset questions {
  source = "questions.jsonl"
}

dataset held_out {
  source = "held_out.jsonl"
}

TOOL

task ask {
  model       = agent
  system      = "You answer questions. You may call tools."
  prompt      = "{{ question }}"
  tools       = [lookup]
  max_turns   = 3
  max_tokens  = 40
}

reward correct = exact(strip(output), answer)

learn glossary_lessons {
  task       = ask
  data       = questions
  reward     = correct
  group_size = GROUP_SIZE
  batch_size = BATCH_SIZE
  seed       = 5
}

evaluate tool_use {
  task    = ask
  data    = held_out
  reward  = correct
  samples = 2
  compare = [none, glossary_lessons]
}
"""

TOOLS = {
    "mcp": 'tool lookup {\n  mcp { command = ["PYTHON", "glossary_server.py"] }\n  timeout = 20\n}',
    "python": 'tool lookup {\n  function = python("glossary.py:define")\n  timeout = 5\n}',
}


def _rows(start: int, count: int) -> list[dict[str, Any]]:
    from support.glossary import define

    rows = []
    for i in range(start, start + count):
        if i % 2 == 0:
            rows.append({"id": f"q{i}", "question": f"What does zorp{i} mean?", "answer": define(f"zorp{i}")})
        else:
            a, b = 3 * i + 1, 7 * i + 2
            rows.append({"id": f"q{i}", "question": f"What is {a} + {b}?", "answer": str(a + b)})
    return rows


def write_agent_world(
    folder: Path, base_url: str, *, tool: str = "mcp", questions: int = 8, group_size: int = 4, batch_size: int = 4
) -> Path:
    """Write `agent.grpo`, its data and its glossary tool (`tool`: `mcp` or `python`) into
    `folder`; return the program's path."""
    import sys

    for name in ("glossary.py", "glossary_server.py"):
        shutil.copy(SUPPORT / name, folder / name)
    for name, rows in (("questions.jsonl", _rows(0, questions)), ("held_out.jsonl", _rows(100, 8))):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    program = (
        PROGRAM.replace("BASE_URL", base_url)
        .replace("TOOL", TOOLS[tool].replace("PYTHON", sys.executable))
        .replace("GROUP_SIZE", str(group_size))
        .replace("BATCH_SIZE", str(batch_size))
    )
    path = folder / "agent.grpo"
    path.write_text(program)
    return path


def _answer(request: Mapping[str, Any]) -> str | dict[str, Any]:
    messages = list(request.get("messages", []))
    users = [m for m in messages if m.get("role") == "user"]
    question = str(users[-1].get("content") or "") if users else ""
    system = " ".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    results = [str(m.get("content") or "") for m in messages if m.get("role") == "tool"]
    term = re.search(r"What does (\S+) mean\?", question)
    total = re.search(r"What is (\d+) \+ (\d+)\?", question)
    if results:
        return results[-1] if term and not results[-1].startswith(("no entry", "error")) else "I could not find it."
    lesson = AGENT_LESSONS[1] if term else AGENT_LESSONS[0]
    chance = (1.0 if term else 0.05) if lesson in system else HABIT
    offered = [t["function"]["name"] for t in request.get("tools") or []]
    if "lookup" in offered and _draw(request.get("seed"), question, "call") < chance:
        argument = term.group(1) if term else question
        call_id = "call_" + hashlib.sha256(f"{request.get('seed')}:{question}".encode()).hexdigest()[:12]
        call = {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"term": argument})}}
        return {"content": None, "tool_calls": [call]}
    if total:
        return str(int(total.group(1)) + int(total.group(2)))
    return "I do not know."


def agent_world(request: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    """Answer a rollout (over several turns) or a learner request of the agent world."""
    reply = learner_reply(_text(request), AGENT_LESSONS, "to call the lookup tool only for glossary terms")
    return reply if reply is not None else _answer(request)
