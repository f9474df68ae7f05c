"""Structured task answers: `response = schema("file.json")` asks for JSON, validates
it, and rewards read its fields with `json_field`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from support.endpoint import Endpoint

from grpo_dsl.evaluation.evaluate import start_evaluation
from grpo_dsl.plan import load_plan

SCHEMA = {
    "title": "answer",
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["answer"],
}

PROGRAM = """grpo 1

model json_model {
  base_url = "BASE_URL"
  api_key  = "test-key"
  name     = "json"
}

dataset sums { source = "sums.jsonl" }

task add {
  model    = json_model
  prompt   = "What is {{ a }} + {{ b }}? Answer as JSON."
  response = schema("answer.schema.json")
}

reward correct = exact(json_field(output, "answer"), answer)

evaluate sums_eval {
  task         = add
  data         = sums
  reward       = correct
  max_failures = 1
}
"""


def json_world(request: Mapping[str, Any], number: int) -> str:
    """Right answers as fenced JSON with prose around; for `a = 3` a number where the
    schema wants text, for `a = 4` no JSON at all."""
    question = str(request["messages"][-1]["content"])
    a, b = (int(word) for word in question.split("?")[0].split() if word.isdigit())
    if a == 3:
        return json.dumps({"answer": a + b})
    if a == 4:
        return "It is probably seven."
    return 'Here it is:\n```json\n{"confidence": 0.5, "answer": "%d"}\n```' % (a + b)


def test_answers_follow_the_schema_or_fail_with_the_reason(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="rollout.test_response:json_world")
    (tmp_path / "answer.schema.json").write_text(json.dumps(SCHEMA))
    rows = [{"id": f"s{a}", "a": a, "b": 3, "answer": str(a + 3)} for a in range(1, 6)]
    (tmp_path / "sums.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    program = tmp_path / "sums.grpo"
    program.write_text(PROGRAM.replace("BASE_URL", endpoint.base_url))
    plan = load_plan(program)
    assert plan.task("add").response == {"path": "answer.schema.json", "sha256": plan.task("add").response["sha256"], "schema": SCHEMA}  # type: ignore[index]

    result = start_evaluation(plan, "sums_eval", base_dir=tmp_path, runs_root=tmp_path / "runs")

    assert result.status == "completed", result.message
    records = {r["question"]: r for r in map(json.loads, (result.run_dir / "results.jsonl").read_text().splitlines())}
    for a in (1, 2, 5):
        assert records[f"s{a}"]["output"] == '{"confidence":0.5,"answer":"%d"}' % (a + 3)
        assert records[f"s{a}"]["reward"] == 1 and records[f"s{a}"]["error"] is None
    assert "does not follow the response schema: answer: 6 is not of type 'string'" in records["s3"]["error"]
    assert "does not follow the response schema" in records["s4"]["error"]
    formats = [r["body"]["response_format"] for r in endpoint.stats()["requests"]]
    assert formats and all(f == {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": False}} for f in formats)
