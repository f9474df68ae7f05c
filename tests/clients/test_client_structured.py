"""Structured outputs: schemas sent per `structured` setting, tolerant parsing, one repair."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint

from grpo_dsl.clients import (
    ChatRequest,
    StructuredOutputError,
    Usage,
    build_client,
    complete_json,
)
from grpo_dsl.clients.cache import cache_info

SCHEMA: dict[str, Any] = {
    "title": "operations",
    "type": "object",
    "required": ["operations"],
    "properties": {
        "operations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["op"],
                "properties": {"op": {"enum": ["add", "keep"]}, "text": {"type": "string"}},
            },
        }
    },
}
MESSY_REPLY = """Sure! Here are the operations:
```json
{
  // one new lesson
  "operations": [
    {"op": "add", "text": "Write dates as YYYY-MM-DD # always"},  # the convention
  ],
}
```
Hope this helps."""
INVALID_REPLY = '{"operations": [{"op": "delete"}]}'


def messy_json(body: Mapping[str, Any], number: int) -> str:
    """Endpoint script: JSON in a fence, with prose, comments and trailing commas."""
    return MESSY_REPLY


def repaired_on_second_try(body: Mapping[str, Any], number: int) -> str:
    """Endpoint script: an operation the schema forbids, then, once told why, a valid reply."""
    if "could not be used" in str(body["messages"][-1]["content"]):
        return '{"operations": [{"op": "keep"}]}'
    return INVALID_REPLY


def never_json(body: Mapping[str, Any], number: int) -> str:
    """Endpoint script: prose, whatever it is asked."""
    return "I would rather not say."


def ask(endpoint: Endpoint, cache_dir: Path | None, *, structured: str = "json_schema", events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    models = {"learner": {"name": "learner-model", "base_url": endpoint.base_url, "api_key": "k", "structured": structured}}

    async def run() -> dict[str, Any]:
        client = build_client(models, cache_dirs=dict.fromkeys(models, cache_dir) if cache_dir else {}, usage=Usage(models))
        async with client:
            request = ChatRequest(
                model="learner",
                messages=({"role": "user", "content": "Propose operations."},),
                stage="advantage",
                sample_key="1:q3/advantage",
            )
            return await complete_json(client, request, SCHEMA, structured=structured, on_event=events.append if events is not None else None)

    return asyncio.run(run())


def test_fenced_commented_trailing_comma_json_is_parsed(endpoint: Endpoint) -> None:
    endpoint.configure(script="clients.test_client_structured:messy_json")

    result = ask(endpoint, None)

    assert result == {"operations": [{"op": "add", "text": "Write dates as YYYY-MM-DD # always"}]}
    assert endpoint.stats()["total"] == 1


def test_an_invalid_reply_is_repaired_once_with_the_error(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="clients.test_client_structured:repaired_on_second_try")
    events: list[dict[str, Any]] = []

    result = ask(endpoint, tmp_path, events=events)

    assert result == {"operations": [{"op": "keep"}]}
    first, second = sorted(endpoint.stats()["requests"], key=lambda r: r["number"])
    assert second["body"]["messages"][:-1] == [*first["body"]["messages"], {"role": "assistant", "content": INVALID_REPLY}]
    assert "at operations/0/op: 'delete' is not one of ['add', 'keep']" in second["body"]["messages"][-1]["content"]
    assert [e["event"] for e in events] == ["structured_repair"]
    info = cache_info(tmp_path)
    assert info is not None and info.entries == 2
    endpoint.reset()
    assert ask(endpoint, tmp_path) == result
    assert endpoint.stats()["total"] == 0


def test_a_reply_that_stays_invalid_raises_with_the_raw_text(endpoint: Endpoint) -> None:
    endpoint.configure(script="clients.test_client_structured:never_json")

    with pytest.raises(StructuredOutputError) as caught:
        ask(endpoint, None)

    assert caught.value.raw == "I would rather not say."
    assert caught.value.errors == ("the reply is not valid JSON: the reply contains no JSON object",)
    assert "model `learner` (advantage) did not reply with JSON matching the schema after one repair" in str(caught.value)
    assert endpoint.stats()["total"] == 2


@pytest.mark.parametrize(
    ("structured", "expected"),
    [
        ("json_schema", {"type": "json_schema", "json_schema": {"name": "operations", "schema": SCHEMA, "strict": False}}),
        ("json_object", {"type": "json_object", "schema": SCHEMA}),
        ("text", None),
    ],
)
def test_the_schema_is_sent_as_the_structured_setting_says(endpoint: Endpoint, structured: str, expected: Any) -> None:
    endpoint.configure(script="clients.test_client_structured:messy_json")

    ask(endpoint, None, structured=structured)

    [sent] = endpoint.stats()["requests"]
    assert sent["body"].get("response_format") == expected
